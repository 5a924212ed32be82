"""The private engine under ``tl.explain``, ``tl.attribute`` (and the link caller to come):
plans of (gene, group) tasks, cell splits, the problems of each task, the executor (serial,
process pool, Dask), and storing the results through the records module.

Nothing here is public API; the public functions in :mod:`grids_sc.tl` validate their
arguments, build a :class:`SelectionSettings`, call :func:`make_plan` and :func:`run_plan`,
and store the results with :func:`write_results`.
"""

from ._attribution import attribute_task, correlation_inputs
from ._batched import (
    BATCH_MIN_TASKS,
    BATCH_SIZE,
    TaskBatch,
    explain_batch,
    make_batches,
    run_batches,
    use_batches,
)
from ._executor import TaskError, check_executor, run_tasks, weights_token
from ._plan import (
    AUTO_WINDOW,
    MIN_GROUP_CELLS,
    Plan,
    Task,
    cis_window,
    group_cells,
    make_plan,
    resolve_window,
    run_plan,
    task_device,
)
from ._progress import check_progress, run_bar, step_reporter
from ._selection import delta_stats, explain_task, problems, selection_record
from ._settings import (
    DIRECTION,
    MIN_MOVE_Z,
    MODELS,
    MOVES,
    PERTURB,
    Direction,
    Model,
    Moves,
    Perturb,
    SelectionSettings,
    check_objective,
)
from ._starts import EXPENSIVE, INIT_NAMES, init_names
from ._write import write_results

__all__ = [
    "AUTO_WINDOW",
    "BATCH_MIN_TASKS",
    "BATCH_SIZE",
    "TaskBatch",
    "explain_batch",
    "make_batches",
    "run_batches",
    "use_batches",
    "DIRECTION",
    "EXPENSIVE",
    "INIT_NAMES",
    "MIN_GROUP_CELLS",
    "MIN_MOVE_Z",
    "MODELS",
    "MOVES",
    "PERTURB",
    "Direction",
    "Model",
    "Moves",
    "Perturb",
    "Plan",
    "SelectionSettings",
    "Task",
    "TaskError",
    "attribute_task",
    "check_executor",
    "check_objective",
    "cis_window",
    "check_progress",
    "correlation_inputs",
    "delta_stats",
    "explain_task",
    "group_cells",
    "init_names",
    "make_plan",
    "problems",
    "run_bar",
    "resolve_window",
    "run_plan",
    "run_tasks",
    "selection_record",
    "step_reporter",
    "task_device",
    "weights_token",
    "write_results",
]
