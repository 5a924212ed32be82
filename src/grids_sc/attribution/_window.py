"""A differentiable view of a subset problem restricted to a window of candidate peaks.

Attribution methods (Captum's, SAGE, FIMAP) need the model as a function of a dense input.
:class:`WindowObjective` exposes the surrogate's prediction for the target genes as a function
of the states ``u`` of ``W`` candidate peaks of given cells, the other peaks held at their
observed values, through the surrogate's incremental interface
(:meth:`grids_sc.model.IncrementalSurrogate.window`): for the embedding-sum surrogates the
pooled sums are the cached observed ones plus ``(u - x) D`` on the candidates' chromosomes
(and the same for the cis window sums). Its cost is O(cells x W x emb); no
``[cells, peaks, emb]`` tensor over all peaks is formed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..search import EmbeddingSumProblem


class WindowObjective(nn.Module):
    """Relative predicted expression of the target genes as a function of window states.

    Parameters
    ----------
    problem
        The problem whose cells, target genes and surrogate are used (its ``sign`` is not
        applied: the output is the mean over target genes of ``F_g / base_g``).
    features
        Indices of the ``W`` candidate peaks.

    Notes
    -----
    ``forward(u, cells)`` takes ``u`` ``[b, W]`` (any real values; 0/1 are closed/open) and
    the row of each input among the problem's cells, and returns ``[b]``.
    """

    def __init__(self, problem: EmbeddingSumProblem, features: np.ndarray) -> None:
        super().__init__()
        self.problem = problem
        dev = problem.device
        idx = torch.as_tensor(np.asarray(features), dtype=torch.long, device=dev)
        self.features = idx
        self.x = problem.observed(idx)  # [n, W] observed states
        self._f = problem.model.window(idx)

    def forward(self, u: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """``[b]`` relative expression with window states ``u`` ``[b, W]`` in cells ``cells``."""
        prob = self.problem
        cells = cells.long().to(prob.device)
        du = u.to(prob.device, torch.float32) - self.x[cells]
        y = self._f(cells, du)  # [b, T]
        return (y / prob.base).mean(-1)

    def all_cells(self) -> torch.Tensor:
        """Row indices of all the problem's cells."""
        return torch.arange(self.problem.n_cells, device=self.problem.device)
