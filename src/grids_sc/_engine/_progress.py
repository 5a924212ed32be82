"""Progress of single searches: a callback of the user's, a bar, and debug logging.

``tl.explain(progress=...)`` takes ``True`` (bars), ``False`` (nothing) or a callable. Every
step of every search is also logged at debug level to the ``grids_sc`` logger. None of this
changes what the search does or stores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tqdm.auto import tqdm

from .._logging import logger


def check_progress(progress, executor) -> None:
    """``progress`` is a bool, or a callable with no executor; else a ``ValueError``."""
    if isinstance(progress, bool):
        return
    if not callable(progress):
        raise ValueError(
            f"progress must be True, False or a callable taking a dict, got {progress!r}"
        )
    if executor is not None:
        raise ValueError(
            "a progress callable needs executor=None (the searches run on the workers); "
            "use progress=True for a bar over the finished runs"
        )


def step_reporter(progress, n_tasks: int, executor) -> Callable | None:
    """What each serial search reports its steps to: the user's callable, a step bar
    (``progress=True`` with one task and no executor), or ``None``.
    """
    if executor is not None or progress is False:
        return None
    if progress is True:
        return StepBar() if n_tasks == 1 else None
    return progress


def run_bar(progress) -> bool:
    """Whether to show the bar over the runs (only for ``progress=True``)."""
    return progress is True


class StepBar:
    """A bar over the steps of one search: restart, step, and the relative change of mean
    predicted expression so far.
    """

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, info: dict) -> None:
        if self.bar is None:
            self.bar = tqdm(total=info["restarts"] * info["n_steps"], desc="explain steps")
        self.bar.n = info["restart"] * info["n_steps"] + info["step"]
        self.bar.set_postfix(restart=info["restart"], objective=f"{info['objective']:+.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def on_step(task, settings, report: Callable | None) -> Callable | None:
    """``run_search``'s ``on_step`` for a task: logs each step at debug level and passes a
    dict (``name``, ``genes``, ``group``, ``key``, ``restart``, ``restarts``, ``step``,
    ``n_steps``, ``value``: the search objective, ``objective``: the relative change of the
    mean predicted expression) to ``report``. ``None`` when nobody listens.
    """
    debug = logger.isEnabledFor(logging.DEBUG)
    if report is None and not debug:
        return None

    def hook(restart: int, step: int, value: float) -> None:
        objective = settings.sign * value - 1.0  # as the stored trace
        if debug:
            logger.debug(
                "explain %s in %s: restart %d/%d, step %d/%d, objective %+.5f",
                task.name, task.group, restart + 1, settings.n_searches, step, settings.n_steps,
                objective,
            )  # fmt: skip
        if report is not None:
            report({
                "name": task.name,
                "genes": list(task.genes),
                "group": task.group,
                "key": task.key,
                "restart": restart,
                "restarts": settings.n_searches,
                "step": step,
                "n_steps": settings.n_steps,
                "value": value,
                "objective": objective,
            })  # fmt: skip

    return hook
