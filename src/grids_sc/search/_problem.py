"""Subset problems: what the GRIDS optimizer needs to know about a model and its inputs.

A problem exposes, for the current selection ``r`` of features set to the perturbed value
``p``: the objective value, the first-order change ``d_j`` of perturbing each feature from
its original state, and exact values of a batch of candidate swaps. The optimizer minimises
the objective.

:class:`EmbeddingSumProblem` serves the surrogate. It owns the objective (the relative
change of the target genes' mean predicted expression, in the wanted direction) and the
selections; everything about how a change of peaks reaches the prediction belongs to the
surrogate's :class:`~grids_sc.model.IncrementalSurrogate` (``module.incremental(...)``),
which makes every quantity O(nnz) for the embedding-sum surrogates. The problem does not
look inside the model, so any surrogate that implements the interface can be searched.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
import torch

from ..model import IncrementalModel, IncrementalSurrogate
from ..model._incremental import additive_pair_effects


class SubsetProblem(ABC):
    """Interface of a subset-selection problem (minimise :meth:`value` over selections)."""

    n_features: int

    @abstractmethod
    def value(self, selection: torch.Tensor) -> float:
        """Objective with the features in ``selection`` perturbed."""

    @abstractmethod
    def first_order(self, selection: torch.Tensor) -> torch.Tensor:
        """``d_j`` for every feature: first-order objective change of perturbing ``j`` alone
        from its original state, at the current selection.
        """

    @abstractmethod
    def move_values(
        self, selection: torch.Tensor, out_pos: torch.Tensor, incoming: torch.Tensor
    ) -> torch.Tensor:
        """Exact objective of each move ``m``: the features ``selection[out_pos[m, :]]``
        replaced by ``incoming[m, :]`` (``[n_moves, k]``: ``k = 1`` single swaps, ``k = 2``
        pair moves).
        """

    def swap_values(
        self, selection: torch.Tensor, out_pos: torch.Tensor, incoming: torch.Tensor
    ) -> torch.Tensor:
        """Exact objective after replacing ``selection[out_pos[m]]`` by ``incoming[m]``."""
        return self.move_values(selection, out_pos.reshape(-1, 1), incoming.reshape(-1, 1))

    def add_values(self, selection: torch.Tensor, incoming: torch.Tensor) -> torch.Tensor:
        """Exact objective of ``selection`` with each feature of ``incoming`` added.

        The base implementation evaluates them one by one with :meth:`value`; problems with
        a cheaper batched form override it.
        """
        return torch.tensor(
            [self.value(torch.cat([selection.cpu(), j.reshape(1).cpu()])) for j in incoming]
        )

    def pair_effects(
        self, selection: torch.Tensor, features: torch.Tensor, signs: torch.Tensor
    ) -> torch.Tensor:
        """Estimated objective change ``E[a, b]`` of applying the changes of features ``a``
        and ``b`` together (``E[a, a]``: ``a`` alone), at the current selection.

        ``signs[a] = +1`` perturbs a free feature, ``-1`` restores a selected one. The base
        implementation is first order (``E[a, b] = signs[a] d_a + signs[b] d_b``): it sees no
        interaction, so pair moves are ranked additively and only their exact evaluation
        sees interactions.
        """
        return additive_pair_effects(self.first_order(selection).cpu()[features.cpu()], signs.cpu())

    def interacting_features(self) -> torch.Tensor:
        """Features whose interactions :meth:`pair_effects` models (candidates for pairs)."""
        return torch.zeros(0, dtype=torch.long)

    def movable(self, features: torch.Tensor) -> torch.Tensor:
        """Whether perturbing each of ``features`` changes any sample (bool, CPU). A feature
        already at the perturbed value everywhere moves nothing, so the objective cannot see
        it; ``True`` for all by default (the search then never refills such slots).
        """
        return torch.ones(len(features), dtype=torch.bool)

    def tie_scores(self) -> torch.Tensor:
        """``[n_features]`` scores (lower: better) that order features the objective cannot
        tell apart, those that are not :meth:`movable`: the first-order change of perturbing
        each from the other value, where it could move. Zeros by default (no order).
        """
        return torch.zeros(self.n_features)

    def cell_values(self, selection: torch.Tensor) -> torch.Tensor | None:
        """The objective's term of each cell (sample) ``[n]``, whose mean is :meth:`value`,
        with ``selection`` perturbed; ``None`` (the default) when the problem cannot split
        its objective so: the search then keeps every move that improves the objective (see
        :class:`~grids_sc.search.GridsOptimizer`'s ``min_z``).
        """
        return None

    def exact_pair_effects(self, features: torch.Tensor) -> bool:
        """Whether :meth:`pair_effects` of ``features`` is exact at any selection among them
        (then ``value + E[a, b]`` is the exact objective of that move, up to float
        rounding, and the optimizer reads single swaps from it); ``False`` by default.
        """
        return False


class RelativeExpression:
    """The objective ``sign * mean_g(mean_c y_cg / base_g)`` of predictions ``y``
    (an :class:`~grids_sc.model.Objective`: cells on ``cell_dim``, genes last), a weighted
    mean over the cells with ``gene_weights`` ``sign / (n_genes base_g)``.
    """

    def __init__(self, sign: float, base: torch.Tensor) -> None:
        self.sign, self.base = float(sign), base
        self.gene_weights = self.sign / (base * base.shape[-1])

    def __call__(self, y: torch.Tensor, cell_dim: int = -2) -> torch.Tensor:
        return self.sign * (y.mean(cell_dim) / self.base).mean(-1)

    def per_cell(self, y: torch.Tensor) -> torch.Tensor:
        """Each cell's term ``sign * mean_g(y_cg / base_g)`` of predictions ``y`` ``[n,
        n_genes]``: the objective is their mean.
        """
        return self.sign * (y / self.base).mean(-1)


class EmbeddingSumProblem(SubsetProblem):
    """Move a surrogate's predicted expression of some genes, averaged over cells.

    The objective is ``sign * mean_g(mean_c F_g(x_c with r set to p) / base_g)`` where
    ``base_g`` is the unperturbed mean: the relative change of mean expression averaged over
    the genes (for one gene, proportional to the mean expression), minimised when
    ``sign = +1`` (move down) and maximised when ``sign = -1`` (move up).

    Parameters
    ----------
    module
        A fitted surrogate with an ``incremental`` method
        (:class:`~grids_sc.model.IncrementalModel`: :class:`~grids_sc.model.Surrogate`,
        :class:`~grids_sc.model.CisSurrogate` or any other that implements
        :class:`~grids_sc.model.IncrementalSurrogate`; used in eval mode, not modified).
    x
        ``[n_cells, n_peaks]`` binary CSR accessibility of the cells.
    genes
        Output indices of the target genes.
    perturb_value
        ``0.0`` closes the selected peaks, ``1.0`` opens them.
    sign
        ``+1`` to move expression down, ``-1`` to move it up.
    device
        Where to compute.
    chunk
        Candidates evaluated per forward pass.
    model
        The surrogate's evaluator of ``x`` and ``genes`` with ``perturb_value`` when the
        caller has built it (e.g. shared with other genes of the same cells through
        :meth:`~grids_sc.model.IncrementalSurrogate.for_genes`); default: built here.

    Attributes
    ----------
    model
        The surrogate's :class:`~grids_sc.model.IncrementalSurrogate` for these cells and
        genes.
    objective
        The objective as a function of predictions (:class:`RelativeExpression`).
    """

    def __init__(
        self,
        module: IncrementalModel,
        x: sp.csr_matrix,
        genes: np.ndarray,
        perturb_value: float = 0.0,
        sign: float = 1.0,
        device: torch.device | str = "cpu",
        chunk: int = 32,
        model: IncrementalSurrogate | None = None,
    ) -> None:
        self.module = module
        self.device = torch.device(device)
        self.p = float(perturb_value)
        self.sign = float(sign)
        self.chunk = chunk
        self.genes = torch.as_tensor(np.asarray(genes), dtype=torch.long, device=self.device)
        if model is None:
            model = module.incremental(x, genes, self.p, self.device)
        self.model: IncrementalSurrogate = model
        self.n_features = self.model.n_features
        self.n_cells = self.model.n_cells
        with torch.no_grad():
            self.state0 = self.model.initial()
            base = self.model.expression(self.state0).mean(0)
        self.base = base.clamp(min=1e-6)
        self.objective = RelativeExpression(self.sign, self.base)
        self._cache_key: tuple | None = None
        self._cache = None

    # -- state ------------------------------------------------------------------------------
    def _state(self, selection: torch.Tensor):
        """The surrogate's state with the selected peaks perturbed (cached for the last
        selection).
        """
        sel = selection[selection >= 0].to(self.device)
        key = tuple(sorted(sel.tolist()))
        if self._cache_key == key and self._cache is not None:
            return self._cache
        self._cache_key, self._cache = key, self.model.perturbed(sel)
        return self._cache

    def pooled(self, selection: torch.Tensor) -> torch.Tensor:
        """Pooled sums ``[n, K, e]`` with the selected peaks perturbed (embedding-sum
        surrogates: the ``h`` of their :class:`~grids_sc.model.EmbeddingSumState`).
        """
        return self._state(selection).h

    def observed(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``[n_cells, len(features)]`` observed states of ``features``."""
        idx = torch.as_tensor(np.asarray(features), dtype=torch.long, device=self.device)
        return self.p - self.model.columns(idx).T

    def score_only(self, candidates: np.ndarray | torch.Tensor | None) -> None:
        """Restrict :meth:`first_order` to the ``candidates`` (boolean mask over the peaks;
        ``None`` or all ``True``: every peak), the only scores a search over them reads; the
        others are NaN. A no-op for surrogates whose evaluator cannot restrict them.
        """
        restrict = getattr(self.model, "score_only", None)
        if restrict is None:
            return
        mask = None if candidates is None else np.asarray(torch.as_tensor(candidates).cpu())
        restrict(None if mask is None or mask.all() else np.flatnonzero(mask))

    # -- interface --------------------------------------------------------------------------
    @torch.no_grad()
    def value(self, selection: torch.Tensor) -> float:
        """Objective with the selected peaks perturbed."""
        return float(self.objective(self.model.expression(self._state(selection))))

    def first_order(self, selection: torch.Tensor) -> torch.Tensor:
        """First-order change ``d_j`` of perturbing each peak from its original state."""
        return self.model.first_order(self._state(selection), self.objective)

    @torch.no_grad()
    def cell_values(self, selection: torch.Tensor) -> torch.Tensor:
        """Each cell's term of the objective with the selected peaks perturbed (``[n_cells]``;
        their mean is :meth:`value`).
        """
        return self.objective.per_cell(self.model.expression(self._state(selection))).cpu()

    def movable(self, features: torch.Tensor) -> torch.Tensor:
        """Whether each of ``features`` is not already at the perturbed value in every cell
        (closing: open in some cell; opening: closed in some cell).
        """
        idx = torch.as_tensor(features, dtype=torch.long)
        return self.model.movable(idx.to(self.device)).cpu()

    def tie_scores(self) -> torch.Tensor:
        """``(2p - 1) g_j`` (:meth:`input_gradient`, which carries the objective's sign): the
        first-order change of the objective from moving each peak from the other value to
        ``p`` in every cell. A peak closed in every search cell cannot move them when
        closing, but where it is open (held-out cells) closing it acts about as its gradient
        says; a search fills the slots that no search cell can tell apart with the best of
        these (vanilla saliency, signed).
        """
        return ((2.0 * self.p - 1.0) * self.input_gradient()).cpu()

    def input_gradient(self) -> torch.Tensor:
        """``g_j = sum_c dObjective/dx_cj`` at the observed states, for every peak.

        The gradient of the objective with respect to each peak's accessibility (as a real
        number), summed over the cells: the vanilla saliency (Simonyan et al.; Captum's
        ``Saliency`` with ``abs=False``) of the group objective, in O(nnz) like
        :meth:`first_order`. Unlike ``d_j`` it ignores whether a peak can move in a cell
        (``d_j = sum_c (p - x_cj) dObjective/dx_cj``).
        """
        return self.model.input_gradient(self.objective)

    @staticmethod
    @torch.no_grad()
    def first_order_many(
        problems: list[EmbeddingSumProblem], selections: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """:meth:`first_order` of many problems at once, through their surrogates'
        :meth:`~grids_sc.model.IncrementalSurrogate.first_order_many` (one sparse product for
        problems that share their cells); each equals the problem's :meth:`first_order`.
        """
        items = [(p.model, p._state(s), p.objective) for p, s in zip(problems, selections)]
        by_kind: dict[type, list[int]] = {}
        for i, (model, _, _) in enumerate(items):
            by_kind.setdefault(type(model), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(items)
        for kind, idx in by_kind.items():
            for i, d in zip(idx, kind.first_order_many([items[i] for i in idx])):
                out[i] = d
        return out

    def _moves(self, selection, out_pos, incoming):
        """Predictions ``[m', n_cells, n_genes]`` of each ``chunk`` of moves (see
        :meth:`move_values`).
        """
        state = self._state(selection)
        out_pos, incoming = out_pos.to(self.device), incoming.to(self.device)
        for s in range(0, len(incoming), self.chunk):
            outs = selection.to(self.device)[out_pos[s : s + self.chunk]]
            yield self.model.move_expression(state, outs, incoming[s : s + self.chunk])

    @torch.no_grad()
    def move_values(self, selection, out_pos, incoming) -> torch.Tensor:
        """Exact objective of each move, ``chunk`` moves per batched evaluation: move ``i``
        restores the selected peaks at positions ``out_pos[i]`` and perturbs the peaks
        ``incoming[i]``.
        """
        vals = [self.objective(y) for y in self._moves(selection, out_pos, incoming)]
        return torch.cat(vals) if vals else torch.zeros(0, device=self.device)

    @torch.no_grad()
    def move_predictions(self, selection, out_pos, incoming) -> np.ndarray:
        """Predicted expression ``[m, n_cells, n_genes]`` after each move of
        :meth:`move_values` (exact, as :meth:`per_cell` of the moved selection).
        """
        ys = [y.cpu().numpy() for y in self._moves(selection, out_pos, incoming)]
        return np.concatenate(ys) if ys else np.zeros((0, self.n_cells, len(self.genes)))

    @torch.no_grad()
    def add_values(self, selection, incoming) -> torch.Tensor:
        """Exact objective with each incoming peak added (a move that restores nothing)."""
        none = torch.zeros(len(incoming), 0, dtype=torch.long)
        return self.move_values(selection, none, incoming.reshape(-1, 1))

    def interacting_features(self) -> torch.Tensor:
        """Features whose pair effects the surrogate models exactly (e.g. the cis heads'
        window peaks).
        """
        return self.model.interacting_features()

    def exact_pair_effects(self, features: torch.Tensor) -> bool:
        """Whether the surrogate's pair effects of ``features`` are exact
        (:meth:`~grids_sc.model.IncrementalSurrogate.exact_pair_effects`).
        """
        return self.model.exact_pair_effects(features)

    @torch.no_grad()
    def pair_effects(
        self, selection: torch.Tensor, features: torch.Tensor, signs: torch.Tensor
    ) -> torch.Tensor:
        """Objective change of applying two features' changes together (diagonal: alone),
        as the surrogate estimates it (:meth:`~grids_sc.model.IncrementalSurrogate.pair_effects`:
        first order by default, exact through the cis heads among their window peaks).
        """
        return self.model.pair_effects(self._state(selection), features, signs, self.objective)

    @torch.no_grad()
    def per_cell(self, selection: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Predicted expression ``[n, n_genes]`` before and after perturbing ``selection``."""
        before = self.model.expression(self.state0)
        after = self.model.expression(self._state(selection))
        return before.cpu().numpy().copy(), after.cpu().numpy().copy()
