"""An ensemble of surrogates as one surrogate: its prediction is the mean of its members'.

Each member is a fitted surrogate of the same data (e.g. fit with other seeds). The search
and the attribution methods see the ensemble through the same incremental interface as a
single surrogate (:class:`~grids_sc.model.IncrementalSurrogate`); every answer is the mean
of the members' answers. The objectives of the search are means over cells and genes of
predictions divided by constants (:class:`~grids_sc.search.EmbeddingSumProblem`), linear in
the predictions, so the mean of the members' first-order scores and pair effects is the
ensemble's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._incremental import IncrementalSurrogate, Objective


class SurrogateEnsemble(nn.Module):
    """Surrogates of the same peaks and genes whose predictions are averaged.

    Parameters
    ----------
    members
        Fitted surrogates with an ``incremental`` method
        (:class:`~grids_sc.model.IncrementalModel`), all over the same peaks and genes.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not len(members):
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        """The mean of the members' outputs for the same inputs."""
        return torch.stack([m(*args, **kwargs) for m in self.members]).mean(0)

    def incremental(self, x, genes, perturb_value: float = 0.0, device="cpu"):
        """The :class:`EnsembleIncremental` of the members for cells ``x`` and ``genes``."""
        return EnsembleIncremental(
            [m.incremental(x, genes, perturb_value, device) for m in self.members]
        )


class EnsembleIncremental(IncrementalSurrogate):
    """The incremental evaluator of a :class:`SurrogateEnsemble`: a state is the list of the
    members' states, and every answer is the mean of the members' answers.

    Parameters
    ----------
    members
        The members' evaluators of the same cells and genes.
    """

    def __init__(self, members: Sequence[IncrementalSurrogate]) -> None:
        self.members = list(members)
        first = self.members[0]
        self.n_features, self.n_cells = first.n_features, first.n_cells
        self.perturb_value, self.device = first.perturb_value, first.device

    def _mean(self, values) -> torch.Tensor:
        values = list(values)
        out = values[0].clone()
        for v in values[1:]:
            out += v
        return out / len(values)

    def for_genes(self, genes) -> EnsembleIncremental | None:
        """The evaluator of the same cells for other genes (each member's, shared where the
        member shares; ``None`` when a member shares nothing).
        """
        others = [m.for_genes(genes) for m in self.members]
        return None if any(o is None for o in others) else EnsembleIncremental(others)

    # -- states -------------------------------------------------------------------------------
    def initial(self) -> list:
        """The members' states at the observed accessibility."""
        return [m.initial() for m in self.members]

    def perturbed(self, peaks: torch.Tensor) -> list:
        """The members' states with ``peaks`` set to ``p``."""
        return [m.perturbed(peaks) for m in self.members]

    def expression(self, state: list) -> torch.Tensor:
        """The mean of the members' predictions."""
        return self._mean(m.expression(s) for m, s in zip(self.members, state))

    def move_expression(self, state: list, restore, perturb) -> torch.Tensor:
        """The mean of the members' predictions after each move."""
        return self._mean(
            m.move_expression(s, restore, perturb) for m, s in zip(self.members, state)
        )

    def columns(self, peaks: torch.Tensor) -> torch.Tensor:
        """The change ``p - x`` of each peak (the members share the cells)."""
        return self.members[0].columns(peaks)

    # -- first order and pairs ----------------------------------------------------------------
    def first_order(self, state: list, objective: Objective) -> torch.Tensor:
        """The mean of the members' first-order scores (the objective is linear in the
        predictions, so this is the ensemble's own).
        """
        return self._mean(m.first_order(s, objective) for m, s in zip(self.members, state))

    def input_gradient(self, objective: Objective) -> torch.Tensor:
        """The mean of the members' input gradients."""
        return self._mean(m.input_gradient(objective) for m in self.members)

    def interacting_features(self) -> torch.Tensor:
        """The peaks any member models pairs of."""
        feats = [m.interacting_features().cpu() for m in self.members]
        return torch.unique(torch.cat(feats)) if feats else torch.zeros(0, dtype=torch.long)

    def pair_effects(self, state: list, features, signs, objective: Objective) -> torch.Tensor:
        """The mean of the members' pair effects (each exact where the member models the
        pair, first order elsewhere).
        """
        return self._mean(
            m.pair_effects(s, features, signs, objective).cpu() for m, s in zip(self.members, state)
        )

    # -- a window of peaks --------------------------------------------------------------------
    def window(self, features: torch.Tensor):
        """``f(cells, du)``: the mean of the members' window functions."""
        fs = [m.window(features) for m in self.members]

        def f(cells: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
            return torch.stack([g(cells, du) for g in fs]).mean(0)

        return f


def ensemble_of(members: Sequence[nn.Module]) -> nn.Module:
    """One surrogate from ``members``: the member itself when there is one."""
    return members[0] if len(members) == 1 else SurrogateEnsemble(members)


__all__ = ["EnsembleIncremental", "SurrogateEnsemble", "ensemble_of"]
