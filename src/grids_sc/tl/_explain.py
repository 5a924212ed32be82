"""``grids.tl.explain``: the GRIDS subset search for the CREs a gene depends on."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from mudata import MuData

from .. import _records as records
from .._device import resolve_device
from .._logging import logger as log
from ..search import EmbeddingSumProblem, run_search
from ..search._run import INITS
from ._executor import check_executor, run_tasks
from ._inputs import atac_binary, obs_column, split_cells
from ._surrogate import get_surrogate
from ._windows import gene_coordinates, peak_coordinates, window_mask

MIN_GROUP_CELLS = 10
PERTURB = {"close": 0.0, "open": 1.0}
DIRECTION = {"down": 1.0, "up": -1.0}
MOVES = ("pair", "single")
REL_FLOOR = 0.01  # Rel Δ counts cells predicted at >= 1% of the group mean


@dataclass
class _Task:
    """One (gene, group) run: all a worker needs besides the surrogate and the group's rows."""

    name: str  # gene or gene-set name
    genes: list[str]
    gene_index: np.ndarray  # output positions of the genes in the surrogate
    group: str
    cells: np.ndarray  # integer positions of the group's cells in the MuData
    candidates: np.ndarray  # boolean mask of the candidate peaks
    key: str
    inputs: dict = field(default_factory=dict)  # method-specific inputs (attribute)


def _gene_specs(gene, model_genes: np.ndarray) -> list[tuple[str, list[str]]]:
    """``[(name, genes)]``: a gene, a list of genes (one run each) or ``{name: genes}`` sets."""
    if isinstance(gene, str):
        specs = [(gene, [gene])]
    elif isinstance(gene, Mapping):
        specs = [(str(k), [str(g) for g in v]) for k, v in gene.items()]
        for name, genes in specs:
            if not genes:
                raise ValueError(f"gene set {name!r} is empty")
    elif isinstance(gene, Sequence):
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


def _group_cells(mdata, groupby, groups, mods) -> list[tuple[str, np.ndarray]]:
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


def explain(
    mdata: MuData,
    gene: str | Sequence[str] | Mapping[str, Sequence[str]],
    L: int = 10,
    *,
    groupby: str | None = None,
    groups: str | Sequence[str] | None = None,
    key: str = "surrogate",
    perturb: str = "close",
    direction: str = "down",
    n_candidates: int = 32,
    n_steps: int = 500,
    window: int | None = None,
    restarts: int = 1,
    moves: str = "pair",
    init: str = "first_order",
    split_seed: int = 2023,
    device: str = "auto",
    seed: int = 0,
    key_added: str | None = None,
    executor=None,
    worker_threads: int | None = 1,
    progress: bool = True,
    copy: bool = False,
) -> MuData | None:
    """Find the ``L`` peaks whose joint perturbation moves a gene's predicted expression most.

    GRIDS minimises (``direction="down"``) or maximises (``"up"``) the mean predicted
    expression of the gene over a group's cells with the selected peaks closed
    (``perturb="close"``) or opened (``"open"``), by gradient-guided coordinate descent over
    the index set (:class:`grids_sc.search.GridsOptimizer`). The group's cells are split
    70/10/20 into search, validation and test cells; the search uses the first, restarts are
    ranked on the second, and the effect is reported on the held-out test cells.

    Parameters
    ----------
    mdata
        The data the surrogate ``key`` was fit on.
    gene
        A gene; a list of genes (one search each); or a dict ``{name: [genes]}`` of gene sets,
        each searched with the gene-set objective (mean relative change over the set).
    L
        Number of peaks to select.
    groupby
        Cell annotation defining groups (default: all cells form one group, ``"all"``).
    groups
        Group(s) to explain; default all groups of ``groupby`` with at least 10 cells.
    key
        Surrogate under ``mdata.uns['grids']``.
    perturb
        ``"close"`` (set selected peaks to 0) or ``"open"`` (set them to 1).
    direction
        ``"down"`` or ``"up"``: which way expression should move.
    n_candidates
        Swaps evaluated exactly per step.
    n_steps
        Most search steps (the search stops earlier when no swap improves).
    window
        Only peaks within this many bp of the gene body (of any gene of a set) are candidates;
        needs gene coordinates in the RNA ``var``. ``None``: all peaks.
    restarts
        Searches from different starts; the best on validation cells is kept and each peak's
        selection frequency is reported as its confidence.
    moves
        ``"pair"``: each step also tries replacing two selected peaks by two new ones, scored
        by the second-order interaction of the peaks in the surrogate, so redundant (OR)
        peaks that matter only together are found. ``"single"``: one swap per step, the
        paper's coordinate descent.
    init
        Where the search starts: ``"greedy"`` builds the start one peak at a time, each
        addition evaluated exactly given the peaks already chosen
        (:func:`grids_sc.search.greedy_selection`); ``"first_order"`` starts from the top
        ``L`` first-order scores (``attribute(method="first_order")``), as in the paper.
    split_seed
        Seed of the search/validation/test split of each group (2023 as in the paper).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    seed
        Seed of the restarts.
    key_added
        Result key (one run) or key prefix (several runs). Default ``grids_{gene}_{group}``.
    executor
        Where the runs go: ``None`` runs them here one after the other; a
        ``dask.distributed.Client`` or a dask scheduler address (``"tcp://host:8786"``), or
        any ``concurrent.futures.Executor`` whose workers share this machine's file system
        (e.g. ``ProcessPoolExecutor``) runs each (gene, group) as one task. Each worker gets
        the surrogate once and each task only its group's accessibility rows; the results
        are stored here in the order of the serial run and are the same. With an executor,
        ``device`` is resolved on each worker. A failed task raises
        :class:`~grids_sc.tl.TaskError` naming it (the worker's exception is its cause), and
        nothing is written.
    worker_threads
        Torch threads of each task in a worker process (1 avoids oversubscribing cores that
        run one task each); ``None`` leaves the workers' setting.
    progress
        Show a progress bar over the runs (with an executor, it advances as runs finish).
    copy
        Return a copy with the results instead of writing into ``mdata``.

    Returns
    -------
    MuData or None
        ``None`` (or the copy). Each run writes ``mdata.uns['grids']['explain'][key]`` with
        ``gene``, ``group``, ``selected`` (peaks in order of importance), ``trace``, ``delta``
        (Avg/Rel Δ on search and test cells), ``per_cell``, ``per_peak`` (effect of each peak alone
        and loss of effect when only it is restored; selection frequency) and ``settings``; and
        ATAC ``var`` columns ``{key}_selected``, ``{key}_rank`` (1 = most important, 0 = not
        selected) and ``{key}_score`` (first-order gain of perturbing the peak given the
        selection, relative to mean expression; NaN outside the window), plus
        ``{key}_frequency`` when ``restarts > 1``.
    """
    params = records.call_params(locals())
    # ---- validate everything before writing anything ----------------------------------------
    check_objective(perturb, direction, L)
    if moves not in MOVES:
        raise ValueError(f"moves must be one of {list(MOVES)}, got {moves!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    if n_candidates < 1 or n_steps < 0 or restarts < 1:
        raise ValueError("n_candidates and restarts must be at least 1, n_steps at least 0")
    executor = check_executor(executor, worker_threads)
    plan = _plan(mdata, gene, L, groupby, groups, key, window, key_added, "grids")
    dev = _device(device, executor)
    settings = {
        "L": int(L),
        "perturb": perturb,
        "direction": direction,
        "n_candidates": int(n_candidates),
        "n_steps": int(n_steps),
        "window": None if window is None else int(window),
        "restarts": int(restarts),
        "moves": moves,
        "init": init,
        "split_seed": int(split_seed),
        "seed": int(seed),
        "groupby": groupby,
        "surrogate": key,
        "method": "grids",
    }

    # ---- run -----------------------------------------------------------------------------------
    results = run_plan(plan, explain_task, settings, (dev,), executor, worker_threads, "explain",
                       progress)  # fmt: skip
    return _write(mdata, plan, results, copy, params)


def _device(device: str, executor) -> torch.device | str:
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


def check_objective(perturb: str, direction: str, L) -> None:
    """Validate the settings of the objective shared by ``explain`` and ``attribute``."""
    if perturb not in PERTURB:
        raise ValueError(f"perturb must be one of {list(PERTURB)}, got {perturb!r}")
    if direction not in DIRECTION:
        raise ValueError(f"direction must be one of {list(DIRECTION)}, got {direction!r}")
    if not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L must be a positive integer, got {L!r}")


@dataclass
class _Plan:
    """Everything a run over (gene, group) tasks needs, validated before anything runs."""

    fitted: object  # FittedSurrogate
    rna: str
    atac: str
    tasks: list[_Task]
    x_all: object  # CSR accessibility of all cells
    gene_pos: dict[str, int]
    peak_names: np.ndarray

    @property
    def record(self) -> dict:
        """The surrogate's plain-array record (what workers receive)."""
        return self.fitted.record.module_record


def _plan(mdata, gene, L, groupby, groups, key, window, key_added, prefix) -> _Plan:
    """Check the inputs and list the (gene, group) tasks of an explain or attribute run."""
    fitted = get_surrogate(mdata, key, check_genes=False)
    rna, atac = fitted.rna, fitted.atac
    specs = _gene_specs(gene, fitted.genes)
    group_list = _group_cells(mdata, groupby, groups, (rna, atac))
    if not group_list:
        raise ValueError(f"no group of {groupby!r} has at least {MIN_GROUP_CELLS} cells")
    x_all = atac_binary(mdata.mod[atac], fitted.layer, atac)
    n_peaks = x_all.shape[1]
    masks = {}
    for name, genes in specs:
        if window is None:
            masks[name] = np.ones(n_peaks, dtype=bool)
        else:
            coords = gene_coordinates(mdata.mod[rna], genes, rna)
            masks[name] = window_mask(peak_coordinates(mdata.mod[atac], atac), coords, int(window))
        n_cand = int(masks[name].sum())
        if L > n_cand:
            raise ValueError(
                f"L={L} is more than the {n_cand} candidate peaks for {name!r}"
                + (f" within {window} bp" if window is not None else "")
            )
    many = len(specs) * len(group_list) > 1
    gene_pos = {g: i for i, g in enumerate(fitted.genes)}
    tasks = []
    for name, genes in specs:
        index = np.asarray([gene_pos[g] for g in genes], dtype=np.int64)
        for gname, cells in group_list:
            if key_added is None:
                k = f"{prefix}_{name}_{gname}"
            else:
                k = f"{key_added}_{name}_{gname}" if many else key_added
            tasks.append(_Task(name, genes, index, gname, cells, masks[name], _sanitize(k)))
    return _Plan(
        fitted,
        rna,
        atac,
        tasks,
        x_all,
        gene_pos,
        mdata.mod[atac].var_names.to_numpy().astype(str),
    )


def _write(mdata, plan: _Plan, results, copy: bool, params: dict):
    """Store each task's record and ``.var`` columns (in ``mdata`` or a copy)."""
    target = mdata.copy() if copy else mdata
    new = {}
    for task, (record, columns) in zip(plan.tasks, results):
        records.write(target, "selection", task.key, _named(record, plan.peak_names), params)
        new.update({f"{task.key}_{col}": values for col, values in columns.items()})
    a_atac = target.mod[plan.atac]
    columns = pd.DataFrame(new, index=a_atac.var_names)
    records.replace_var_columns(a_atac, [task.key for task in plan.tasks], columns)
    log.info(
        "added %d result(s) to .uns['grids']['explain'] and their columns to .mod[%r].var",
        len(plan.tasks),
        plan.atac,
    )
    return target if copy else None


def _named(record: dict, names: np.ndarray) -> dict:
    """The record with the names of its selected peaks (workers return their indices)."""
    idx = record["selected_index"]
    out = {}
    for k, v in record.items():
        if k == "selected_index":
            out["selected"] = names[idx]
        out[k] = v
    out["per_peak"] = {"peak": names[idx], **record["per_peak"]}
    return out


def _delta_stats(before: np.ndarray, after: np.ndarray) -> dict:
    """Avg Δ = mean(after - before); Rel Δ = mean((after - before) / before) over the cells
    where the gene is predicted expressed (averaged over genes); and the relative change of
    the mean.

    A cell counts for Rel Δ when its predicted expression before the perturbation is at
    least ``REL_FLOOR`` (1%) of the group's mean: the surrogate is clamped at 0, and one cell
    predicted at 0.0002 that moves to 0.07 would otherwise add +30,000% to a mean over 100
    cells. ``rel_cells`` is the share of cells that count (averaged over genes).
    """
    diff = after - before
    mean_before = before.mean(0)
    expressed = before >= np.maximum(REL_FLOOR * mean_before, 1e-8)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(expressed, diff / before, np.nan)
        rel_means = (after.mean(0) - mean_before) / mean_before
    return {
        "avg": float(diff.mean()),
        "rel": float(np.nanmean(np.nanmean(rel, axis=0)))
        if np.isfinite(rel).any()
        else float("nan"),
        "rel_of_means": float(np.nanmean(rel_means)),
        "rel_cells": float(expressed.mean()),
        "n_cells": int(before.shape[0]),
    }


def problems(module, rows, task: _Task, settings: dict, dev) -> tuple[dict, dict, dict]:
    """The group's search/validation/test cells (positions in the MuData and in ``rows``) and
    a problem on each (a split may be empty).
    """
    split = split_cells(len(task.cells), None, settings["split_seed"])
    local = {s: np.flatnonzero(split == i) for i, s in enumerate(("train", "validation", "test"))}
    cells = {s: task.cells[i] for s, i in local.items()}
    p, sign = PERTURB[settings["perturb"]], DIRECTION[settings["direction"]]
    dev = resolve_device(dev)
    probs = {
        s: EmbeddingSumProblem(module, rows[i], task.gene_index, p, sign, dev)
        for s, i in local.items()
        if len(i)
    }
    return cells, local, probs


def explain_task(module, rows, task: _Task, settings: dict, dev) -> tuple[dict, dict]:
    """One GRIDS run: the surrogate, the group's CSR rows, the task and the settings ->
    the record (selected peaks by index) and the ``.var`` columns. Runs on workers.
    """
    cells, _, probs = problems(module, rows, task, settings, dev)
    mask = task.candidates
    res = run_search(
        probs["train"],
        settings["L"],
        candidates=torch.from_numpy(mask),
        n_candidates=settings["n_candidates"],
        n_steps=settings["n_steps"],
        restarts=settings["restarts"],
        seed=settings["seed"],
        validation=probs.get("validation"),
        moves=settings["moves"],
        init=settings["init"],
    )
    sel = torch.from_numpy(res.selection)
    sign = DIRECTION[settings["direction"]]
    d_final = probs["train"].first_order(sel).cpu().numpy()
    score = np.where(mask, -d_final, np.nan)
    width = max(len(t) for t in res.traces)
    traces = np.full((len(res.traces), width), np.nan)
    for i, t in enumerate(res.traces):
        traces[i, : len(t)] = sign * t - 1.0  # relative change of mean expression
    extra = {
        "trace": traces[res.best_restart][: len(res.traces[res.best_restart])],
        "restart_traces": traces,
        "restart_scores": res.restart_scores,
        "best_restart": int(res.best_restart),
    }
    return selection_record(
        task, res.selection, score, cells, probs, settings, extra, res.frequency
    )


def selection_record(
    task: _Task,
    selection: np.ndarray,
    score: np.ndarray,
    cells: dict,
    probs: dict,
    settings: dict,
    extra: dict,
    frequency: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """The stored record and ``.var`` columns of a selection, the same for every method:
    Avg/Rel Δ on search and test cells, per-cell predictions, and each selected peak's
    effect alone and loss of effect when only it is restored (on the search cells). Peaks are
    given by index (``selected_index``); the names are added when the record is stored.
    """
    sel = torch.from_numpy(np.asarray(selection, dtype=np.int64))
    train = probs["train"]
    to_rel = DIRECTION[settings["direction"]]  # objective = sign * mean relative expression
    base_value = train.value(torch.empty(0, dtype=torch.long))
    full_value = train.value(sel)
    alone = np.array([to_rel * (train.value(sel[[i]]) - base_value) for i in range(len(sel))])
    keep = [torch.cat([sel[:i], sel[i + 1 :]]) for i in range(len(sel))]
    restored = np.array([to_rel * (train.value(k) - full_value) for k in keep])

    delta, per_cell = {}, {"cell": [], "split": [], "before": [], "after": []}
    for s in ("train", "test"):
        if s not in probs:
            continue
        before, after = probs[s].per_cell(sel)
        for k, v in _delta_stats(before, after).items():
            delta[f"{k}_{s}"] = v
        per_cell["cell"].append(cells[s])
        per_cell["split"].append(np.full(len(cells[s]), s))
        per_cell["before"].append(before)
        per_cell["after"].append(after)
    per_cell = {k: np.concatenate(v) for k, v in per_cell.items()}
    per_cell["cell"] = per_cell["cell"].astype(np.int64)

    mask = task.candidates
    rank = np.zeros(len(mask), dtype=np.int64)
    rank[sel.numpy()] = np.arange(1, len(sel) + 1)
    columns = {"selected": rank > 0, "rank": rank, "score": score.astype(np.float64)}
    if frequency is not None and settings.get("restarts", 1) > 1:
        columns["frequency"] = frequency
    per_peak = {
        "rank": np.arange(1, len(sel) + 1),
        "alone": alone,
        "restored": restored,
    }
    if frequency is not None:
        per_peak["frequency"] = frequency[sel.numpy()]
    record = {
        "gene": np.asarray(task.genes, dtype=str),
        "name": task.name,
        "group": task.group,
        "selected_index": sel.numpy().astype(np.int64),
        **extra,
        "delta": delta,
        "per_cell": per_cell,
        "per_peak": per_peak,
        "n_candidates_in_window": int(mask.sum()),
        "settings": dict(settings),
    }
    return record, columns
