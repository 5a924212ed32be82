"""Running the (gene, group) tasks of ``explain`` and ``attribute`` serially or on an executor.

A task is a pure function ``fn(module, rows, task, settings, *args) -> (record, columns)`` of
the surrogate, the CSR accessibility rows of the task's group and the task's description.
With an executor, each worker receives the surrogate's plain-array record once and caches
the rebuilt module by a hash of its weights; each task receives only its group's rows.

- ``dask.distributed.Client`` (or a scheduler address): the record is scattered to every
  worker (``broadcast=True``) and each group's rows are scattered once and shared by that
  group's tasks.
- any ``concurrent.futures.Executor``: the record is written once to a temporary ``.npz``
  file that every worker process reads once (so the workers must share this machine's file
  system: ``ProcessPoolExecutor``, ``ThreadPoolExecutor``); the rows travel with each task.

Results come back in any order and are returned in the order of the tasks, so a distributed
run stores exactly what the serial run stores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from concurrent.futures import as_completed as cf_as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..model import surrogate_from_record

ARCH_KEY = "__architecture__"


class TaskError(RuntimeError):
    """A (gene, group) task failed on a worker; the worker's exception is the ``__cause__``.

    Attributes
    ----------
    name, group, key
        The gene (or gene set), the group and the result key of the failed task.
    """

    def __init__(self, message: str, name: str, group: str, key: str) -> None:
        super().__init__(message)
        self.name, self.group, self.key = name, group, key


# ---- the model as workers receive it ----------------------------------------------------------
@dataclass(frozen=True)
class ModelRecord:
    """The surrogate as plain arrays (what is scattered to dask workers) and its hash."""

    token: str
    record: dict


@dataclass(frozen=True)
class ModelFile:
    """The surrogate saved in an ``.npz`` file on a shared file system, and its hash."""

    token: str
    path: str


def weights_token(record: dict) -> str:
    """A hash of a surrogate record (architecture and every weight's dtype, shape and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(_plain(record["architecture"]), sort_keys=True).encode())
    for name in sorted(record["weights"]):
        w = np.ascontiguousarray(record["weights"][name])
        h.update(f"{name}:{w.dtype.str}:{w.shape}".encode())
        h.update(memoryview(w).cast("B"))
    return h.hexdigest()


def _plain(obj):
    """Architecture values as JSON-able Python scalars and dicts."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_model_file(model: ModelRecord, folder: str) -> ModelFile:
    """Write the record to ``folder/{token}.npz`` (plain arrays and the architecture as JSON)."""
    path = os.path.join(folder, f"{model.token}.npz")
    arch = np.asarray(json.dumps(_plain(model.record["architecture"])))
    np.savez(
        path, **{ARCH_KEY: arch}, **{k: np.asarray(v) for k, v in model.record["weights"].items()}
    )
    return ModelFile(model.token, path)


def _load_model_file(ref: ModelFile) -> dict:
    if not Path(ref.path).is_file():
        raise FileNotFoundError(
            f"the surrogate file {ref.path} cannot be read on this worker: a "
            "concurrent.futures executor must run on the calling machine (use a "
            "dask.distributed Client for workers elsewhere)"
        )
    with np.load(ref.path, allow_pickle=False) as f:
        arch = json.loads(str(f[ARCH_KEY]))
        weights = {k: f[k] for k in f.files if k != ARCH_KEY}
    return {"architecture": arch, "weights": weights}


_CACHE: OrderedDict[str, torch.nn.Module] = OrderedDict()
_CACHE_SIZE = 1
_CACHE_LOCK = threading.Lock()


def worker_module(model) -> torch.nn.Module:
    """The surrogate module of ``model`` (a module, a :class:`ModelRecord` or a
    :class:`ModelFile`), rebuilt once per process and cached by its hash.
    """
    if isinstance(model, torch.nn.Module):
        return model
    with _CACHE_LOCK:
        if model.token in _CACHE:
            _CACHE.move_to_end(model.token)
            return _CACHE[model.token]
        record = model.record if isinstance(model, ModelRecord) else _load_model_file(model)
        module = surrogate_from_record(record)
        _CACHE[model.token] = module
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return module


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo a small fixed ``MALLOC_TRIM_THRESHOLD_`` in this worker process.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting it freezes
    glibc's mmap threshold at 128 kB, so every tensor larger than that is a fresh ``mmap``
    whose pages fault in on each use: torch ran several times slower on such workers than
    in the caller. Raising both thresholds at run time (``mallopt``) gives back the
    in-process speed; Dask's own memory trimming (``malloc_trim``) still works.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 256 << 20)
    libc.mallopt(m_mmap_threshold, 32 << 20)


def _call(fn, model, rows, task, settings, args, threads, caller_pid):
    """What runs on a worker: set the torch threads (in a worker process), then the task."""
    if os.getpid() != caller_pid:
        _tune_malloc()
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return fn(worker_module(model), rows, task, settings, *args)


# ---- choosing and driving the executor ------------------------------------------------------
def check_executor(executor, worker_threads: int | None):
    """Validate ``executor`` (before anything runs); return it, a dask Client or ``None``."""
    if worker_threads is not None and (
        not isinstance(worker_threads, (int, np.integer)) or worker_threads < 1
    ):
        raise ValueError(
            f"worker_threads must be a positive integer or None, got {worker_threads!r}"
        )
    if executor is None or isinstance(executor, (Executor, str)):
        return executor
    client_type = _dask_client_type()
    if client_type is not None and isinstance(executor, client_type):
        return executor
    raise TypeError(
        "executor must be None, a concurrent.futures.Executor, a dask.distributed.Client or a "
        f"dask scheduler address, got {type(executor).__name__}"
    )


def _dask_client_type():
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - dask is a dependency
        return None
    return Client


def run_tasks(
    fn: Callable,
    module: torch.nn.Module,
    record: dict,
    rows_of: Callable[[object], object],
    tasks: Sequence,
    settings: dict,
    args: tuple = (),
    *,
    executor=None,
    worker_threads: int | None = 1,
    desc: str = "explain",
    progress: bool = True,
) -> list:
    """Results of ``fn`` for every task, in the order of ``tasks``.

    Parameters
    ----------
    fn
        The worker-side function ``fn(module, rows, task, settings, *args)``; picklable (a
        module-level function).
    module, record
        The surrogate, and its plain-array record (``{"architecture", "weights"}``) that is
        sent to workers.
    rows_of
        ``rows_of(task)``: the CSR rows of the task's group (``task.group`` names the group;
        tasks of one group share the rows).
    tasks, settings, args
        The tasks and what every task shares.
    executor
        ``None`` (run here, one after the other), a ``concurrent.futures.Executor``, a
        ``dask.distributed.Client`` or a dask scheduler address.
    worker_threads
        Torch threads of each task in a worker process (``None``: leave the worker's setting).
    desc, progress
        Progress bar label, and whether to show it (it advances as tasks finish).
    """
    show = progress and len(tasks) > 1
    if executor is None:
        out = []
        bar = tqdm(tasks, desc=desc, disable=not show)
        for task in bar:
            bar.set_postfix(gene=task.name, group=task.group)
            out.append(fn(module, rows_of(task), task, settings, *args))
        return out
    run = _Run(
        fn=fn,
        model=ModelRecord(weights_token(record), record),
        rows_of=rows_of,
        tasks=tasks,
        settings=settings,
        args=args,
        threads=worker_threads,
        desc=desc,
        show=show,
    )
    if isinstance(executor, Executor):
        return _run_futures(run, executor)
    if isinstance(executor, str):
        from distributed import Client

        with Client(executor) as client:
            return _run_dask(run, client)
    return _run_dask(run, executor)


@dataclass(frozen=True)
class _Run:
    """What a run on an executor needs besides the executor: the worker function, the
    surrogate as plain arrays, the tasks and how to get their rows, what every task shares.
    """

    fn: Callable
    model: ModelRecord
    rows_of: Callable
    tasks: Sequence
    settings: object
    args: tuple
    threads: int | None
    desc: str
    show: bool


def _order(tasks: Sequence) -> list[int]:
    """Submission order: group by group, so a worker's consecutive tasks share rows."""
    return sorted(range(len(tasks)), key=lambda i: (tasks[i].group, i))


class _GroupRows:
    """The rows of the group of the last task asked for (tasks are submitted group by group)."""

    def __init__(self, rows_of, wrap=lambda rows: rows):
        self.rows_of, self.wrap, self.group, self.rows = rows_of, wrap, None, None

    def __call__(self, task):
        if self.group != task.group or self.rows is None:
            self.group, self.rows = task.group, self.wrap(self.rows_of(task))
        return self.rows


def _collect(futures: dict, tasks, wait_all, cancel, desc: str, show: bool) -> list:
    """Gather ``{future: task position}`` as they finish; re-raise a failure naming its task
    (the other tasks are cancelled).
    """
    results: list = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc=desc, disable=not show)
    try:
        for fut in wait_all(list(futures)):
            i = futures[fut]
            task = tasks[i]
            try:
                results[i] = fut.result()
            except Exception as err:
                raise TaskError(
                    f"{desc} of {task.name!r} in group {task.group!r} failed on a worker: "
                    f"{type(err).__name__}: {err}",
                    task.name,
                    task.group,
                    task.key,
                ) from err
            bar.set_postfix(gene=task.name, group=task.group)
            bar.update()
    except BaseException:
        cancel(list(futures))
        raise
    finally:
        bar.close()
    return results


def _run_futures(run: _Run, executor: Executor) -> list:
    folder = tempfile.mkdtemp(prefix="grids-model-")
    tasks = run.tasks
    try:
        ref = save_model_file(run.model, folder)
        pid = os.getpid()
        group_rows = _GroupRows(run.rows_of)
        futures = {}
        for i in _order(tasks):
            task = tasks[i]
            fut = executor.submit(
                _call, run.fn, ref, group_rows(task), task, run.settings, run.args, run.threads,
                pid,
            )  # fmt: skip
            futures[fut] = i

        def cancel(futs):
            for f in futs:
                f.cancel()

        return _collect(futures, tasks, cf_as_completed, cancel, run.desc, run.show)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_dask(run: _Run, client) -> list:
    from distributed import as_completed

    tasks = run.tasks
    model_future = client.scatter(run.model, broadcast=True, hash=False)
    scattered = []

    def scatter(rows):
        scattered.append(client.scatter(rows, hash=False))
        return scattered[-1]

    group_rows = _GroupRows(run.rows_of, scatter)
    token = uuid.uuid4().hex[:12]
    pid = os.getpid()
    futures = {}
    try:
        for i in _order(tasks):
            task = tasks[i]
            fut = client.submit(
                _call, run.fn, model_future, group_rows(task), task, run.settings, run.args,
                run.threads, pid, pure=False, key=f"grids-{run.desc}-{token}-{i}",
            )  # fmt: skip
            futures[fut] = i
        return _collect(futures, tasks, as_completed, client.cancel, run.desc, run.show)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.cancel([model_future, *scattered])
