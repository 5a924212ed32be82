"""Run the GRIDS search with restarts and pick the best selection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ._optimizer import GridsOptimizer, answer_all, greedy_requests, initial_selection
from ._problem import SubsetProblem

INITS = ("first_order", "greedy")  # starts the search builds itself
TIE_TOL = 1e-7  # first-order scores and objective changes this close to 0 count as ties

Start = str | np.ndarray | torch.Tensor  # a name of INITS or a selection to start from


@dataclass
class SearchResult:
    """Outcome of :func:`run_search`.

    Attributes
    ----------
    selection
        Selected feature indices of the best restart, in the order of their first-order
        importance at the end of the search.
    value
        Objective of ``selection`` on the search problem.
    traces
        Objective after every step, one array per restart.
    restart_selections
        Final selection of every restart (``[restarts, L]``).
    restart_scores
        The score each restart was ranked by (validation objective when given, else
        the search objective).
    frequency
        For every feature, the fraction of restarts that selected it.
    best_restart
        Index of the chosen restart.
    """

    selection: np.ndarray
    value: float
    traces: list[np.ndarray]
    restart_selections: np.ndarray
    restart_scores: np.ndarray
    frequency: np.ndarray
    best_restart: int
    steps: list[int] = field(default_factory=list)


def run_search(
    problem: SubsetProblem,
    size: int,
    *,
    candidates: torch.Tensor | None = None,
    n_candidates: int = 32,
    n_steps: int = 500,
    restarts: int = 1,
    seed: int = 0,
    validation: SubsetProblem | None = None,
    callback=None,
    moves: str = "single",
    pair_pool: int = 64,
    init: Start | Sequence[Start] = "first_order",
    on_step: Callable[[int, int, float], None] | None = None,
    min_z: float = 0.0,
) -> SearchResult:
    """Minimise ``problem`` over selections of ``size`` features.

    The first search starts from ``init``: ``"greedy"`` (:func:`greedy_selection`: features
    added one at a time by their exact effect given the earlier ones), ``"first_order"`` (the
    top ``size`` first-order features, as in the paper: ``attribute(method="first_order")``)
    or a selection of ``size`` distinct candidate features (e.g. another method's top
    ``size``). A sequence of starts runs one search from each; then ``restarts - 1`` more
    from a random ``size`` of the top ``4 * size`` first-order features (seeded).
    The best search is chosen on ``validation`` when given (held-out cells), else on the
    search objective. ``moves``, ``pair_pool`` and ``min_z`` (the smallest z-score of a
    move's gain over the problem's cells; 0: every improving move) are passed to
    :class:`~grids_sc.search.GridsOptimizer`.

    ``callback()`` is called after every step; ``on_step(restart, step, value)`` at the start
    of every restart (step 0) and after every step, with the objective of the current
    selection (for progress reports; neither changes the search).
    """
    return answer_all(
        search_requests(
            problem,
            size,
            candidates=candidates,
            n_candidates=n_candidates,
            n_steps=n_steps,
            restarts=restarts,
            seed=seed,
            validate=validation is not None,
            callback=callback,
            moves=moves,
            pair_pool=pair_pool,
            init=init,
            on_step=on_step,
            min_z=min_z,
        ),
        problem,
        validation,
    )


def search_requests(
    problem: SubsetProblem,
    size: int,
    *,
    candidates: torch.Tensor | None = None,
    n_candidates: int = 32,
    n_steps: int = 500,
    restarts: int = 1,
    seed: int = 0,
    validate: bool = False,
    callback=None,
    moves: str = "single",
    pair_pool: int = 64,
    init: Start | Sequence[Start] = "first_order",
    on_step: Callable[[int, int, float], None] | None = None,
    min_z: float = 0.0,
):
    """:func:`run_search` as a generator of the questions it asks its problems
    (:func:`~grids_sc.search._optimizer.answer`); returns the :class:`SearchResult`.
    ``problem`` is read only for its size and :meth:`~SubsetProblem.interacting_features`;
    ``validate`` ranks the restarts on ``("validation_value", selection)`` answers.
    """
    n = problem.n_features
    cand = torch.ones(n, dtype=torch.bool) if candidates is None else candidates.bool().cpu()
    n_cand = int(cand.sum())
    if size < 1 or size > n_cand:
        raise ValueError(f"L must be between 1 and the {n_cand} candidate features, got {size}")
    starts = check_starts(init, cand, size)
    rng = np.random.default_rng(seed)
    d0 = yield ("first_order", torch.empty(0, dtype=torch.long))
    sels, traces, scores, steps = [], [], [], []
    n_runs = len(starts) + restarts - 1
    for r in range(n_runs):
        start = starts[r] if r < len(starts) else None
        if isinstance(start, torch.Tensor):
            sel = start.clone()
        elif start == "greedy":
            sel = yield from greedy_requests(cand, size, n_candidates)
        else:
            sel = initial_selection(d0, cand, size, rng if start is None else None)
        value = yield ("value", sel)
        opt = GridsOptimizer(
            [sel],
            problem,
            cand,
            n_candidates=n_candidates,
            moves=moves,
            pair_pool=pair_pool,
            value=value,
            min_z=min_z,
        )
        if on_step is not None:
            on_step(r, 0, opt.value)
        for step in range(n_steps):
            if not opt.converged:
                yield from opt.step_requests()
            if callback is not None:
                callback()
            if on_step is not None:
                on_step(r, step + 1, opt.value)
            if opt.converged:
                break
        final = opt.selection.clone()
        sels.append(final.numpy())
        traces.append(np.asarray(opt.trace))
        steps.append(len(opt.trace) - 1)
        scores.append((yield ("validation_value", final)) if validate else opt.value)
    best = int(np.argmin(scores))
    chosen = torch.from_numpy(sels[best])
    d_final = (yield ("first_order", chosen)).numpy()
    tie = None
    refill = yield from _refill_requests(sels[best], d_final, cand, traces[best][-1])
    if refill is not None:
        sels[best], tie = refill
    d_sel = d_final[sels[best]]
    if tie is None:
        order = np.argsort(d_sel, kind="stable")
    else:  # slots no search cell tells apart come in the order of their tie scores
        order = np.lexsort((tie[sels[best]], d_sel))
    freq = np.zeros(n, dtype=np.float64)
    for s in sels:
        freq[s] += 1.0 / n_runs
    return SearchResult(
        selection=sels[best][order],
        value=float(traces[best][-1]),
        traces=traces,
        restart_selections=np.stack(sels),
        restart_scores=np.asarray(scores, dtype=np.float64),
        frequency=freq,
        best_restart=best,
        steps=steps,
    )


def _refill_requests(selection: np.ndarray, d: np.ndarray, candidates: torch.Tensor, value):
    """Refill the selected slots that the search's cells cannot tell apart (a request
    generator, as :func:`search_requests`).

    A selected feature that is not :meth:`~SubsetProblem.movable` (closing: closed in every
    search cell) adds nothing to the objective, and neither would any other such candidate:
    every choice of them ties, and the search keeps whichever the first-order start put
    there. They are replaced by the best of all such candidates by
    :meth:`~SubsetProblem.tie_scores` (where they are open, e.g. in held-out cells, closing
    them moves the gene as their gradient says), checked to leave the objective as it was.
    Returns ``(selection, tie scores)``, or ``None`` when no slot is refilled.
    """
    tol = TIE_TOL * max(1.0, abs(float(value)))
    flat = np.flatnonzero(np.abs(d[selection]) <= tol)  # NaN (a score not asked for): no
    if not len(flat):
        return None
    # the free candidates that may be unmovable too (their first-order score is 0 as well)
    free = candidates.clone()
    free[torch.from_numpy(selection)] = False
    near = torch.from_numpy(np.abs(np.nan_to_num(d, nan=np.inf)) <= tol)
    pool = torch.nonzero(free & near).squeeze(1).numpy()
    asked = np.concatenate([selection[flat], pool])
    dead = ~(yield ("movable", torch.from_numpy(asked))).numpy()
    slots, pool = flat[dead[: len(flat)]], pool[dead[len(flat) :]]
    if not len(slots):
        return None
    tie = (yield ("tie_scores",)).numpy()
    # the selected ones first, so that among equal scores they stay
    options = np.concatenate([selection[slots], pool])
    pick = options[np.argsort(tie[options], kind="stable")[: len(slots)]]
    if set(pick.tolist()) == set(selection[slots].tolist()):
        return selection, tie
    new = selection.copy()
    new[slots] = np.sort(pick)
    if (yield ("value", torch.from_numpy(new))) > value + TIE_TOL:
        return selection, tie  # not a tie after all (float rounding): keep the search's
    return new, tie


def check_starts(init, candidates: torch.Tensor, size: int) -> list:
    """``init`` as a list of starts: names of :data:`INITS` and selections (as ``long``
    tensors), each checked (``size`` distinct candidate features).
    """
    items = [init] if isinstance(init, (str, np.ndarray, torch.Tensor)) else list(init)
    if not items:
        raise ValueError("init must name at least one start")
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in INITS:
                raise ValueError(f"init must be one of {list(INITS)} or a selection, got {item!r}")
            out.append(item)
            continue
        sel = torch.as_tensor(np.asarray(item), dtype=torch.long).reshape(-1).cpu()
        ok = len(sel) == size and len(torch.unique(sel)) == size
        ok = ok and bool(((sel >= 0) & (sel < len(candidates))).all())
        if not ok or not bool(candidates[sel].all()):
            raise ValueError(
                f"a start must be {size} distinct candidate features, got {sel.tolist()}"
            )
        out.append(sel)
    return out
