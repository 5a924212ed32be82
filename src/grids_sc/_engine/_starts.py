"""Where a search starts: the names ``explain(init=...)`` takes, and the sets an attribution
method ranks first (shared with ``attribute``'s tasks).
"""

from __future__ import annotations

import numpy as np

from ..attribution import SCORERS
from ..attribution._methods import engine_arguments
from ..search._run import INITS

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
    method: str, problem, mask: np.ndarray, L: int, seed: int, options: dict, max_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate features a method ranks (all of ``mask``, or the ``max_features`` best
    by first order for the expensive methods) and its scores of them (larger: better).
    """
    feats = np.flatnonzero(mask)
    if method in EXPENSIVE and len(feats) > max_features:
        first = SCORERS["first_order"](problem, feats)
        feats = np.sort(feats[np.argsort(-first, kind="stable")[:max_features]])
    scorer = SCORERS[method]
    fixed = engine_arguments(scorer, seed=seed, L=L)
    scores = np.asarray(scorer(problem, feats, **fixed, **options), dtype=np.float64)
    if not np.isfinite(scores).all():
        raise FloatingPointError(f"{method} gave non-finite scores")
    return feats, scores


def search_starts(init: str, problem, mask: np.ndarray, L: int, seed: int) -> list:
    """The starts of a search (:func:`~grids_sc.search.run_search`'s ``init``): the names the
    search builds itself, and each attribution method's top ``L`` on ``problem``'s cells.
    """
    out: list = []
    for name in init_names(init):
        if name in INITS:
            out.append(name)
            continue
        feats, scores = scored_features(name, problem, mask, L, seed, {}, 2000)
        out.append(feats[np.argsort(-scores, kind="stable")[:L]])
    return out
