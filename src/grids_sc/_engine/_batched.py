"""Batches of (gene, group) tasks run together: the engine's genome-wide path.

A :class:`TaskBatch` is up to ``batch_size`` tasks of one group (the same cells, so the same
search/validation/test split). :func:`explain_batch` builds the surrogate's evaluator of each
split once for the group (one encoder pass) and derives each gene's from it
(:meth:`~grids_sc.model.IncrementalSurrogate.for_genes`), runs all the batch's searches
together (:func:`~grids_sc.search._batched.run_searches`) and returns each task's result as
:func:`~grids_sc._engine.explain_task` would. The executor runs batches as it runs tasks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import torch

from .._device import resolve_device
from .._inputs import split_cells
from .._logging import logger
from ..search import EmbeddingSumProblem
from ..search._batched import run_searches
from ._executor import run_tasks
from ._plan import Task
from ._progress import on_step
from ._selection import search_record, unexpressed
from ._settings import SelectionSettings
from ._starts import search_starts

BATCH_SIZE = 64  # tasks per batch (the default of explain's batch_size)
BATCH_MIN_TASKS = 8  # explain(batched=None) runs batches from this many tasks on


@dataclass
class TaskBatch:
    """Tasks of one group run together (what a worker receives instead of one task).

    ``run`` names the call the batch belongs to: a process that runs several batches of one
    group in one call builds the group's evaluators once (:func:`group_evaluators`).
    """

    tasks: list[Task]
    run: str = ""

    @property
    def group(self) -> str:
        return self.tasks[0].group

    @property
    def cells(self) -> np.ndarray:
        return self.tasks[0].cells

    @property
    def name(self) -> str:
        names = [t.name for t in self.tasks]
        return names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)} genes)"

    @property
    def key(self) -> str:
        return self.tasks[0].key


def make_batches(tasks: list[Task], batch_size: int) -> list[TaskBatch]:
    """The tasks in batches of at most ``batch_size`` tasks of one group, in plan order of
    their first task (a group's tasks keep their order).
    """
    by_group: dict[str, list[Task]] = {}
    for task in tasks:
        by_group.setdefault(task.group, []).append(task)
    run = uuid.uuid4().hex
    return [
        TaskBatch(group_tasks[i : i + batch_size], run)
        for group_tasks in by_group.values()
        for i in range(0, len(group_tasks), batch_size)
    ]


# the evaluators of the group whose batch was built last in this process (one entry)
_GROUP_EVALUATORS: dict[tuple, dict] = {}


def group_evaluators(module, split_rows: dict, batch: TaskBatch, settings, dev) -> tuple:
    """The surrogate's evaluator of each split's cells (``split_rows``: their CSR rows by
    split) of the batch's group, and whether they were built now: the batches of one group
    in one call (``batch.run``) that run in this process share them (one encoder pass per
    group, however many batches). Only the last group's are kept.
    """
    key = (batch.run, batch.group, settings.perturb_value, str(dev))
    if batch.run and key in _GROUP_EVALUATORS:
        return _GROUP_EVALUATORS[key], False
    first = batch.tasks[0]
    p = settings.perturb_value
    base = {s: module.incremental(x, first.gene_index, p, dev) for s, x in split_rows.items()}
    _GROUP_EVALUATORS.clear()
    if batch.run:
        _GROUP_EVALUATORS[key] = base
    return base, True


def batch_problems(module, rows, batch: TaskBatch, settings: SelectionSettings, dev):
    """The split of the batch's group (the same for all its tasks) and each task's problems
    ``{split: EmbeddingSumProblem}``, sharing one evaluator of each split's cells (that of
    :func:`group_evaluators`).
    """
    tasks = batch.tasks
    first = tasks[0]
    split = split_cells(len(first.cells), None, settings.split_seed)
    local = {s: np.flatnonzero(split == i) for i, s in enumerate(("train", "validation", "test"))}
    cells = {s: first.cells[i] for s, i in local.items()}
    p, sign = settings.perturb_value, settings.sign
    dev = resolve_device(dev)
    split_rows = {s: rows[i] for s, i in local.items() if len(i)}
    base, fresh = group_evaluators(module, split_rows, batch, settings, dev)
    out = []
    for t, task in enumerate(tasks):
        probs = {}
        for s, i in local.items():
            if not len(i):
                continue
            model = base[s].for_genes(task.gene_index)
            if model is None:  # a surrogate that shares nothing: nothing to keep either
                _GROUP_EVALUATORS.clear()
                # the first task takes the evaluator built for it; the others build their own
                model = base[s] if t == 0 and fresh else None
            probs[s] = EmbeddingSumProblem(
                module, split_rows[s], task.gene_index, p, sign, dev, model=model
            )
        if "train" in probs:  # as problems(): the candidates' first-order scores only
            probs["train"].score_only(task.candidates)
        out.append(probs)
    return cells, out


def explain_batch(module, rows, batch: TaskBatch, settings: SelectionSettings, dev, progress=None):
    """The results of :func:`~grids_sc._engine.explain_task` for every task of ``batch``
    (records, or :class:`~grids_sc._engine._selection.Skipped`), computed together.
    """
    logger.info("explain: a batch of %d task(s) in group %r", len(batch.tasks), batch.group)
    cells, probs = batch_problems(module, rows, batch, settings, dev)
    results: list = [None] * len(batch.tasks)
    live = []
    for t, task in enumerate(batch.tasks):
        skipped = unexpressed(task, probs[t])
        if skipped is not None:
            results[t] = skipped
        else:
            live.append(t)
    found = run_searches(
        [probs[t]["train"] for t in live],
        settings.L,
        candidates=[torch.from_numpy(batch.tasks[t].candidates) for t in live],
        validations=[probs[t].get("validation") for t in live],
        on_steps=[on_step(batch.tasks[t], settings, progress) for t in live],
        n_candidates=settings.n_candidates,
        n_steps=settings.n_steps,
        restarts=settings.restarts,
        seed=settings.seed,
        moves=settings.moves,
        min_z=settings.min_move_z,
        inits=[search_starts(settings, probs[t]["train"], batch.tasks[t]) for t in live],
    )
    if hasattr(progress, "close"):
        progress.close()
    for t, res in zip(live, found):
        results[t] = search_record(batch.tasks[t], res, cells, probs[t], settings)
    return results


def use_batches(batched: bool | None, n_tasks: int) -> bool:
    """Whether a call runs batches: ``batched`` when given, else from
    :data:`BATCH_MIN_TASKS` tasks on.
    """
    return bool(batched) if batched is not None else n_tasks >= BATCH_MIN_TASKS


def run_batches(plan, fn, settings, args, executor, worker_threads, desc, progress, batch_size):
    """Run ``fn`` (:func:`explain_batch`) on the plan's tasks in batches of ``batch_size``
    (here or on ``executor``, one batch per worker call); the results in plan order.
    """
    batches = make_batches(plan.tasks, batch_size)
    last: dict = {}

    def rows_of(batch: TaskBatch):  # a group's rows, sliced once for its batches in a row
        if last.get("group") != batch.group:
            last.update(group=batch.group, rows=plan.x_all[batch.cells])
        return last["rows"]

    try:
        out = run_tasks(
            fn,
            plan.fitted.module,
            plan.record,
            rows_of,
            batches,
            settings,
            args,
            executor=executor,
            worker_threads=worker_threads,
            desc=f"{desc} batches",
            progress=progress,
        )
    finally:
        _GROUP_EVALUATORS.clear()  # what this process kept of the call's last group
    found = {id(task): result for b, res in zip(batches, out) for task, result in zip(b.tasks, res)}
    return [found[id(task)] for task in plan.tasks]
