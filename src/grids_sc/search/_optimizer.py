"""The GRIDS optimizer: coordinate descent over an index set, guided by first-order scores."""

from __future__ import annotations

import numpy as np
import torch

from ._problem import SubsetProblem


class GridsOptimizer(torch.optim.Optimizer):
    """Gradient-guided coordinate descent over a set of ``L`` feature indices.

    The "parameter" is a ``LongTensor`` of ``L`` selected feature indices, updated in place.
    Each :meth:`step` computes the first-order change ``d_j`` of perturbing every candidate
    feature, scores every swap of a selected feature ``r_i`` for a candidate ``j`` by the
    transition matrix ``T[i, j] = d_j - d_{r_i}``, evaluates the ``n_candidates`` best swaps
    exactly, and applies the best one if it lowers the objective (else it sets
    :attr:`converged`).

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
    """

    def __init__(
        self,
        params,
        problem: SubsetProblem,
        candidates: torch.Tensor | None = None,
        n_candidates: int = 32,
        tol: float = 1e-7,
    ) -> None:
        params = list(params)
        if len(params) != 1 or params[0].dtype != torch.long or params[0].ndim != 1:
            raise ValueError("GridsOptimizer takes exactly one 1-D LongTensor of selected indices")
        if n_candidates < 1:
            raise ValueError("n_candidates must be at least 1")
        super().__init__(params, {"n_candidates": n_candidates, "tol": tol})
        self.problem = problem
        n = problem.n_features
        cand = torch.ones(n, dtype=torch.bool) if candidates is None else candidates.bool().cpu()
        if cand.numel() != n:
            raise ValueError(f"candidates mask has {cand.numel()} entries, expected {n}")
        self.candidates = cand
        sel = params[0]
        if len(torch.unique(sel)) != len(sel):
            raise ValueError("the initial selection has duplicate indices")
        self.converged = False
        self.value = problem.value(sel)
        self.trace: list[float] = [self.value]

    @property
    def selection(self) -> torch.Tensor:
        """The current selection."""
        return self.param_groups[0]["params"][0]

    @torch.no_grad()
    def step(self, closure=None) -> float:  # noqa: D102 - documented on the class
        if closure is not None:
            raise ValueError("GridsOptimizer computes its own scores; it takes no closure")
        group = self.param_groups[0]
        sel = self.selection
        if self.converged:
            return self.value
        d = self.problem.first_order(sel).cpu()
        free = self.candidates.clone()
        free[sel.cpu()] = False
        if not free.any():
            self.converged = True
            return self.value
        k = min(group["n_candidates"], int(free.sum()))
        d_free = torch.where(free, d, torch.full_like(d, float("inf")))
        incoming = torch.topk(d_free, k, largest=False).indices  # best features to add
        d_sel = d[sel.cpu()]
        trans = d[incoming][None, :] - d_sel[:, None]  # T[i, j] for the shortlisted j
        flat = torch.topk(trans.flatten(), min(k, trans.numel()), largest=False).indices
        out_pos, in_idx = flat // k, incoming[flat % k]
        vals = self.problem.swap_values(sel, out_pos.to(sel.device), in_idx.to(sel.device)).cpu()
        best = int(torch.argmin(vals))
        if float(vals[best]) < self.value - group["tol"]:
            sel[int(out_pos[best])] = int(in_idx[best])
            self.value = float(vals[best])
        else:
            self.converged = True
        self.trace.append(self.value)
        return self.value


def initial_selection(
    d: torch.Tensor, candidates: torch.Tensor, size: int, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """Top-``size`` candidates by first-order score (lowest ``d``); with ``rng``, a random
    ``size`` of the top ``4 * size`` (for restarts).
    """
    d = torch.where(candidates.cpu(), d.cpu(), torch.full_like(d.cpu(), float("inf")))
    n_cand = int(candidates.sum())
    if rng is None:
        return torch.topk(d, size, largest=False).indices.clone()
    pool = torch.topk(d, min(n_cand, 4 * size), largest=False).indices.numpy()
    return torch.from_numpy(np.sort(rng.choice(pool, size, replace=False))).long()
