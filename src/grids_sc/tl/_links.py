"""``grids.tl.link_peaks``: genome-wide peak–gene links with calibrated confidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
from mudata import MuData

from .. import _records as records
from .._engine import (
    SelectionSettings,
    check_executor,
    cis_window,
    correlation_inputs,
    make_plan,
    run_plan,
    task_device,
)
from .._engine._links import (
    Z95,
    bh,
    correlation_task,
    crossfit,
    crossfit_task,
    fold_of_cells,
    link_set_task,
    logic_of,
    mirror_pvalues,
    state_covariates,
)
from .._genome import peak_coordinates, window_pairs
from .._inputs import obs_column, rna_values
from .._logging import logger as log
from .._logging import timed
from .._mudata import check_copy, copy_of
from ..model import CisSurrogate, LocoSurrogate
from ._surrogate import get_surrogate

METHODS = ("grids", "correlation")


def _expression(mdata: MuData, fitted) -> np.ndarray:
    a_rna = mdata.mod[fitted.rna]
    y, _ = rna_values(a_rna, fitted.rna_layer, fitted.rna_transform, fitted.rna)
    cols = a_rna.var_names.get_indexer(fitted.genes)
    return np.asarray(y[:, cols], dtype=np.float32)


def link_peaks(
    mdata: MuData,
    genes: str | Sequence[str] | None = None,
    *,
    groupby: str | None = None,
    groups: str | Sequence[str] | None = None,
    window: int = 250_000,
    key: str = "surrogate",
    fdr: float = 0.1,
    method: str = "grids",
    L: int = 5,
    n_steps: int = 100,
    n_folds: int = 2,
    min_expressed: float = 0.05,
    screen_z: float = 2.0,
    resolution: int = 0,
    split_seed: int = 2023,
    device: str = "auto",
    seed: int = 0,
    key_added: str = "links",
    executor=None,
    worker_threads: int | None = 1,
    progress: bool = True,
    copy: bool = False,
) -> MuData | None:
    """Call peak–gene links for every gene and group, with p-values and q-values.

    For each (gene, group), every peak within ``window`` bp of the gene body is tested for
    an effect on the gene, and the gene's GRIDS set (``explain``'s search on the surrogate
    ``key``) is found, with the logic of each of its peaks.

    ``method="grids"`` (the default) makes the confidence by **cross-fitting**: the cells are
    split into ``n_folds`` folds (balanced within each group), the screen and cis heads of
    the surrogate are refit on each fold (its cell state is kept: for ``model="loco"`` a
    gene's state never reads its own chromosome, for ``model="cis"`` it is fit on
    accessibility alone), and the effect of closing each peak is evaluated on the group's cells of
    the other fold. A link must replicate: the mirror statistic ``sign(e1 e2) min(|e1|,
    |e2|)`` of a peak with no role is symmetric about 0, so its negative values are the null
    of the positive ones; the p-value of a pair is ``(1 + #{M <= -M_pair}) / n_pairs`` and
    Benjamini–Hochberg over all tested pairs of the call controls the false discovery rate
    (data-splitting FDR control). Effects and sets need a surrogate with cis heads,
    ``model="loco"`` (the default) or ``"cis"``.

    ``method="correlation"`` is the LinkPeaks-style caller: Pearson correlation of each
    window peak with the gene over the group's cells, z-scored against accessibility-matched
    background peaks from other chromosomes, two-sided normal p-values and the same BH. It
    does not use the surrogate's predictions (only its genes and data) and has no sets.

    Parameters
    ----------
    mdata
        The data the surrogate ``key`` was fit on (gene coordinates in the RNA ``var``).
    genes
        Genes to link; default every gene of the surrogate that is expressed in the group
        (nonzero in at least ``min_expressed`` of its cells) and has a peak in its window.
        Left-out (gene, group) pairs are logged and stored with the reason.
    groupby, groups
        Cell annotation defining the groups and which of them (default all with at least
        10 cells); without ``groupby`` all cells form one group ``"all"``.
    window
        Peaks within this many bp of the gene body are tested.
    key
        The surrogate under ``mdata.uns['grids']['surrogates']``.
    fdr
        Level at which links are called ``significant`` (``qvalue <= fdr``).
    method
        ``"grids"`` or ``"correlation"``.
    L, n_steps
        Size of each gene's GRIDS set and the search's most steps (``explain``'s ``L`` and
        ``n_steps``); ``L=0`` skips the sets.
    n_folds
        Cross-fitting folds (``method="grids"``).
    screen_z
        Only window peaks whose partial correlation with the gene, given the cell state (the
        ATAC latent, the top 20 LSI components of the accessibility and the groups), is at
        least this many standard errors enter a fold's heads (at most the surrogate's
        ``cis_peaks`` of them): a peak that merely co-varies with a state never gets a head
        weight (``method="grids"``).
    resolution
        Pool each fold's statistic over the peaks whose centres lie within this many bp before
        testing (``method="grids"``), so that an element covered by adjacent tiles replicates
        whichever of its tiles each fold's heads read; e.g. ``1000`` for contiguous 500-bp
        tiles. A link is then resolved to this many bp. ``0``: each peak on its own.
    min_expressed
        Least share of a group's cells in which a gene is detected for it to be linked there.
    split_seed
        Seed of the search/validation/test split of each group's cells (the sets).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    seed
        Seed of the folds, the refits and the correlation background.
    key_added
        Key of the result in ``mdata.uns['grids']['links']``.
    executor, worker_threads
        Where the GRIDS sets run (as in :func:`grids_sc.tl.explain`); the cross-fitting
        runs here.
    progress
        Show progress bars.
    copy
        Return a copy with the result instead of writing into ``mdata``.

    Returns
    -------
    MuData or None
        ``None`` (or the copy). Writes ``mdata.uns['grids']['links'][key_added]`` with a
        ``table`` (one row per tested gene, group and peak; read it with
        :func:`grids_sc.get.link_peaks_df`): ``effect`` (relative change of the group's mean
        predicted expression when the peak alone is closed, through the gene's cis head and
        out of fold; for ``"correlation"`` the Pearson ``r``), ``se``, ``effect_low``,
        ``effect_high`` (95% interval), ``pvalue``, ``qvalue``, ``significant``,
        ``in_set``/``set_rank``, ``alone`` and ``set_effect`` (the effect of closing the peak
        alone, and the effect lost when it alone is restored in the closed set, on the full
        surrogate) with standard errors, and ``logic`` (``redundant``, ``cooperative``,
        ``independent``, or ``""`` where the intervals do not tell).
    """
    params = records.call_params(locals())
    # ---- validate everything before writing anything ----------------------------------------
    if not copy:
        records.check_not_view(mdata)
    check_copy(mdata, copy)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if not 0 < float(fdr) < 1:
        raise ValueError(f"fdr must lie in (0, 1), got {fdr!r}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0:
        raise ValueError(f"window must be a whole number of bp >= 0, got {window!r}")
    if not isinstance(L, (int, np.integer)) or L < 0:
        raise ValueError(f"L must be an integer >= 0, got {L!r}")
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, (int, np.integer))
        or resolution < 0
    ):
        raise ValueError(f"resolution must be a whole number of bp >= 0, got {resolution!r}")
    if not 0 <= float(min_expressed) <= 1:
        raise ValueError(f"min_expressed must lie in [0, 1], got {min_expressed!r}")
    records.check_key(key_added)
    executor = check_executor(executor, worker_threads)
    fitted = get_surrogate(mdata, key, check_genes=False)
    if method == "grids" and not isinstance(fitted.module, (CisSurrogate, LocoSurrogate)):
        raise ValueError(
            "link_peaks(method='grids') needs a surrogate with cis heads, model='loco' (the "
            "default) or 'cis'; "
            f"{key!r} is model={fitted.entry.get('model')!r}. Refit with "
            "grids.tl.fit_surrogate(mdata) or use method='correlation'"
        )
    rna, atac = fitted.rna, fitted.atac
    a_rna = mdata.mod[rna]
    if not {"chrom", "start", "end"} <= set(a_rna.var.columns):
        raise ValueError(
            f"link_peaks needs gene coordinates: RNA modality {rna!r} has no var "
            "chrom/start/end; add them with grids.pp.annotate_genes()"
        )
    model_genes = np.asarray(fitted.genes).astype(str)
    if genes is None:
        wanted = list(model_genes)
    else:
        wanted = [genes] if isinstance(genes, str) else [str(g) for g in genes]
        missing = sorted(set(wanted) - set(model_genes))
        if missing:
            raise KeyError(
                f"gene(s) {missing[:5]} are not among the {len(model_genes)} genes of "
                f"surrogate {key!r}"
            )
    coords = peak_coordinates(mdata.mod[atac], atac)
    pg, _ = window_pairs(coords, a_rna.var.loc[wanted], int(window))
    n_window = np.bincount(pg, minlength=len(wanted))
    left = {"gene": [], "group": [], "reason": []}
    no_peaks = [g for g, n in zip(wanted, n_window) if n == 0]
    for g in no_peaks:
        left["gene"].append(g)
        left["group"].append("")
        left["reason"].append(f"no peak within {window} bp")
    kept = [g for g, n in zip(wanted, n_window) if n > 0]
    if not kept:
        raise ValueError(f"no gene has a peak within {window} bp; check the coordinates")
    plan = make_plan(mdata, fitted, kept, 1, groupby, groups, int(window), key_added, "links")

    # ---- which (gene, group) are expressed -------------------------------------------------
    y = _expression(mdata, fitted)
    tasks = []
    for task in plan.tasks:
        frac = float((y[task.cells][:, task.gene_index[0]] > 0).mean())
        if frac < float(min_expressed):
            left["gene"].append(task.name)
            left["group"].append(task.group)
            left["reason"].append(f"detected in {frac:.3f} < {min_expressed} of the cells")
        else:
            tasks.append(task)
    n_left = len(left["gene"])
    if n_left:
        log.info(
            "link_peaks: left out %d gene/group pair(s) (no window peak: %d; expressed in "
            "fewer than %.0f%% of the group's cells: %d), e.g. %s",
            n_left,
            len(no_peaks),
            100 * float(min_expressed),
            n_left - len(no_peaks),
            list(zip(left["gene"][:3], left["group"][:3])),
        )
    if not tasks:
        raise ValueError(
            f"no gene is expressed in at least {min_expressed} of any group's cells; lower "
            "min_expressed"
        )
    plan.tasks = tasks
    dev = task_device(device, executor)

    # ---- run -----------------------------------------------------------------------------------
    with timed(f"link_peaks ({method}): {len(tasks)} gene/group pair(s)"):
        if method == "grids":
            parts = _grids_links(mdata, plan, fitted, y, groupby, n_folds, seed, dev, progress,
                                 float(screen_z), int(resolution))  # fmt: skip
            sets = _sets(plan, key, L, n_steps, split_seed, seed, groupby, window, dev,
                         executor, worker_threads, progress)  # fmt: skip
        else:
            correlation_inputs(mdata, plan)
            parts = [correlation_task(plan.x_all[t.cells], t, seed) for t in tasks]
            sets = [None] * len(tasks)
    table = _table(plan, parts, sets, method, float(fdr))
    record = {
        "table": table,
        "columns": np.asarray(list(table), dtype=str),
        "left_out": {k: np.asarray(v, dtype=str) for k, v in left.items()},
        "settings": {
            "method": method,
            "surrogate": key,
            "fdr": float(fdr),
            "groupby": groupby,
            "window": int(window),
            "L": int(L),
            "n_folds": int(n_folds),
            "min_expressed": float(min_expressed),
            "screen_z": float(screen_z),
            "resolution": int(resolution),
            "seed": int(seed),
            "split_seed": int(split_seed),
        },
    }
    target = copy_of(mdata) if copy else mdata
    records.write(target, "links", key_added, record, params)
    n_sig = int(np.sum(table["significant"]))
    log.info(
        "added %d tested pair(s), %d significant at FDR %.2f, to .uns['grids']['links'][%r]",
        len(table["peak"]),
        n_sig,
        fdr,
        key_added,
    )
    return target if copy else None


def _grids_links(
    mdata, plan, fitted, y, groupby, n_folds, seed, dev, progress, screen_z, resolution
):
    """Cross-fit the cis heads and compute every task's out-of-fold effects."""
    a_rna = mdata.mod[plan.rna]
    cis_record = dict(fitted.entry["config"].get("cis", {}))
    coords = peak_coordinates(mdata.mod[plan.atac], plan.atac)
    pg, pp = window_pairs(coords, a_rna.var.loc[list(fitted.genes)], cis_window(fitted))
    wanted = np.unique(np.concatenate([t.gene_index for t in plan.tasks]))
    keep = np.isin(pg, wanted)
    strata = None
    if groupby is not None:
        strata = obs_column(mdata, groupby, (plan.rna, plan.atac)).astype(str).to_numpy()
    fold = fold_of_cells(mdata.n_obs, strata, int(n_folds), int(seed))
    covariates = state_covariates(plan.x_all, strata, seed=int(seed))
    with timed(f"link_peaks: cis heads refit on {n_folds} folds"):
        cf = crossfit(
            fitted.module, cis_record, plan.x_all, y, (pg[keep], pp[keep]), fold,
            seed=int(seed), device=dev, progress=progress, covariates=covariates,
            min_z=screen_z,
        )  # fmt: skip
    mid = (coords["start"].to_numpy(np.float64) + coords["end"].to_numpy(np.float64)) / 2
    return [crossfit_task(cf, plan.x_all, t, dev, mid, resolution) for t in plan.tasks]


def _sets(plan, key, L, n_steps, split_seed, seed, groupby, window, dev, executor, threads,
          progress) -> list:  # fmt: skip
    """Each task's GRIDS set with intervals (``None`` without sets), grouped by the set size
    its window allows.
    """
    out: list = [None] * len(plan.tasks)
    if L == 0:
        return out
    sizes = np.array([min(int(L), int(t.candidates.sum())) for t in plan.tasks])
    all_tasks = plan.tasks
    for size in np.unique(sizes):
        idx = np.flatnonzero(sizes == size)
        settings = SelectionSettings(
            method="grids", surrogate=key, L=int(size), window=int(window),
            split_seed=int(split_seed), seed=int(seed), groupby=groupby, n_steps=int(n_steps),
        )  # fmt: skip
        sub = dataclasses.replace(plan, tasks=[all_tasks[i] for i in idx])
        results = run_plan(sub, link_set_task, settings, (dev,), executor, threads,
                           "link_peaks sets", progress)  # fmt: skip
        for i, res in zip(idx, results):
            out[i] = res
    return out


def _table(plan, parts: list[dict], sets: list, method: str, fdr: float) -> dict:
    """The call's link table as plain column arrays, with p-values, BH q-values and calls."""
    cols: dict[str, list] = {c: [] for c in records.LINK_COLUMNS}
    extra: dict[str, list] = {"isolated": [], "mirror": [], "stat_fold0": [], "stat_fold1": []}
    for task, part, st in zip(plan.tasks, parts, sets):
        peaks = part["peak_index"]
        m = len(peaks)
        cols["gene"].append(np.full(m, task.name, dtype=object))
        cols["group"].append(np.full(m, task.group, dtype=object))
        cols["peak"].append(plan.peak_names[peaks].astype(object))
        cols["effect"].append(part["effect"])
        cols["se"].append(part["se"])
        if method == "correlation":
            cols["effect_low"].append(part["low"])
            cols["effect_high"].append(part["high"])
            cols["pvalue"].append(part["pvalue"])
        else:
            cols["effect_low"].append(part["effect"] - Z95 * part["se"])
            cols["effect_high"].append(part["effect"] + Z95 * part["se"])
            extra["isolated"].append(part["isolated"])
            extra["mirror"].append(part["mirror"])
            extra["stat_fold0"].append(part["folds"][:, 0])
            extra["stat_fold1"].append(part["folds"][:, 1])
        rank = np.zeros(m, dtype=np.int64)
        vals = {k: np.full(m, np.nan) for k in ("alone", "alone_se", "set_effect", "set_effect_se")}
        logic = np.full(m, "", dtype=object)
        if st is not None:
            pos = pd.Index(peaks).get_indexer(st["selected_index"])
            ok = pos >= 0
            rank[pos[ok]] = np.arange(1, len(pos) + 1)[ok]
            vals["alone"][pos[ok]] = st["alone"][ok]
            vals["alone_se"][pos[ok]] = st["alone_se"][ok]
            vals["set_effect"][pos[ok]] = st["restored"][ok]
            vals["set_effect_se"][pos[ok]] = st["restored_se"][ok]
            logic[pos[ok]] = logic_of(
                st["alone"], st["alone_se"], st["restored"], st["restored_se"]
            )[ok]
        cols["in_set"].append(rank > 0)
        cols["set_rank"].append(rank)
        for k, v in vals.items():
            cols[k].append(v)
        cols["logic"].append(logic)
    out = {
        k: np.concatenate(v)
        for k, v in cols.items()
        if k not in ("pvalue", "qvalue", "significant")
    }
    if method == "grids":
        extra_out = {k: np.concatenate(v) for k, v in extra.items()}
        out["pvalue"] = mirror_pvalues(extra_out["mirror"])
        out.update(extra_out)
    else:
        out["pvalue"] = np.concatenate(cols["pvalue"])
    out["qvalue"] = bh(out["pvalue"])
    out["significant"] = out["qvalue"] <= fdr
    for k in ("gene", "group", "peak", "logic"):
        out[k] = out[k].astype(str)
    return {
        k: out[k]
        for k in (*records.LINK_COLUMNS, *[c for c in out if c not in records.LINK_COLUMNS])
    }
