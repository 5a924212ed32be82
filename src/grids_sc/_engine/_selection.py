"""One (gene, group) task on a worker: its cells' split, the problems on each split, the GRIDS
search, and the record every selection method stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._device import resolve_device
from .._inputs import split_cells
from .._records import sparse_values
from ..search import EmbeddingSumProblem, run_search
from ._plan import Task
from ._progress import on_step
from ._settings import SelectionSettings
from ._starts import search_starts

REL_FLOOR = 0.01  # Rel Δ counts cells predicted at >= 1% of the group mean


@dataclass(frozen=True)
class PeakColumns:
    """A selection's per-peak ``.var`` columns, kept sparse until they are written: a
    genome-wide call holds thousands of results, and dense columns over every peak would
    cost about 1.7 MB each (100,000 peaks).

    Attributes
    ----------
    n_peaks
        The number of peaks (the columns' length).
    selected
        The selected peaks, best first (rank 1, 2, ...).
    scored, score
        The peaks with a score (NaN elsewhere) and their scores.
    frequency
        ``(peaks, values)`` where the restarts' selection frequency is not 0, or ``None``
        when the call writes no frequency column.
    """

    n_peaks: int
    selected: np.ndarray
    scored: np.ndarray
    score: np.ndarray
    frequency: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_dense(
        cls, selected: np.ndarray, score: np.ndarray, frequency: np.ndarray | None = None
    ) -> PeakColumns:
        """The columns of a selection and its dense ``score`` (and ``frequency``) over all
        peaks.
        """
        score = np.asarray(score, dtype=np.float64)
        scored = np.flatnonzero(~np.isnan(score))
        freq = None
        if frequency is not None:
            nz = np.flatnonzero(frequency)
            freq = (nz, np.asarray(frequency, dtype=np.float64)[nz])
        sel = np.asarray(selected, dtype=np.int64)
        return cls(len(score), sel, scored, score[scored], freq)

    def score_of(self, peaks: np.ndarray) -> np.ndarray:
        """The scores of ``peaks`` (NaN where unscored)."""
        return sparse_values(self.scored, self.score, peaks)

    def dense_score(self) -> np.ndarray:
        """The score column over all peaks."""
        out = np.full(self.n_peaks, np.nan)
        out[self.scored] = self.score
        return out

    def dense(self) -> dict[str, np.ndarray]:
        """The ``.var`` columns over all peaks: ``selected``, ``rank``, ``score`` (and
        ``frequency``).
        """
        rank = np.zeros(self.n_peaks, dtype=np.int64)
        rank[self.selected] = np.arange(1, len(self.selected) + 1)
        out = {"selected": rank > 0, "rank": rank, "score": self.dense_score()}
        if self.frequency is not None:
            freq = np.zeros(self.n_peaks, dtype=np.float64)
            freq[self.frequency[0]] = self.frequency[1]
            out["frequency"] = freq
        return out


@dataclass(frozen=True)
class Skipped:
    """What a task returns instead of a selection when there is nothing to move: the
    surrogate predicts 0 for a gene of the task in every search cell of the group.
    """

    name: str
    genes: list[str]
    group: str
    key: str
    reason: str


def unexpressed(task: Task, probs: dict) -> Skipped | None:
    """A :class:`Skipped` when the surrogate never predicts a gene of ``task`` above 0 on the
    group's search cells (the objective, relative to the mean, would divide by 0).
    """
    before = probs["train"].per_cell(torch.empty(0, dtype=torch.long))[0]
    zero = [g for g, hi in zip(task.genes, before.max(0)) if not hi > 0]
    if not zero:
        return None
    return Skipped(
        task.name,
        list(task.genes),
        task.group,
        task.key,
        f"the surrogate predicts 0 for gene(s) {zero} in every search cell of group "
        f"{task.group!r}, so no selection can lower or raise it; explain another gene or group"
        + (f" (or leave {zero} out of gene set {task.name!r})" if len(task.genes) > 1 else ""),
    )


def named_record(record: dict, names: np.ndarray) -> dict:
    """The record with the names of its selected peaks (workers return their indices)."""
    idx = record["selected_index"]
    out = {}
    for k, v in record.items():
        if k == "selected_index":
            out["selected"] = names[idx]
        out[k] = v
    out["per_peak"] = {"peak": names[idx], **record["per_peak"]}
    return out


def delta_stats(before: np.ndarray, after: np.ndarray) -> dict:
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


def problems(module, rows, task: Task, settings: SelectionSettings, dev) -> tuple[dict, dict, dict]:
    """The group's search/validation/test cells (positions in the MuData and in ``rows``) and
    a problem on each (a split may be empty).
    """
    split = split_cells(len(task.cells), None, settings.split_seed)
    local = {s: np.flatnonzero(split == i) for i, s in enumerate(("train", "validation", "test"))}
    cells = {s: task.cells[i] for s, i in local.items()}
    p, sign = settings.perturb_value, settings.sign
    dev = resolve_device(dev)
    probs = {
        s: EmbeddingSumProblem(module, rows[i], task.gene_index, p, sign, dev)
        for s, i in local.items()
        if len(i)
    }
    if "train" in probs:  # the search reads the first-order scores of its candidates only
        probs["train"].score_only(task.candidates)
    return cells, local, probs


def explain_task(
    module, rows, task: Task, settings: SelectionSettings, dev, progress=None
) -> tuple[dict, dict] | Skipped:
    """One GRIDS run: the surrogate, the group's CSR rows, the task and the settings ->
    the record (selected peaks by index) and the ``.var`` columns. Runs on workers.
    ``progress`` (serial runs only) receives a dict per search step (see
    :func:`~grids_sc._engine._progress.on_step`).
    """
    cells, _, probs = problems(module, rows, task, settings, dev)
    return search_task(cells, probs, task, settings, progress)


def search_task(
    cells: dict, probs: dict, task: Task, settings: SelectionSettings, progress=None
) -> tuple[dict, dict] | Skipped:
    """:func:`explain_task` on the group's cells and problems (:func:`problems`) when the
    caller has built them already.
    """
    skipped = unexpressed(task, probs)
    if skipped is not None:
        return skipped
    mask = task.candidates
    res = run_search(
        probs["train"],
        settings.L,
        candidates=torch.from_numpy(mask),
        n_candidates=settings.n_candidates,
        n_steps=settings.n_steps,
        restarts=settings.restarts,
        seed=settings.seed,
        validation=probs.get("validation"),
        moves=settings.moves,
        min_z=settings.min_move_z,
        init=search_starts(settings, probs["train"], task),
        on_step=on_step(task, settings, progress),
    )
    if hasattr(progress, "close"):
        progress.close()
    return search_record(task, res, cells, probs, settings)


def search_record(task: Task, res, cells: dict, probs: dict, settings: SelectionSettings):
    """The record and ``.var`` columns of a task's search result (a
    :class:`~grids_sc.search.SearchResult` on ``probs['train']``).
    """
    mask = task.candidates
    sel = torch.from_numpy(res.selection)
    sign = settings.sign
    d_final = probs["train"].first_order(sel).cpu().numpy()
    score = np.where(mask, -d_final, np.nan) + 0.0  # no -0.0 for peaks that move nothing
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
    task: Task,
    selection: np.ndarray,
    score: np.ndarray,
    cells: dict,
    probs: dict,
    settings: SelectionSettings,
    extra: dict,
    frequency: np.ndarray | None = None,
    more_settings: dict | None = None,
) -> tuple[dict, dict]:
    """The stored record and ``.var`` columns of a selection, the same for every method:
    Avg/Rel Δ on search and test cells, per-cell predictions, and each selected peak's
    effect alone and loss of effect when only it is restored (on the search cells). Peaks are
    given by index (``selected_index``); the names are added when the record is stored.
    """
    sel = torch.from_numpy(np.asarray(selection, dtype=np.int64))
    train = probs["train"]
    to_rel = settings.sign  # objective = sign * mean relative expression
    base_value = train.value(torch.empty(0, dtype=torch.long))
    full_value = train.value(sel)
    # each as one exact move: from the observed state (alone) and from the full set (restored)
    none = torch.zeros(len(sel), 0, dtype=torch.long)
    alone = to_rel * (train.add_values(sel[:0], sel).cpu().numpy() - base_value)
    out = torch.arange(len(sel))[:, None]
    restored = to_rel * (train.move_values(sel, out, none).cpu().numpy() - full_value)

    delta, per_cell = {}, {"cell": [], "split": [], "before": [], "after": []}
    for s in ("train", "test"):
        if s not in probs:
            continue
        before, after = probs[s].per_cell(sel)
        for k, v in delta_stats(before, after).items():
            delta[f"{k}_{s}"] = v
        per_cell["cell"].append(cells[s])
        per_cell["split"].append(np.full(len(cells[s]), s))
        per_cell["before"].append(before)
        per_cell["after"].append(after)
    per_cell = {k: np.concatenate(v) for k, v in per_cell.items()}
    per_cell["cell"] = per_cell["cell"].astype(np.int64)

    mask = task.candidates
    write_frequency = frequency is not None and settings.n_searches > 1
    columns = PeakColumns.from_dense(sel.numpy(), score, frequency if write_frequency else None)
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
        "settings": {**settings.as_record(), **(more_settings or {})},
    }
    return record, columns
