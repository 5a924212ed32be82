"""The incremental-evaluation interface a surrogate gives the subset search.

The GRIDS search asks the same few questions many thousand times about one batch of cells
and a gene (or gene set): what does the surrogate predict with these peaks set to ``p``, and
with those peaks changed as well; which peaks would move the objective most to first order;
how do two peaks act together. A surrogate answers them through an
:class:`IncrementalSurrogate` that it builds for the cells and genes
(:meth:`IncrementalModel.incremental`) and that holds whatever makes the answers cheap: for
the embedding-sum surrogates, the per-chromosome sums of every cell and (cis heads) the
genes' window sums, updated in O(nnz) per change.

The search owns the objective (which genes, which direction, relative to what); the
surrogate owns how a change of peaks reaches its prediction. They meet in
:class:`Objective`: a function of predicted expression that the surrogate may call on any
batch of predictions (and differentiate).

A third architecture plugs into the search (:class:`grids_sc.search.EmbeddingSumProblem`,
``tl.explain``, ``tl.attribute``) by implementing :meth:`IncrementalModel.incremental` and the
abstract methods of :class:`IncrementalSurrogate`; the search has no branch on a model class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

State = Any  # what an IncrementalSurrogate keeps for a batch of cells (opaque to the search)
MOVABLE_CHUNK = 1024  # peaks whose dense columns IncrementalSurrogate.movable reads at once


class Objective(Protocol):
    """A scalar objective of predicted expression, owned by the search.

    ``objective(y, cell_dim)`` reduces predictions ``y`` of the target genes (genes on the
    last dimension, cells on ``cell_dim``) over the cells and the genes, keeping any other
    leading dimensions (one value per move of a batch of moves). It is differentiable.

    An objective that is a weighted mean of the predictions over the cells may say so with an
    attribute ``gene_weights`` (``w`` ``[n_genes]``: ``objective(y) = sum_g w_g mean_c
    y_cg``); a surrogate may then sum a change of the objective over the cells the change
    touches alone (e.g. :class:`~grids_sc.model.CisIncremental`'s pair effects).
    """

    def __call__(self, y: torch.Tensor, cell_dim: int = -2) -> torch.Tensor: ...


@runtime_checkable
class IncrementalModel(Protocol):
    """A surrogate the subset search can use: it builds an :class:`IncrementalSurrogate`."""

    def incremental(
        self,
        x: sp.spmatrix,
        genes: np.ndarray | torch.Tensor,
        perturb_value: float = 0.0,
        device: torch.device | str = "cpu",
    ) -> IncrementalSurrogate:
        """The incremental evaluator of the cells ``x`` (``[n_cells, n_peaks]`` binary
        accessibility) for the output genes ``genes``, with perturbed peaks set to
        ``perturb_value``; the model is put in eval mode on ``device`` and not modified.
        """
        ...


def additive_pair_effects(d: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """First-order pair effects ``E[a, b] = s_a d_a + s_b d_b`` (diagonal: ``s_a d_a``)."""
    d = d * signs.to(torch.float32)
    e = d[:, None] + d[None, :]
    e.diagonal().copy_(d)
    return e


class IncrementalSurrogate(ABC):
    """A surrogate's predictions for one batch of cells and a set of target genes, kept so
    that changing a few peaks costs O(nnz) of those peaks rather than a full forward pass.

    States (:data:`State`) are opaque to the caller: they come from :meth:`initial` and
    :meth:`perturbed` and go back into the other methods. The perturbed value ``p`` is fixed
    when the evaluator is built.

    Attributes
    ----------
    n_features
        Number of peaks (input features).
    n_cells
        Number of cells of the batch.
    perturb_value
        The value ``p`` perturbed peaks are set to.
    device
        Where states live.
    """

    n_features: int
    n_cells: int
    perturb_value: float
    device: torch.device

    # -- states -------------------------------------------------------------------------------
    @abstractmethod
    def initial(self) -> State:
        """The state at the observed accessibility."""

    @abstractmethod
    def perturbed(self, peaks: torch.Tensor) -> State:
        """The state with ``peaks`` (distinct indices, on :attr:`device`) set to ``p`` in
        every cell, the others observed; O(nnz of those peaks) for large sets.
        """

    @abstractmethod
    def expression(self, state: State) -> torch.Tensor:
        """Predicted expression ``[n_cells, n_genes]`` of the target genes in ``state``."""

    @abstractmethod
    def move_expression(
        self, state: State, restore: torch.Tensor, perturb: torch.Tensor
    ) -> torch.Tensor:
        """Predicted expression ``[m, n_cells, n_genes]`` after each of ``m`` moves applied
        to ``state``: move ``i`` sets the peaks ``restore[i]`` (``[m, k_out]``; perturbed in
        ``state``) back to their observed values and the peaks ``perturb[i]``
        (``[m, k_in]``; observed in ``state``) to ``p``. Exact.
        """

    @abstractmethod
    def columns(self, peaks: torch.Tensor) -> torch.Tensor:
        """``[..., n_cells]``: the change ``p - x_cj`` of setting each peak of ``peaks``
        (any shape) to ``p`` in each cell.
        """

    def movable(self, peaks: torch.Tensor) -> torch.Tensor:
        """Whether setting each of ``peaks`` to ``p`` changes any cell (bool, on
        :attr:`device`): from :meth:`columns`, :data:`MOVABLE_CHUNK` peaks at a time; a
        surrogate that holds the cells' accessibility sparse may read it from there.
        """
        out = torch.zeros(len(peaks), dtype=torch.bool, device=self.device)
        for s in range(0, len(peaks), MOVABLE_CHUNK):
            part = peaks[s : s + MOVABLE_CHUNK].to(self.device)
            out[s : s + MOVABLE_CHUNK] = (self.columns(part) != 0).any(-1)
        return out

    def for_genes(self, genes: np.ndarray | torch.Tensor) -> IncrementalSurrogate | None:
        """The evaluator of the same cells for other target ``genes``, sharing what does not
        depend on the genes (e.g. the cells' encoder pass); ``None`` (the default) when the
        surrogate shares nothing, and the caller builds a new one with
        :meth:`IncrementalModel.incremental`. Its answers equal those of a new one.
        """
        return None

    # -- first order and pairs ----------------------------------------------------------------
    @classmethod
    def first_order_many(
        cls, items: list[tuple[IncrementalSurrogate, State, Objective]]
    ) -> list[torch.Tensor]:
        """:meth:`first_order` of many ``(evaluator, state, objective)`` at once (a batched
        search asks for all its searches' scores together). The default answers them one by
        one; a surrogate overrides it when evaluators that share their cells can share the
        work (one sparse product for all of them).
        """
        return [model.first_order(state, objective) for model, state, objective in items]

    @abstractmethod
    def first_order(self, state: State, objective: Objective) -> torch.Tensor:
        """``d_j`` ``[n_features]``: the first-order change of ``objective`` of setting
        peak ``j`` from its observed value to ``p`` in every cell, at ``state`` (the
        gradient with respect to the inputs times the change, summed over the cells).
        """

    @abstractmethod
    def input_gradient(self, objective: Objective) -> torch.Tensor:
        """``g_j = sum_c dObjective/dx_cj`` at the observed state, ``[n_features]``."""

    def interacting_features(self) -> torch.Tensor:
        """Peaks whose pairwise interactions :meth:`pair_effects` models exactly (CPU);
        none by default.
        """
        return torch.zeros(0, dtype=torch.long)

    def pair_effects(
        self, state: State, features: torch.Tensor, signs: torch.Tensor, objective: Objective
    ) -> torch.Tensor:
        """Estimated change ``E[a, b]`` (CPU) of ``objective`` of applying the changes of
        ``features`` ``a`` and ``b`` together at ``state`` (diagonal: ``a`` alone);
        ``signs[a] = +1`` perturbs an observed peak, ``-1`` restores a perturbed one.

        The default is first order (additive); a surrogate whose peaks interact overrides
        it for its :meth:`interacting_features`.
        """
        d = self.first_order(state, objective).cpu()[features.cpu()]
        return additive_pair_effects(d, signs.cpu())

    def exact_pair_effects(self, features: torch.Tensor) -> bool:
        """Whether :meth:`pair_effects` of ``features`` is exact at any state whose
        perturbed peaks are among them: ``E[a, b]`` (and ``E[a, a]``) then equal the change
        of the objective that :meth:`move_expression` gives the same move, up to float
        rounding, and a search may read its single swaps from them. ``False`` by default.
        """
        return False

    # -- a window of peaks as a dense function ------------------------------------------------
    @abstractmethod
    def window(self, features: torch.Tensor):
        """A differentiable function ``f(cells, du) -> [b, n_genes]``: predicted expression
        of the cells ``cells`` (rows of the batch, ``[b]``) with the states of ``features``
        (``[W]``) changed by ``du`` (``[b, W]``, any real values), the other peaks observed.
        """
