"""Where a search starts: the names ``explain(init=...)`` takes, and the sets an attribution
method ranks first (shared with ``attribute``'s tasks).
"""

from __future__ import annotations

import numpy as np

from ..attribution import SCORERS
from ..attribution._methods import engine_arguments
from ..search._run import INITS
from ._plan import Task
from ._settings import SelectionSettings

EXPENSIVE = ("lime", "sage", "fimap")  # ranked on a first-order prefilter of the candidates
START_METHODS = tuple(m for m in SCORERS if m not in ("random", "first_order"))
INIT_NAMES = tuple(INITS) + START_METHODS


def init_names(init) -> tuple[str, ...]:
    """``init`` (a name, names joined by ``"+"``, or a sequence of names) as a tuple of
    names, checked against :data:`INIT_NAMES`.
    """
    items = init.split("+") if isinstance(init, str) else list(init)
    bad = [i for i in items if not isinstance(i, str) or i not in INIT_NAMES]
    if not items or bad:
        raise ValueError(
            f"init must be one of {list(INIT_NAMES)}, several joined by '+' or given as a "
            f"list (e.g. 'first_order+integrated_gradients'), got {init!r}"
        )
    return tuple(items)


def scored_features(
    method: str,
    problem,
    mask: np.ndarray,
    settings: SelectionSettings,
    options: dict,
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate features a method ranks (all of ``mask``, or the ``settings.max_features``
    best by first order for the expensive methods, never fewer than ``L``: ``attribute``
    checks that, and a search's start needs ``L``) and its scores of them (larger: better);
    ``name`` (the task's) goes into the error on non-finite scores.
    """
    L, seed = settings.L, settings.seed
    max_features = max(settings.max_features, L)
    feats = np.flatnonzero(mask)
    if method in EXPENSIVE and len(feats) > max_features:
        first = SCORERS["first_order"](problem, feats)
        feats = np.sort(feats[np.argsort(-first, kind="stable")[:max_features]])
    scorer = SCORERS[method]
    fixed = engine_arguments(scorer, seed=seed, L=L)
    scores = np.asarray(scorer(problem, feats, **fixed, **options), dtype=np.float64)
    if not np.isfinite(scores).all():
        raise FloatingPointError(f"{method} gave non-finite scores for {name!r}")
    return feats, scores


def search_starts(settings: SelectionSettings, problem, task: Task) -> list:
    """The starts of a task's search (:func:`~grids_sc.search.run_search`'s ``init``) from
    ``settings.init``: the names the search builds itself, and each attribution method's top
    ``L`` of the task's candidates on ``problem``'s cells (ranked as
    :func:`grids_sc.tl.attribute` ranks them).
    """
    out: list = []
    for start in init_names(settings.init):
        if start in INITS:
            out.append(start)
            continue
        feats, scores = scored_features(start, problem, task.candidates, settings, {}, task.name)
        out.append(feats[np.argsort(-scores, kind="stable")[: settings.L]])
    return out
