"""The GRIDS optimizer: coordinate descent over an index set, guided by first-order scores."""

from __future__ import annotations

import numpy as np
import torch

from ._problem import SubsetProblem


def answer(problem: SubsetProblem, request: tuple, validation: SubsetProblem | None = None):
    """The answer of ``problem`` to one request of a search (tensors on the CPU).

    A search asks ``("first_order", selection)``, ``("move_values", selection, out_pos,
    incoming)``, ``("pair_effects", selection, features, signs)``, ``("value", selection)``,
    ``("add_values", selection, incoming)``, ``("movable", features)``,
    ``("tie_scores",)`` or ``("cell_values", selection)``: the :class:`SubsetProblem` method
    of that name; ``("validation_value", selection)`` is ``validation.value``.
    """
    kind, *args = request
    if kind == "value":
        return problem.value(*args)
    if kind == "validation_value":
        return validation.value(*args)
    out = getattr(problem, kind)(*args)
    return None if out is None else out.cpu()


def answer_all(requests, problem: SubsetProblem, validation: SubsetProblem | None = None):
    """Run the request generator ``requests`` to its end, answering from ``problem`` (and
    ``validation``); its return value.
    """
    try:
        request = next(requests)
        while True:
            request = requests.send(answer(problem, request, validation))
    except StopIteration as stop:
        return stop.value


class GridsOptimizer(torch.optim.Optimizer):
    """Gradient-guided coordinate descent over a set of ``L`` feature indices.

    The "parameter" is a ``LongTensor`` of ``L`` selected feature indices, updated in place.
    Each :meth:`step` computes the first-order change ``d_j`` of perturbing every candidate
    feature, scores every swap of a selected feature ``r_i`` for a candidate ``j`` by the
    transition matrix ``T[i, j] = d_j - d_{r_i}``, evaluates the ``n_candidates`` best swaps
    exactly, and applies the best one if it lowers the objective (else it sets
    :attr:`converged`).

    With ``moves="pair"`` each step also scores moves that replace two selected features by
    two new ones, from the pairwise effects of :meth:`SubsetProblem.pair_effects` (see
    :func:`_pair_moves`), and evaluates the ``n_candidates`` best pair moves exactly next
    to the single swaps. Redundant features
    (the objective moves only when both are perturbed) are invisible to single swaps once
    neither is selected; pair moves find them. Where the pair effects are exact
    (:meth:`SubsetProblem.exact_pair_effects`: a LOCO surrogate's search of a gene's own
    window, where the cell state cannot move), the single swaps whose incoming feature is in
    the pair pool are read from them (the value plus ``E[incoming, restored]``) instead of
    being evaluated again; the search takes the same steps.

    With ``min_z > 0`` the best move is kept only when its gain clears the noise of the
    cells it is measured on: with ``g_c`` the change of cell ``c``'s term of the objective
    (:meth:`SubsetProblem.cell_values`), the move needs ``mean(g) >= min_z * sd(g) /
    sqrt(n)``; else the search stops there. A move whose gain over a small group's search
    cells is within their noise selects on that noise (it does not carry over to other
    cells), and the search's last moves are of that kind. Problems whose
    :meth:`~SubsetProblem.cell_values` is ``None`` keep every improving move.

    Parameters
    ----------
    params
        A list holding one ``LongTensor`` of selected indices (no duplicates).
    problem
        The :class:`~grids_sc.search.SubsetProblem` to minimise.
    candidates
        Boolean mask of features allowed in the selection (default: all).
    n_candidates
        Swaps evaluated exactly per step.
    tol
        Smallest improvement that counts.
    moves
        ``"single"`` (the paper's coordinate descent) or ``"pair"`` (also two-feature moves).
    pair_pool
        With pair moves: how many free features can enter a pair (the problem's interacting
        features first, then the best first-order ones).
    depth
        When none of the ``n_candidates`` shortlisted moves improves, the next-ranked single
        swaps are evaluated, ``n_candidates`` at a time, up to ``depth * n_candidates`` in
        all, before the search is declared converged (``1``: stop at once, as the paper).
    value
        The objective of the initial selection when the caller has it (else computed).
    min_z
        Smallest z-score of a move's gain over the cells (``0``: every improving move is
        kept).
    """

    def __init__(
        self,
        params,
        problem: SubsetProblem,
        candidates: torch.Tensor | None = None,
        n_candidates: int = 32,
        tol: float = 1e-7,
        moves: str = "single",
        pair_pool: int = 64,
        depth: int = 8,
        value: float | None = None,
        min_z: float = 0.0,
    ) -> None:
        params = list(params)
        if len(params) != 1 or params[0].dtype != torch.long or params[0].ndim != 1:
            raise ValueError("GridsOptimizer takes exactly one 1-D LongTensor of selected indices")
        if n_candidates < 1:
            raise ValueError("n_candidates must be at least 1")
        if moves not in ("single", "pair"):
            raise ValueError(f"moves must be 'single' or 'pair', got {moves!r}")
        if depth < 1:
            raise ValueError("depth must be at least 1")
        if not min_z >= 0:
            raise ValueError(f"min_z must be at least 0, got {min_z!r}")
        self.moves, self.pair_pool, self.depth = moves, int(pair_pool), int(depth)
        self.min_z = float(min_z)
        self._cells: torch.Tensor | None = None  # cell terms of the selection (min_z > 0)
        self._by_cell = True  # False once the problem says it has no cell terms
        super().__init__(params, {"n_candidates": n_candidates, "tol": tol})
        self.problem = problem
        n = problem.n_features
        cand = torch.ones(n, dtype=torch.bool) if candidates is None else candidates.bool().cpu()
        if cand.numel() != n:
            raise ValueError(f"candidates mask has {cand.numel()} entries, expected {n}")
        self.candidates = cand
        # the search runs over the candidates' positions (a gene's window: tens of features
        # of a genome's 100,000), so a step's ranking costs O(candidates), not O(features)
        self._cand_idx = torch.nonzero(cand).squeeze(1)  # sorted
        sel = params[0]
        if len(torch.unique(sel)) != len(sel):
            raise ValueError("the initial selection has duplicate indices")
        self.converged = False
        self.value = problem.value(sel) if value is None else float(value)
        self.trace: list[float] = [self.value]

    @property
    def selection(self) -> torch.Tensor:
        """The current selection."""
        return self.param_groups[0]["params"][0]

    @torch.no_grad()
    def step(self, closure=None) -> float:  # noqa: D102 - documented on the class
        if closure is not None:
            raise ValueError("GridsOptimizer computes its own scores; it takes no closure")
        return answer_all(self.step_requests(), self.problem)

    def step_requests(self):
        """One step as a generator of the questions it asks the problem (see
        :func:`answer`): it yields each request, receives the answer, and returns the
        objective after the step. :meth:`step` answers them from :attr:`problem`; a batched
        runner answers many searches' requests in one call (:mod:`grids_sc.search._batched`).
        """
        group = self.param_groups[0]
        sel = self.selection
        if self.converged:
            return self.value
        d = yield ("first_order", sel)
        d_free = self._free_scores(sel, d)
        n_free = int(torch.isfinite(d_free).sum())
        if not n_free:
            self.converged = True
            return self.value
        k = min(group["n_candidates"], n_free)
        out_pos, in_idx = _ranked_swaps(sel, d, d_free, self._cand_idx, k, k)
        pool, e = None, None
        if self.moves == "pair" and len(sel) >= 2 and n_free >= 2:
            pool, e = yield from self._pair_table(sel, d_free)
        exact = pool is not None and self.problem.exact_pair_effects(torch.cat([pool, sel.cpu()]))
        table = (pool, e) if exact else None
        vals = yield from self._single_values(sel, out_pos, in_idx, table)
        if pool is not None:
            p_out, p_in = _pair_moves(pool, e, len(sel), group["n_candidates"])
            p_vals = yield ("move_values", sel, p_out.to(sel.device), p_in.to(sel.device))
            out_pos, in_idx = _pad_cat(out_pos, p_out), _pad_cat(in_idx, p_in)
            vals = torch.cat([vals, p_vals])
        if float(vals.min()) >= self.value - group["tol"]:
            # none of the shortlisted moves improves: the first-order ranking is least
            # reliable here, so look further down it before declaring convergence
            out_pos, in_idx, vals = yield from self._deeper(
                sel, d, d_free, out_pos, in_idx, vals, group, table
            )
        best = int(torch.argmin(vals))
        improves = float(vals[best]) < self.value - group["tol"]
        if improves:
            keep = in_idx[best] >= 0
            new = sel.clone()
            new[out_pos[best][keep].to(sel.device)] = in_idx[best][keep].to(sel.device)
            if self.min_z > 0:
                improves = yield from self._clears_noise(sel, new)
        if improves:
            sel.copy_(new)
            self.value = float(vals[best])
        else:
            self.converged = True
        self.trace.append(self.value)
        return self.value

    def _clears_noise(self, sel: torch.Tensor, new: torch.Tensor):
        """Whether the move from ``sel`` to ``new`` gains at least ``min_z`` standard errors
        of its per-cell gains (a request generator; ``True`` where the problem has no
        :meth:`~SubsetProblem.cell_values`). Keeps ``new``'s cell terms for the next step.
        """
        if not self._by_cell:
            return True
        if self._cells is None:
            self._cells = yield ("cell_values", sel)
            if self._cells is None:  # not asked again: every improving move is kept
                self._by_cell = False
                return True
        after = yield ("cell_values", new)
        gain = (self._cells - after).double()
        if not moves_clear(gain, self.min_z):
            return False
        self._cells = after
        return True

    def _cand_pos(self, features: torch.Tensor) -> torch.Tensor:
        """Each feature's position among the candidates, ``-1`` for a feature that is not
        one: a binary search of the sorted candidates, so no integer table over every feature
        (8 bytes a peak, 1.2 MB for 150,000 peaks) is built for each search of a window.
        """
        idx = self._cand_idx
        if not len(idx) or not len(features):
            return torch.full_like(features, -1)
        pos = torch.searchsorted(idx, features).clamp(max=len(idx) - 1)
        return torch.where(idx[pos] == features, pos, torch.full_like(pos, -1))

    def _free_scores(self, sel: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """The first-order scores ``d`` of the candidates, in candidate order, with ``inf``
        for those already selected (the features that can come in).
        """
        d_free = d[self._cand_idx].clone()
        pos = self._cand_pos(sel.cpu())
        d_free[pos[pos >= 0]] = float("inf")
        return d_free

    def _single_values(self, sel, out_pos, in_idx, table):
        """The objective after each single swap (``[m, 1]`` positions and features): read
        from exact pair effects ``table = (pool, E)`` (:meth:`_pair_table`) where the
        incoming feature is in the pool, the value plus ``E[incoming, restored]``, and asked
        of the problem (``move_values``) otherwise (a request generator).
        """
        if table is None:
            return (yield ("move_values", sel, out_pos.to(sel.device), in_idx.to(sel.device)))
        pool, e = table
        match = in_idx[:, :1] == pool[None, :]  # [m, n_pool]
        hit = match.any(1)
        row = match.to(torch.int8).argmax(1)
        vals = (self.value + e.double()[row, len(pool) + out_pos[:, 0]]).float()
        if not bool(hit.all()):
            miss = torch.nonzero(~hit).squeeze(1)
            o, i = out_pos[miss].to(sel.device), in_idx[miss].to(sel.device)
            vals[miss] = (yield ("move_values", sel, o, i)).to(vals.dtype)
        return vals

    def _deeper(self, sel, d, d_free, out_pos, in_idx, vals, group, table=None):
        """Evaluate the next-ranked single swaps, ``n_candidates`` at a time, until one
        improves or ``depth * n_candidates`` swaps have been tried in this step (a request
        generator, as :meth:`step_requests`; ``table``: exact pair effects, as
        :meth:`_single_values` reads them).
        """
        k = group["n_candidates"]
        n_free = int(torch.isfinite(d_free).sum())
        most = min(self.depth * k, n_free * len(sel))
        if most <= k:
            return out_pos, in_idx, vals
        ranked_out, ranked_in = _ranked_swaps(
            sel, d, d_free, self._cand_idx, min(most, n_free), most
        )
        for start in range(k, most, k):
            o, i = ranked_out[start : start + k], ranked_in[start : start + k]
            v = yield from self._single_values(sel, o, i, table)
            if float(v.min()) < self.value - group["tol"]:
                return o, i, v
        return out_pos, in_idx, vals

    def _pair_table(self, sel, d_free):
        """The pool of features that can enter a pair and the pair effects ``E`` over the
        pool and the selection (:meth:`SubsetProblem.pair_effects`; ``(None, None)`` when
        fewer than two can enter). The pool is the free features whose interactions the
        problem models (e.g. a gene's window peaks), filled up to ``pair_pool`` with the best
        first-order ones. A request generator (see :meth:`step_requests`).
        """
        free = torch.isfinite(d_free)  # over the candidates (d_free: _free_scores)
        hint = self.problem.interacting_features().cpu()
        hint_pos = self._cand_pos(hint)
        keep = torch.cat([free, free.new_zeros(1)])[hint_pos]  # position -1: not a candidate
        hint, hint_pos = hint[keep], hint_pos[keep]
        n_fill = max(0, self.pair_pool - len(hint))
        fill = d_free.clone()
        fill[hint_pos] = float("inf")
        n_fill = min(n_fill, int(torch.isfinite(fill).sum()))
        top = torch.topk(fill, n_fill, largest=False).indices
        pool = torch.cat([hint, self._cand_idx[top]])
        if len(pool) < 2:
            return None, None
        feats = torch.cat([pool, sel.cpu()])
        signs = torch.cat([torch.ones(len(pool)), -torch.ones(len(sel))])
        e = (yield ("pair_effects", sel, feats, signs)).to(d_free.dtype)
        return pool, e


def moves_clear(gain: torch.Tensor, min_z: float) -> bool:
    """Whether per-cell gains ``gain`` (positive: better) have a mean of at least ``min_z``
    standard errors (``sd / sqrt(n)``); a gain the same in every cell clears when positive.
    """
    mean = float(gain.mean())
    if len(gain) < 2:
        return mean > 0
    se = float(gain.std()) / np.sqrt(len(gain))
    return mean > 0 and mean >= min_z * se


def _pair_moves(pool: torch.Tensor, e: torch.Tensor, n_sel: int, n_moves: int):
    """The ``n_moves`` best two-out, two-in moves by their estimated effect, from the pair
    effects ``E`` over ``pool`` and the selection (:meth:`GridsOptimizer._pair_table`):
    with ``S_a = E[a, a]`` and ``I_ab = E[a, b] - S_a - S_b``, a move adding ``a, b`` and
    restoring ``i, k`` is scored ``S_a + S_b + S_i + S_k + I_ab + I_ik + I_ai + I_ak + I_bi +
    I_bk``; as ``[n, 2]`` positions in the selection and incoming features.
    """
    n_pool = len(pool)
    single = e.diagonal().clone()
    inter = e - single[:, None] - single[None, :]
    ia, ib = torch.triu_indices(n_pool, n_pool, offset=1)
    add = single[ia] + single[ib] + inter[ia, ib]
    oa, ob = torch.triu_indices(n_sel, n_sel, offset=1)
    oa, ob = oa + n_pool, ob + n_pool
    rem = single[oa] + single[ob] + inter[oa, ob]
    n_top = max(1, int(np.ceil(np.sqrt(4 * n_moves))))
    top_a = torch.topk(add, min(n_top, len(add)), largest=False).indices
    top_r = torch.topk(rem, min(n_top, len(rem)), largest=False).indices
    a1, a2 = ia[top_a], ib[top_a]
    r1, r2 = oa[top_r], ob[top_r]
    cross = inter[a1][:, r1] + inter[a1][:, r2] + inter[a2][:, r1] + inter[a2][:, r2]
    score = add[top_a][:, None] + rem[top_r][None, :] + cross
    best = torch.topk(score.flatten(), min(n_moves, score.numel()), largest=False).indices
    ai, ri = best // len(top_r), best % len(top_r)
    outs = torch.stack([r1[ri], r2[ri]], 1) - n_pool
    ins = torch.stack([pool[a1[ai]], pool[a2[ai]]], 1)
    return outs, ins


def _ranked_swaps(
    sel: torch.Tensor,
    d: torch.Tensor,
    d_free: torch.Tensor,
    features: torch.Tensor,
    width: int,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` best single swaps by ``T[i, j] = d_j - d_{r_i}`` over the ``width`` best free
    features (``d_free``: the scores of ``features``, ``inf`` where one cannot come in), as
    ``[n, 1]`` positions in ``sel`` and incoming features.
    """
    incoming = features[torch.topk(d_free, width, largest=False).indices]  # best to add
    trans = d[incoming][None, :] - d[sel.cpu()][:, None]  # T[i, j] for the shortlisted j
    flat = torch.topk(trans.flatten(), min(n, trans.numel()), largest=False).indices
    return (flat // width)[:, None], incoming[flat % width][:, None]


def _pad_cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Stack ``[m, 1]`` and ``[n, 2]`` index moves as ``[m + n, 2]`` (``-1`` pads)."""
    pad = torch.full((a.shape[0], b.shape[1] - a.shape[1]), -1, dtype=a.dtype)
    return torch.cat([torch.cat([a, pad], 1), b])


def initial_selection(
    d: torch.Tensor, candidates: torch.Tensor, size: int, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """Top-``size`` candidates by first-order score (lowest ``d``); with ``rng``, a random
    ``size`` of the top ``4 * size`` (for restarts).
    """
    idx = torch.nonzero(candidates.cpu()).squeeze(1)
    d = d.cpu()[idx]
    if rng is None:
        return idx[torch.topk(d, size, largest=False).indices]
    pool = idx[torch.topk(d, min(len(idx), 4 * size), largest=False).indices].numpy()
    return torch.from_numpy(np.sort(rng.choice(pool, size, replace=False))).long()


@torch.no_grad()
def greedy_selection(
    problem: SubsetProblem, candidates: torch.Tensor, size: int, n_candidates: int = 32
) -> torch.Tensor:
    """Build a selection of ``size`` features one at a time, each time adding the feature
    whose exact effect, given the features already chosen, is best among the
    ``n_candidates`` best by first-order score at the current selection.

    Unlike the top-``size`` first-order ranking, every addition is evaluated
    exactly and conditioned on the earlier ones, so saturating or redundant features are not
    picked twice over; it costs ``size`` first-order passes and ``size * n_candidates``
    exact evaluations.
    """
    return answer_all(greedy_requests(candidates, size, n_candidates), problem)


def greedy_requests(candidates: torch.Tensor, size: int, n_candidates: int = 32):
    """:func:`greedy_selection` as a request generator (see :func:`answer`)."""
    cand = candidates.bool().cpu()
    sel = torch.zeros(0, dtype=torch.long)
    for _ in range(size):
        d = yield ("first_order", sel)
        free = cand.clone()
        free[sel] = False
        k = min(n_candidates, int(free.sum()))
        short = torch.topk(torch.where(free, d, torch.full_like(d, float("inf"))), k, largest=False)
        vals = yield ("add_values", sel, short.indices)
        sel = torch.cat([sel, short.indices[int(torch.argmin(vals))].reshape(1)])
    return sel
