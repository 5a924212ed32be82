"""A subset problem over any torch model of binary inputs (e.g. image pixels)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._problem import SubsetProblem


class DenseModelProblem(SubsetProblem):
    """Minimise the mean of ``score(model-input)`` over samples with selected inputs set to
    ``perturb_value``: the GRIDS search for any differentiable model of a dense input.

    Parameters
    ----------
    model
        Kept for reference (``score`` calls it); used in eval mode, not modified.
    x
        ``[n_samples, n_features]`` inputs.
    score
        Maps a batch of inputs ``[b, n_features]`` to per-sample values ``[b]`` to minimise
        (e.g. the logit of the class to flip away from).
    perturb_value
        Value the selected features are set to.
    chunk
        Moves evaluated per batched forward pass.

    Notes
    -----
    Dense by nature (inputs of a few thousand features); the sparse genomic problem is
    :class:`EmbeddingSumProblem`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        score: Callable[[torch.Tensor], torch.Tensor],
        perturb_value: float = 0.0,
        chunk: int = 16,
    ) -> None:
        self.model = model.eval()
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.score = score
        self.p = float(perturb_value)
        self.chunk = chunk
        self.n_features = self.x.shape[1]

    def _perturbed(self, selection: torch.Tensor) -> torch.Tensor:
        xs = self.x.clone()
        xs[:, selection[selection >= 0].long()] = self.p
        return xs

    @torch.no_grad()
    def value(self, selection: torch.Tensor) -> float:
        """Mean score with the selected features perturbed."""
        return float(self.score(self._perturbed(selection)).mean())

    @torch.no_grad()
    def cell_values(self, selection: torch.Tensor) -> torch.Tensor:
        """Each sample's score with the selected features perturbed (their mean is
        :meth:`value`).
        """
        return self.score(self._perturbed(selection)).cpu()

    def _gradient(self, xs: torch.Tensor) -> torch.Tensor:
        """``dscore_mean/dx`` ``[n_samples, n_features]`` at inputs ``xs`` (carries the 1/n)."""
        xs = xs.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.score(xs).mean(), xs)
        return g.detach()

    def first_order(self, selection: torch.Tensor) -> torch.Tensor:
        """``d_j = mean_c dscore/dx_cj (p - x_cj)`` at the current selection."""
        return (self._gradient(self._perturbed(selection)) * (self.p - self.x)).sum(0)

    def movable(self, features: torch.Tensor) -> torch.Tensor:
        """Whether each of ``features`` differs from ``perturb_value`` in some sample."""
        return (self.x[:, features.long()] != self.p).any(0).cpu()

    def tie_scores(self) -> torch.Tensor:
        """``(2p - 1) sum_n dscore/dx_nj`` at the observed inputs (the signed saliency; see
        :meth:`SubsetProblem.tie_scores`).
        """
        return ((2.0 * self.p - 1.0) * self._gradient(self.x).sum(0)).cpu()

    @torch.no_grad()
    def add_values(self, selection, incoming) -> torch.Tensor:
        """Exact mean score with each incoming feature added (a move that restores nothing)."""
        none = torch.zeros(len(incoming), 0, dtype=torch.long)
        return self.move_values(selection, none, incoming.reshape(-1, 1))

    @torch.no_grad()
    def move_values(self, selection, out_pos, incoming) -> torch.Tensor:
        """Exact mean score of each move, ``chunk`` moves per batched forward pass.

        ``incoming`` may have more columns than ``out_pos`` (features added without one
        restored); an incoming index of ``-1`` pads a move with fewer changes.
        """
        base = self._perturbed(selection)
        n = self.x.shape[0]
        vals = []
        for s in range(0, len(incoming), self.chunk):
            outs = selection[out_pos[s : s + self.chunk].long()].long()  # [m, k_out]
            ins = incoming[s : s + self.chunk].long()  # [m, k_in]
            batch = base.unsqueeze(0).repeat(len(ins), 1, 1)  # [m, n, d]
            for q in range(outs.shape[1]):  # restore the outgoing features
                rows = torch.nonzero(ins[:, q] >= 0).squeeze(1)
                o = outs[rows, q]
                batch[rows, :, o] = self.x[:, o].T
            for q in range(ins.shape[1]):  # perturb the incoming ones
                rows = torch.nonzero(ins[:, q] >= 0).squeeze(1)
                batch[rows, :, ins[rows, q]] = self.p
            vals.append(self.score(batch.reshape(-1, self.n_features)).reshape(-1, n).mean(1))
        return torch.cat(vals) if vals else torch.zeros(0)
