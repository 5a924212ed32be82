"""Plans of (gene, group) tasks: which genes, which cells, which candidate peaks, and the
surrogate's accessibility rows, validated before anything runs; and running them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from pandas.api.types import is_list_like

from .._device import resolve_device
from .._genome import PeakIndex, gene_coordinates, peak_coordinates
from .._inputs import atac_rows, obs_column
from .._records import check_key, scalar
from ._executor import run_tasks

MIN_GROUP_CELLS = 10
AUTO_WINDOW = "auto"
DEFAULT_WINDOW = 250_000  # bp; the cis window of surrogates fit before it was recorded


def cis_window(fitted) -> int | None:
    """The window (bp around the gene body) of a surrogate's cis heads, as fit; ``None`` for
    a surrogate without them (``model="grids"``).
    """
    cis = fitted.entry["config"].get("cis")
    if not cis:
        return None
    return int(scalar(cis.get("window", DEFAULT_WINDOW)))


def resolve_window(window, fitted) -> int | None:
    """The candidate window (bp around the gene body; ``None``: all peaks) of an ``explain``
    or ``attribute`` call. ``"auto"`` is the surrogate's own cis window (``cis_window`` of
    :func:`~grids_sc.tl.fit_surrogate`) when it has cis heads (``model="cis"`` or ``"loco"``),
    and all peaks for the paper's architecture, which has no window.
    """
    if isinstance(window, str):
        if window != AUTO_WINDOW:
            raise ValueError(
                f"window must be a number of bp, None (all peaks) or {AUTO_WINDOW!r} (the "
                f"surrogate's cis window), got {window!r}"
            )
        return cis_window(fitted)
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0:
        raise ValueError(
            f"window must be a whole number of bp >= 0, None (all peaks) or {AUTO_WINDOW!r}, "
            f"got {window!r}"
        )
    return int(window)


@dataclass
class Task:
    """One (gene, group) run: all a worker needs besides the surrogate and the group's rows."""

    name: str  # gene or gene-set name
    genes: list[str]
    gene_index: np.ndarray  # output positions of the genes in the surrogate
    group: str
    cells: np.ndarray  # integer positions of the group's cells in the MuData
    candidates: np.ndarray  # boolean mask of the candidate peaks
    key: str
    inputs: dict = field(default_factory=dict)  # method-specific inputs (attribute)


def gene_specs(gene, model_genes: np.ndarray) -> list[tuple[str, list[str]]]:
    """``[(name, genes)]``: a gene, a list of genes (one run each) or ``{name: genes}`` sets."""
    if isinstance(gene, str):
        specs = [(gene, [gene])]
    elif isinstance(gene, Mapping):
        specs = [(str(k), [str(g) for g in v]) for k, v in gene.items()]
        for name, genes in specs:
            if not genes:
                raise ValueError(f"gene set {name!r} is empty")
    elif is_list_like(gene):
        specs = [(str(g), [str(g)]) for g in gene]
    else:
        raise TypeError("gene must be a gene name, a list of names, or a dict of gene sets")
    if not specs:
        raise ValueError("no gene given")
    known = set(model_genes)
    missing = sorted({g for _, gs in specs for g in gs if g not in known})
    if missing:
        raise KeyError(
            f"gene(s) {missing[:5]} not among the {len(model_genes)} genes of the surrogate "
            "(the RNA modality it was fit on)"
        )
    return specs


def group_cells(mdata, groupby, groups, mods) -> list[tuple[str, np.ndarray]]:
    if groupby is None:
        if groups is not None:
            raise ValueError("groups= needs groupby= to say which annotation they come from")
        return [("all", np.arange(mdata.n_obs))]
    labels = obs_column(mdata, groupby, mods).astype(str).to_numpy()
    present = pd.unique(labels)
    if groups is None:
        out = []
        for g in sorted(present):
            idx = np.flatnonzero(labels == g)
            if len(idx) < MIN_GROUP_CELLS:
                warnings.warn(
                    f"skipping group {g!r} of {groupby!r}: {len(idx)} cells (< {MIN_GROUP_CELLS})",
                    stacklevel=3,
                )
                continue
            out.append((g, idx))
        return out
    groups = [groups] if isinstance(groups, str) else list(groups)
    out = []
    for g in groups:
        idx = np.flatnonzero(labels == str(g))
        if len(idx) == 0:
            raise KeyError(f"group {g!r} not found in {groupby!r}; it has {sorted(present)[:20]}")
        if len(idx) < MIN_GROUP_CELLS:
            raise ValueError(
                f"group {g!r} of {groupby!r} has {len(idx)} cells; at least {MIN_GROUP_CELLS} are "
                "needed to split them into search, validation and test cells"
            )
        out.append((str(g), idx))
    return out


def _sanitize(key: str) -> str:
    return key.replace("/", "_")


def task_device(device: str, executor) -> torch.device | str:
    """The device here (serial), or the name each worker resolves (with an executor)."""
    if executor is None:
        return resolve_device(device)
    try:
        torch.device(device if device != "auto" else "cpu")
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'") from err
    return device


def run_plan(plan, fn, settings, args, executor, worker_threads, desc, progress) -> list:
    """Run ``fn`` on every task of ``plan`` (here or on ``executor``), results in plan order."""
    return run_tasks(
        fn,
        plan.fitted.module,
        plan.record,
        lambda task: plan.x_all[task.cells],
        plan.tasks,
        settings,
        args,
        executor=executor,
        worker_threads=worker_threads,
        desc=desc,
        progress=progress,
    )


@dataclass
class Plan:
    """Everything a run over (gene, group) tasks needs, validated before anything runs."""

    fitted: object  # FittedSurrogate
    rna: str
    atac: str
    tasks: list[Task]
    x_all: object  # CSR accessibility of all cells, or BackedRows (read per task)
    gene_pos: dict[str, int]
    peak_names: np.ndarray

    @property
    def record(self) -> dict:
        """The surrogate's plain-array record (what workers receive)."""
        return self.fitted.record.module_record


def warn_silent_heads(fitted, genes: list[str], gene_pos: dict[str, int]) -> None:
    """Warn when a LOCO surrogate's cis head of any of ``genes`` is silent: the state alone
    predicts such a gene, so the peaks of its own chromosome (its window) do not change it.
    """
    heads = getattr(fitted.module, "cis", None)
    if not hasattr(heads, "silent"):
        return
    silent = heads.silent().cpu().numpy()
    quiet = [g for g in genes if silent[gene_pos[g]]]
    if quiet:
        warnings.warn(
            f"{len(quiet)} gene(s) ({', '.join(quiet[:5])}{', ...' if len(quiet) > 5 else ''}) "
            f"have no cis head in surrogate {fitted.key!r} (model='loco'): their head did not "
            "beat the cell state alone on the validation cells, so no peak of their own "
            "chromosome changes their prediction, and a selection for them acts only through "
            "the peaks of other chromosomes (nothing within a window around the gene)",
            stacklevel=4,
        )


def make_plan(mdata, fitted, gene, L, groupby, groups, window, key_added, prefix) -> Plan:
    """Check the inputs and list the (gene, group) tasks of an explain or attribute run with
    the surrogate ``fitted`` (a :class:`grids_sc.tl._surrogate.FittedSurrogate`).
    """
    rna, atac = fitted.rna, fitted.atac
    specs = gene_specs(gene, fitted.genes)
    group_list = group_cells(mdata, groupby, groups, (rna, atac))
    if not group_list:
        raise ValueError(f"no group of {groupby!r} has at least {MIN_GROUP_CELLS} cells")
    x_all = atac_rows(mdata.mod[atac], fitted.layer, atac)  # backed: rows read per task
    n_peaks = x_all.shape[1]
    masks = {}
    peaks = None if window is None else PeakIndex(peak_coordinates(mdata.mod[atac], atac))
    for name, genes in specs:
        if window is None:
            masks[name] = np.ones(n_peaks, dtype=bool)
        else:
            coords = gene_coordinates(mdata.mod[rna], genes, rna)
            masks[name] = peaks.window_mask(coords, int(window))
        n_cand = int(masks[name].sum())
        if L > n_cand:
            raise ValueError(
                f"L={L} is more than the {n_cand} candidate peaks for {name!r}"
                + (
                    f" within {window} bp of the gene; pass a larger window= or window=None "
                    "(every peak a candidate)"
                    if window is not None
                    else ""
                )
            )
    many = len(specs) * len(group_list) > 1
    gene_pos = {g: i for i, g in enumerate(fitted.genes)}
    if prefix != "links":  # link_peaks reads no LOCO head (its method='grids' needs 'cis')
        warn_silent_heads(fitted, sorted({g for _, gs in specs for g in gs}), gene_pos)
    tasks = []
    for name, genes in specs:
        index = np.asarray([gene_pos[g] for g in genes], dtype=np.int64)
        for gname, cells in group_list:
            if key_added is None:
                k = f"{prefix}_{name}_{gname}"
            else:
                k = f"{key_added}_{name}_{gname}" if many else key_added
            tasks.append(Task(name, genes, index, gname, cells, masks[name], _sanitize(k)))
    for task in tasks:  # before anything runs
        check_key(task.key, "key_added" if key_added is not None and not many else "result key")
    return Plan(
        fitted,
        rna,
        atac,
        tasks,
        x_all,
        gene_pos,
        mdata.mod[atac].var_names.to_numpy().astype(str),
    )
