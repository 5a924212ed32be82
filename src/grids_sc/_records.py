"""The records grids-sc keeps in ``mdata.uns['grids']``: the only code that writes or reads them.

Layout (format version 2): one store per kind of record, each a dict keyed by the user's key,
so that a user's key can never clash with a store's name::

    uns['grids']['surrogates'][key]      fit_surrogate                  SurrogateRecord
    uns['grids']['explain'][key]         explain, attribute             SelectionRecord
    uns['grids']['fidelity'][key]        surrogate_fidelity             (table record)
    uns['grids']['interventional'][key]  interventional_fidelity        (table record)
    uns['grids']['evaluations'][key]     evaluate                       (table record)
    uns['grids']['skipped'][key]         explain, attribute             (gene, group, reason)
    uns['grids']['links'][key]           link_peaks                     LinksRecord

Every record carries a header: ``kind``, ``format_version``, ``package_version`` (the
grids-sc version that wrote it) and ``params`` (the arguments of the call that made it, as
scanpy's ``uns[key]['params']``; ``None`` is stored as ``None``). Format 1 (grids-sc 0.1.0)
kept surrogates and evaluation tables at the top of ``uns['grids']``, had no header and
stored "none" as ``-1`` or ``""``; :func:`migrate` reads it into format 2 in this one place,
and the first write into an object migrates the object.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePath

import numpy as np
import pandas as pd

FORMAT_VERSION = 2
ROOT = "grids"
STORES = {
    "surrogate": "surrogates",
    "selection": "explain",
    "fidelity": "fidelity",
    "interventional": "interventional",
    "evaluation": "evaluations",
    "skipped": "skipped",
    "links": "links",
}
WRITERS = {
    "surrogate": "grids.tl.fit_surrogate",
    "selection": "grids.tl.explain or grids.tl.attribute",
    "fidelity": "grids.tl.surrogate_fidelity",
    "interventional": "grids.tl.interventional_fidelity",
    "evaluation": "grids.tl.evaluate",
    "skipped": "grids.tl.explain or grids.tl.attribute (tasks with nothing to move)",
    "links": "grids.tl.link_peaks",
}
HEADER = ("kind", "format_version", "package_version", "params")
PEAK_VALUES = ("alone", "restored", "score", "frequency")
"""The per-peak quantities of a selection record that exports can write as a peak's value."""


@functools.cache
def package_version() -> str:
    """The installed grids-sc version (``0.0.0+unknown`` from a bare source tree); read once
    per process (every record carries it, and reading the installed metadata takes about a
    millisecond).
    """
    try:
        return version("grids-sc")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"


# ---- plain values ---------------------------------------------------------------------------
def plain(value):
    """``value`` as something ``.h5mu`` stores and reads back as it was: ``None``, bools,
    numbers, strings, arrays and dicts of them (tuples and lists become arrays; paths
    strings).
    """
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        if all(isinstance(v, str) for v in items):
            return np.asarray(items, dtype=str)
        if all(isinstance(v, (bool, int, float)) for v in items):
            return np.asarray(items)
        return {str(i): v for i, v in enumerate(items)}
    return str(value)


def call_params(arguments: Mapping, drop: Iterable[str] = ("mdata", "copy", "progress")) -> dict:
    """The arguments of a call as its record's ``params``: ``locals()`` taken first thing in
    the function, less ``drop`` (the data, and switches that do not change the result).
    Executors and other objects are stored by their type's name.
    """
    out = {}
    for k, v in arguments.items():
        if k in drop or k.startswith("_"):
            continue
        if k == "executor" and v is not None and not isinstance(v, str):
            v = type(v).__name__
        out[k] = plain(v)
    return out


def scalar(value):
    """A value read back from ``.h5mu`` as a Python scalar (0-d arrays unwrapped)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    return value


def none_if(value, *empty):
    """``None`` for a format-1 "none" (``""``, ``-1``); the scalar otherwise."""
    value = scalar(value)
    return None if value is None or any(value == e for e in empty) else value


# ---- keys and the root ------------------------------------------------------------------------
def check_key(key, what: str = "key_added") -> str:
    """A record key: a non-empty string without ``/`` (which ``.h5mu`` reads as a path)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} must be a non-empty string, got {key!r}")
    if "/" in key:
        raise ValueError(f"{what} {key!r} contains '/', which .h5mu files read as a path")
    return key


def check_not_view(mdata) -> None:
    """Refuse a view (``mdata[mask]``) as the object a call writes into: its nested ``.uns``
    dicts are the parent's, so writing would change the object it was taken from. Called
    first thing by every public function that writes into ``mdata``, before any work.
    """
    if getattr(mdata, "is_view", False):
        raise ValueError(
            "mdata is a view (e.g. mdata[mask]): writing results into it would change the "
            "object it was taken from. Make it an object of its own first: mdata = mdata.copy()"
            " (or pass copy=True where the function has it)"
        )


def open_for_write(mdata) -> dict:
    """``mdata.uns['grids']`` migrated to format 2, made if absent (``mdata`` not a view),
    ready for many :func:`put` and :func:`remove` calls: checking it walks every stored
    record, so a call storing thousands of results opens it once (:func:`write` and
    :func:`delete` open it on every call).
    """
    check_not_view(mdata)
    uns = mdata.uns
    root = uns.get(ROOT)
    if not isinstance(root, dict) or _needs_migration(root):
        uns[ROOT] = migrate(root if isinstance(root, Mapping) else {})
    return uns[ROOT]


def upgrade(mdata) -> None:
    """Migrate ``mdata.uns['grids']`` to the current format in place (before writing it)."""
    if isinstance(mdata.uns.get(ROOT), Mapping):
        open_for_write(mdata)


def _root_for_read(mdata) -> Mapping:
    """``mdata.uns['grids']`` in format 2 (migrated on the fly when older; never written)."""
    root = mdata.uns.get(ROOT, {}) if hasattr(mdata, "uns") else {}
    if not isinstance(root, Mapping):
        return {}
    return migrate(root) if _needs_migration(root) else root


# ---- migration: the one place where older layouts are read --------------------------------
def _is_v1_surrogate(value) -> bool:
    return isinstance(value, Mapping) and "weights" in value and "config" in value


def _needs_migration(root: Mapping) -> bool:
    if any(k not in STORES.values() for k in root):
        return True
    for name in STORES.values():
        for rec in (root.get(name) or {}).values():
            if not isinstance(rec, Mapping) or scalar(rec.get("format_version", 1)) != 2:
                return True
    return False


def migrate(root: Mapping) -> dict:
    """``uns['grids']`` of any format as format 2 (a new dict; records of format 2 are kept
    as they are, older ones converted).
    """
    out: dict = {}
    for key, value in root.items():
        if key in STORES.values():
            kind = next(k for k, n in STORES.items() if n == key)
            if kind == "evaluation" and _is_v1_table(value):
                out.setdefault(key, {})[key] = _migrate_record("evaluation", value)
                continue
            store = out.setdefault(key, {})
            for k, rec in (value or {}).items():
                store[k] = _migrate_record(kind, rec)
        elif _is_v1_surrogate(value):
            out.setdefault(STORES["surrogate"], {})[key] = _migrate_record("surrogate", value)
        elif isinstance(value, Mapping):  # format 1 evaluate(key_added=...) table
            out.setdefault(STORES["evaluation"], {})[key] = _migrate_record("evaluation", value)
    return out


def _is_v1_table(value) -> bool:
    """A format-1 evaluation table (columns at the top) rather than a store of records."""
    return isinstance(value, Mapping) and "key" in value and "method" in value


def _migrate_record(kind: str, rec: Mapping) -> dict:
    if scalar(rec.get("format_version", 1)) == FORMAT_VERSION:
        return rec  # type: ignore[return-value]
    rec = dict(rec)
    if kind == "surrogate":
        rec = _migrate_surrogate(rec)
    elif kind == "selection":
        rec = _migrate_selection(rec)
    elif kind == "fidelity":
        rec["groupby"] = none_if(rec.get("groupby"), "")
    rec.update(
        kind=kind,
        format_version=FORMAT_VERSION,
        package_version=str(scalar(rec.get("package_version", "0.1.0"))),
    )
    rec.setdefault("params", {})
    return rec


def _migrate_surrogate(rec: dict) -> dict:
    config = dict(rec["config"])
    arch = dict(config["architecture"])
    arch.setdefault("chrom_norm", "layer")  # format 1 stored no chrom_norm: it was "layer"
    config["architecture"] = arch
    data = dict(config["data"])
    for k in ("layer", "rna_layer", "groupby"):
        data[k] = none_if(data.get(k), "")
    config["data"] = data
    if "cis" in config:
        cis = dict(config["cis"])
        cis["max_peaks"] = none_if(cis.get("max_peaks"), -1)
        config["cis"] = cis
    rec["config"] = config
    rec.setdefault("model", "cis" if "cis" in arch else "grids")
    if "params" not in rec:
        rec["params"] = {
            "rna": data["rna"],
            "atac": data["atac"],
            "groupby": data["groupby"],
            "layer": data["layer"],
            "rna_layer": data["rna_layer"],
            "model": scalar(rec["model"]),
            "seed": data.get("seed"),
        }
    return rec


def _migrate_selection(rec: dict) -> dict:
    settings = dict(rec.get("settings", {}))
    if "window" in settings:
        settings["window"] = none_if(settings["window"], -1)
    if "groupby" in settings:
        settings["groupby"] = none_if(settings["groupby"], "")
    rec["settings"] = settings
    rec.setdefault("params", {k: v for k, v in settings.items() if k != "method"})
    return rec


# ---- reading and writing ------------------------------------------------------------------
def store(mdata, kind: str) -> Mapping[str, Mapping]:
    """All records of ``kind`` (format 2), in stored order; read only."""
    return _root_for_read(mdata).get(STORES[kind], {})


def keys(mdata, kind: str) -> list[str]:
    """The keys of the records of ``kind``."""
    return list(store(mdata, kind))


def read(mdata, kind: str, key: str) -> Mapping:
    """The record ``key`` of ``kind`` (format 2), or a ``KeyError`` naming what exists."""
    found = store(mdata, kind)
    if key not in found:
        have = list(found)
        raise KeyError(
            f"no {kind} record {key!r} in mdata.uns['{ROOT}']['{STORES[kind]}']"
            + (f"; it has {have[:10]}" if have else "")
            + f". Run {WRITERS[kind]} first"
        )
    return found[key]


def header(kind: str, params: Mapping) -> dict:
    """The header every record of ``kind`` carries."""
    return {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "params": plain(dict(params)),
    }


def write(mdata, kind: str, key: str, record: Mapping, params: Mapping) -> None:
    """Store ``record`` (with its header) as ``key`` of ``kind``; warn when it replaces one."""
    put(open_for_write(mdata), kind, key, record, params, stacklevel=4)


def put(root: dict, kind: str, key: str, record: Mapping, params: Mapping, stacklevel=3) -> None:
    """:func:`write` into a root from :func:`open_for_write`."""
    check_key(key)
    dest = root.setdefault(STORES[kind], {})
    if key in dest:
        warnings.warn(
            f"replaced the earlier {kind} record {key!r} in mdata.uns['{ROOT}']['{STORES[kind]}']",
            UserWarning,
            stacklevel=stacklevel,
        )
    dest[key] = {**record, **header(kind, params)}


SELECTION_COLUMNS = ("selected", "rank", "score", "frequency")


def replace_var_columns(adata, result_keys: Iterable[str], columns) -> None:
    """Put a call's per-peak ``columns`` (a DataFrame on ``adata.var_names``) into
    ``adata.var`` in one operation, first removing the columns earlier results of the same
    keys left (``{key}_selected``, ``_rank``, ``_score``, ``_frequency``), so a key's columns
    are exactly those of the call that wrote it last.
    """
    stale = {f"{k}_{c}" for k in result_keys for c in SELECTION_COLUMNS}
    var = adata.var
    keep = var.drop(columns=[c for c in var.columns if c in stale or c in columns.columns])
    adata.var = pd.concat([keep, columns.set_axis(var.index)], axis=1)


VAR_COLUMNS_MAX_TASKS = 100  # explain/attribute(var_columns=None) write .var columns below this
SCORE_PEAKS = 100  # peaks whose score a compact selection record keeps (best first-order)


def compact_peak_scores(
    names: np.ndarray, scored: np.ndarray, score: np.ndarray, selected: np.ndarray
) -> dict:
    """A selection's per-peak scores as the few arrays a compact record keeps: the score of
    the :data:`SCORE_PEAKS` best-scored peaks and of every selected peak (names, scores),
    and how many peaks were scored (the candidates). ``scored`` and ``score``: the peaks
    with a score and their scores; ``selected``: the selected peaks.
    """
    score = np.asarray(score, dtype=np.float64)
    scored = np.asarray(scored, dtype=np.int64)
    order = np.argsort(scored, kind="stable")
    scored, score = scored[order], score[order]
    finite = np.isfinite(score)
    best = scored[finite][np.argsort(-score[finite], kind="stable")[:SCORE_PEAKS]]
    keep = np.union1d(best, np.asarray(selected, dtype=np.int64))
    return {
        "peak": np.asarray(names)[keep].astype(str),
        "score": sparse_values(scored, score, keep),
        "n_scored": int(finite.sum()),
    }


def sparse_values(index: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The entries ``query`` of a vector given by its sorted ``index`` and ``values`` there
    (NaN where ``index`` has no entry).
    """
    query = np.asarray(query, dtype=np.int64)
    out = np.full(len(query), np.nan)
    if not len(index):
        return out
    at = np.minimum(np.searchsorted(index, query), len(index) - 1)
    hit = index[at] == query
    out[hit] = values[at[hit]]
    return out


def peak_columns(adata, key: str, record: Mapping | None = None) -> dict[str, np.ndarray] | None:
    """``score`` and ``rank`` of every peak (``peak``: names) of ``adata`` for the selection
    ``key``: its ``.var`` columns when the call wrote them, else the compact scores its
    record keeps (``peak_scores``; peaks not kept have a NaN score); ``None`` when neither
    is there.
    """
    var = adata.var
    if f"{key}_score" in var.columns:
        score = var[f"{key}_score"].to_numpy(dtype=np.float64)
        rank = (var[f"{key}_rank"].to_numpy(dtype=np.int64) if f"{key}_rank" in var.columns
                else None)  # fmt: skip
    elif record is not None and "peak_scores" in record:
        kept = record["peak_scores"]
        score = np.full(adata.n_vars, np.nan)
        pos = var.index.get_indexer(np.asarray(kept["peak"]).astype(str))
        score[pos[pos >= 0]] = np.asarray(kept["score"], dtype=np.float64)[pos >= 0]
        rank = None
    else:
        return None
    if rank is None:
        rank = np.zeros(adata.n_vars, dtype=np.int64)
        if record is not None:
            pos = var.index.get_indexer(np.asarray(record["selected"]).astype(str))
            rank[pos[pos >= 0]] = np.flatnonzero(pos >= 0) + 1
    return {"score": score, "rank": rank, "peak": var.index.to_numpy().astype(str)}


def delete(mdata, kind: str, key: str) -> None:
    """Remove the record ``key`` of ``kind`` if present."""
    remove(open_for_write(mdata), kind, key)


def remove(root: dict, kind: str, key: str) -> None:
    """:func:`delete` from a root from :func:`open_for_write`."""
    root.get(STORES[kind], {}).pop(key, None)


# ---- typed records ------------------------------------------------------------------------------
def _strs(value) -> list[str]:
    return [str(v) for v in np.atleast_1d(np.asarray(value)).astype(str)]


def _floats(d: Mapping) -> dict[str, float]:
    return {str(k): float(scalar(v)) for k, v in d.items()}


@dataclass(frozen=True)
class SurrogateRecord:
    """A fitted surrogate as stored: what :func:`grids_sc.tl.fit_surrogate` wrote.

    Attributes
    ----------
    key
        Its key in the ``surrogates`` store.
    model
        The architecture's name (``"cis"``, ``"grids"``).
    architecture, weights
        What :func:`grids_sc.model.surrogate_from_record` rebuilds the module from.
    rna, atac, layer, rna_layer, rna_transform, groupby
        The data it was fit on (``layer``/``rna_layer``/``groupby``: ``None`` when unused).
    peaks, genes, split
        Its features and the train/validation/test cell names.
    config, history, params
        The whole configuration, per-epoch losses and the call's arguments.
    format_version, package_version
        The record's header.
    """

    key: str
    model: str
    architecture: dict
    weights: Mapping[str, np.ndarray]
    rna: str
    atac: str
    layer: str | None
    rna_layer: str | None
    rna_transform: str
    groupby: str | None
    peaks: np.ndarray
    genes: np.ndarray
    split: dict[str, np.ndarray]
    config: dict
    history: dict
    params: dict
    format_version: int
    package_version: str

    @property
    def module_record(self) -> dict:
        """``{"architecture", "weights"}``: the module as plain arrays (what workers get)."""
        return {"architecture": self.architecture, "weights": self.weights}

    @classmethod
    def from_uns(cls, key: str, rec: Mapping) -> SurrogateRecord:
        """Read a format-2 record."""
        config = rec["config"]
        data = config["data"]
        return cls(
            key=key,
            model=str(scalar(rec["model"])),
            architecture=dict(config["architecture"]),
            weights=rec["weights"],
            rna=str(scalar(data["rna"])),
            atac=str(scalar(data["atac"])),
            layer=scalar(data.get("layer")),
            rna_layer=scalar(data.get("rna_layer")),
            rna_transform=str(scalar(data["rna_transform"])),
            groupby=scalar(data.get("groupby")),
            peaks=np.asarray(rec["peaks"]).astype(str),
            genes=np.asarray(rec["genes"]).astype(str),
            split={k: np.asarray(v).astype(str) for k, v in rec["split"].items()},
            config=dict(config),
            history=dict(rec.get("history", {})),
            params=dict(rec.get("params", {})),
            format_version=int(scalar(rec["format_version"])),
            package_version=str(scalar(rec["package_version"])),
        )


def read_surrogate(mdata, key: str) -> SurrogateRecord:
    """The surrogate record ``key``, typed."""
    return SurrogateRecord.from_uns(key, read(mdata, "surrogate", key))


def surrogate_keys(mdata) -> list[str]:
    """Keys of the stored surrogates."""
    return keys(mdata, "surrogate")


@dataclass(frozen=True)
class SelectionRecord:
    """A selection of peaks for a gene (or gene set) in a group: an ``explain`` or
    ``attribute`` result as stored.

    Attributes
    ----------
    key
        Its key in the ``explain`` store.
    method
        ``"grids"`` for :func:`~grids_sc.tl.explain`, else the attribution method.
    surrogate
        Key of the surrogate it used.
    name, genes, group
        The gene (or gene set's name), its genes and the cell group.
    selected
        Names of the selected peaks, most important first.
    settings
        The search/ranking settings (``window``/``groupby``: ``None`` when unused).
    delta
        Avg/Rel Δ on search and test cells.
    per_cell, per_peak
        Per-cell predictions before/after, per-peak effects (arrays by name).
    extra
        Everything else the method stored (e.g. ``trace``, ``restart_traces``).
    params, format_version, package_version
        The record's header.
    """

    key: str
    method: str
    surrogate: str
    name: str
    genes: list[str]
    group: str
    selected: np.ndarray
    settings: dict
    delta: dict[str, float]
    per_cell: dict
    per_peak: dict
    extra: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    package_version: str = ""

    _FIELDS = ("gene", "name", "group", "selected", "settings", "delta", "per_cell", "per_peak")

    @property
    def perturb(self) -> str:
        """``"close"`` or ``"open"``."""
        return str(self.settings.get("perturb", "close"))

    @property
    def direction(self) -> str:
        """``"down"`` or ``"up"``."""
        return str(self.settings.get("direction", "down"))

    @property
    def window(self) -> int | None:
        """The candidate window in bp (``None``: all peaks)."""
        w = self.settings.get("window")
        return None if w is None else int(w)

    @classmethod
    def from_uns(cls, key: str, rec: Mapping) -> SelectionRecord:
        """Read a format-2 record."""
        settings = {k: scalar(v) for k, v in rec.get("settings", {}).items()}
        genes = _strs(rec["gene"])
        header_or_known = set(HEADER) | set(cls._FIELDS)
        return cls(
            key=key,
            method=str(settings.get("method", "grids")),
            surrogate=str(settings.get("surrogate", "surrogate")),
            name=str(scalar(rec.get("name", genes[0]))),
            genes=genes,
            group=str(scalar(rec["group"])),
            selected=np.asarray(rec["selected"]).astype(str),
            settings=settings,
            delta=_floats(rec.get("delta", {})),
            per_cell={k: np.asarray(v) for k, v in rec.get("per_cell", {}).items()},
            per_peak={k: np.asarray(v) for k, v in rec.get("per_peak", {}).items()},
            extra={k: v for k, v in rec.items() if k not in header_or_known},
            params=dict(rec.get("params", {})),
            format_version=int(scalar(rec["format_version"])),
            package_version=str(scalar(rec["package_version"])),
        )


def read_selection(mdata, key: str) -> SelectionRecord:
    """The selection record ``key``, typed."""
    return SelectionRecord.from_uns(key, read(mdata, "selection", key))


def read_selections(mdata, keys_: str | Iterable[str] | None = None) -> list[SelectionRecord]:
    """Selection records by key (default: all, in stored order), with one clear error for
    keys that are not there.
    """
    found = store(mdata, "selection")
    if keys_ is None:
        keys_ = list(found)
        if not keys_:
            raise ValueError(
                f"no results in mdata.uns['{ROOT}']['{STORES['selection']}']: run "
                f"{WRITERS['selection']}"
            )
    keys_ = [keys_] if isinstance(keys_, str) else list(keys_)
    if not keys_:
        raise ValueError(f"no result keys given: pass keys of {WRITERS['selection']} results")
    missing = [k for k in keys_ if k not in found]
    if missing:
        raise KeyError(
            f"results {missing[:5]} not in mdata.uns['{ROOT}']['{STORES['selection']}']; it has "
            f"{list(found)[:10]}"
        )
    return [SelectionRecord.from_uns(k, found[k]) for k in keys_]


def modalities_of(mdata, surrogate_key: str, default=("rna", "atac")) -> tuple[str, str]:
    """``(rna, atac)``: the modalities the surrogate ``surrogate_key`` was fit on (the
    defaults when it is no longer stored).
    """
    rec = store(mdata, "surrogate").get(surrogate_key)
    if rec is None:
        return default
    data = rec["config"]["data"]
    return str(scalar(data["rna"])), str(scalar(data["atac"]))


# ---- peak–gene link tables ----------------------------------------------------------------------
LINK_COLUMNS = (
    "gene", "group", "peak", "effect", "se", "effect_low", "effect_high", "pvalue", "qvalue",
    "significant", "in_set", "set_rank", "alone", "alone_se", "set_effect", "set_effect_se",
    "logic",
)  # fmt: skip
"""The columns every ``links`` record's ``table`` holds (``method="grids"`` adds the mirror
statistic and the folds' effects)."""


@dataclass(frozen=True)
class LinksRecord:
    """A stored :func:`grids_sc.tl.link_peaks` result, read back."""

    key: str
    method: str
    surrogate: str | None
    fdr: float
    groupby: str | None
    window: int
    table: pd.DataFrame
    left_out: pd.DataFrame
    settings: dict = field(default_factory=dict)

    @classmethod
    def from_uns(cls, key: str, rec: Mapping) -> LinksRecord:
        """Read a record of the ``links`` store."""
        settings = dict(rec.get("settings", {}))
        stored = rec["table"]
        order = _strs(rec["columns"]) if "columns" in rec else list(stored)
        order = [c for c in order if c in stored] + [c for c in stored if c not in order]
        table = pd.DataFrame({k: np.asarray(stored[k]) for k in order})
        for col in ("gene", "group", "peak", "logic"):
            if col in table:
                table[col] = table[col].astype(str)
        left = rec.get("left_out", {})
        left_out = pd.DataFrame({k: np.asarray(v).astype(str) for k, v in left.items()})
        return cls(
            key=key,
            method=str(settings.get("method", "grids")),
            surrogate=none_if(settings.get("surrogate"), ""),
            fdr=float(scalar(settings.get("fdr", 0.1))),
            groupby=none_if(settings.get("groupby"), ""),
            window=int(scalar(settings.get("window", 0))),
            table=table,
            left_out=left_out,
            settings=settings,
        )


def read_links(mdata, key: str) -> LinksRecord:
    """The ``links`` record ``key`` as a :class:`LinksRecord`."""
    return LinksRecord.from_uns(key, read(mdata, "links", key))
