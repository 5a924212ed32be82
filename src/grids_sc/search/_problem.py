"""Subset problems: what the GRIDS optimizer needs to know about a model and its inputs.

A problem exposes, for the current selection ``r`` of features set to the perturbed value
``p``: the objective value, the first-order change ``d_j`` of perturbing each feature from
its original state, and exact values of a batch of candidate swaps. The optimizer minimises
the objective.

:class:`EmbeddingSumProblem` serves the surrogate: the per-chromosome embedding sums make
every quantity O(nnz). The cells' pooled sums ``h`` are held once; perturbing peak ``j``
in cell ``c`` adds ``(p - x_cj) D_j`` to chromosome ``k(j)`` of ``h_c``, so

- first-order scores of all peaks are one sparse product: ``d_j = D_j . (p sum_c G_ck - sum_c
  x_cj G_ck)`` with ``G = dObjective/dh`` (the transposed batch structure gives the second
  sum in O(nnz * emb));
- an exact swap changes one or two chromosomes of ``h``, so only their per-chromosome layers
  are recomputed before the shared latent layer.

No dense ``[cells, peaks, emb]`` tensor is formed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..model import Surrogate, make_batch


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
    def swap_values(
        self, selection: torch.Tensor, out_pos: torch.Tensor, incoming: torch.Tensor
    ) -> torch.Tensor:
        """Exact objective after replacing ``selection[out_pos[m]]`` by ``incoming[m]``."""


class EmbeddingSumProblem(SubsetProblem):
    """Move a surrogate's predicted expression of some genes, averaged over cells.

    The objective is ``sign * mean_g(mean_c F_g(x_c with r set to p) / base_g)`` where
    ``base_g`` is the unperturbed mean: the relative change of mean expression averaged over
    the genes (for one gene, proportional to the mean expression), minimised when
    ``sign = +1`` (move down) and maximised when ``sign = -1`` (move up).

    Parameters
    ----------
    module
        A fitted :class:`~grids_sc.model.Surrogate` (used in eval mode, not modified).
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
    """

    def __init__(
        self,
        module: Surrogate,
        x: sp.csr_matrix,
        genes: np.ndarray,
        perturb_value: float = 0.0,
        sign: float = 1.0,
        device: torch.device | str = "cpu",
        chunk: int = 32,
    ) -> None:
        self.module = module.eval()
        self.device = torch.device(device)
        self.module.to(self.device)
        enc = module.atac_encoder
        self.enc = enc
        self.n_features = enc.n_peaks
        self.p = float(perturb_value)
        self.sign = float(sign)
        self.chunk = chunk
        self.genes = torch.as_tensor(np.asarray(genes), dtype=torch.long, device=self.device)
        self.x = sp.csc_matrix(x, dtype=np.float32)
        self.n_cells = x.shape[0]
        peak_chrom = enc.peak_chrom.cpu().numpy()
        batch = make_batch(sp.csr_matrix(x, dtype=np.float32), peak_chrom, enc.n_chrom).to(
            self.device
        )
        self.by_peak = batch.by_peak
        self.peak_chrom = enc.peak_chrom.to(self.device)
        with torch.no_grad():
            self.delta = enc.delta.detach()
            self.h0 = enc.pool(batch).detach()  # [n, K, e]
            self.hid0 = enc.chrom_layer(self.h0)
            base = module.expression_from_latent(enc.latent(self.hid0), self.genes).mean(0)
        self.base = base.clamp(min=1e-6)
        self._cache_key: tuple | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- state ------------------------------------------------------------------------------
    def _columns(self, peaks: torch.Tensor) -> torch.Tensor:
        """``[m, n_cells]`` state changes of several peaks."""
        sub = self.x[:, peaks.cpu().numpy()]
        dense = np.asarray(sub.todense(), dtype=np.float32).T
        return torch.from_numpy(self.p - dense).to(self.device)

    def pooled(self, selection: torch.Tensor) -> torch.Tensor:
        """Pooled sums ``[n, K, e]`` with the selected peaks perturbed."""
        sel = selection[selection >= 0]
        key = tuple(sorted(sel.tolist()))
        if self._cache_key == key and self._cache is not None:
            return self._cache[0]
        h = self.h0.clone()
        if len(sel):
            cols = self._columns(sel)  # [m, n]
            upd = cols[:, :, None] * self.delta[sel][:, None, :]  # [m, n, e]
            h.index_add_(1, self.peak_chrom[sel], upd.transpose(0, 1))
        hid = self.enc.chrom_layer(h)
        self._cache_key, self._cache = key, (h, hid)
        return h

    def _objective_from_hidden(self, hid: torch.Tensor) -> torch.Tensor:
        """Objective of hidden units ``[..., n, K, c]`` (leading dims kept)."""
        y = self.module.expression_from_latent(self.enc.latent(hid), self.genes)
        return self.sign * (y.mean(-2) / self.base).mean(-1)

    # -- interface --------------------------------------------------------------------------
    @torch.no_grad()
    def value(self, selection: torch.Tensor) -> float:
        """Objective with the selected peaks perturbed."""
        self.pooled(selection)
        return float(self._objective_from_hidden(self._cache[1]))

    def first_order(self, selection: torch.Tensor) -> torch.Tensor:
        """First-order change ``d_j`` of perturbing each peak from its original state."""
        h = self.pooled(selection).detach().requires_grad_(True)
        with torch.enable_grad():
            obj = self._objective_from_hidden(self.enc.chrom_layer(h))
            (grad,) = torch.autograd.grad(obj, h)
        m = (self.by_peak @ grad.reshape(-1, grad.shape[-1])).detach()  # sum_c x_cj G_c,k(j)
        total = grad.sum(0).detach()  # [K, e]
        return (self.delta * (self.p * total[self.peak_chrom] - m)).sum(-1)

    @torch.no_grad()
    def swap_values(self, selection, out_pos, incoming) -> torch.Tensor:
        """Exact objective of each swap, recomputing only the touched chromosomes."""
        h = self.pooled(selection)
        hid = self._cache[1]
        vals = []
        for s in range(0, len(incoming), self.chunk):
            outs = selection[out_pos[s : s + self.chunk]]
            ins = incoming[s : s + self.chunk]
            vals.append(self._swap_chunk(h, hid, outs, ins))
        return torch.cat(vals) if vals else torch.zeros(0, device=self.device)

    def _swap_chunk(self, h, hid, outs, ins) -> torch.Tensor:
        m = len(ins)
        col_out = self._columns(outs)  # [m, n] change that was applied for the outgoing peak
        col_in = self._columns(ins)
        k_out, k_in = self.peak_chrom[outs], self.peak_chrom[ins]
        # chromosome slices before the swap, then the two updates (same chromosome allowed)
        h_out = h[:, k_out, :].transpose(0, 1) - col_out[:, :, None] * self.delta[outs][:, None, :]
        same = (k_out == k_in)[:, None, None]
        h_in_base = torch.where(same, h_out, h[:, k_in, :].transpose(0, 1))
        h_in = h_in_base + col_in[:, :, None] * self.delta[ins][:, None, :]
        hid_new = hid.unsqueeze(0).expand(m, *hid.shape).clone()  # [m, n, K, c]
        ar = torch.arange(m, device=self.device)
        hid_new[ar, :, k_out, :] = self._chrom_layer_one(h_out, k_out)
        hid_new[ar, :, k_in, :] = self._chrom_layer_one(h_in, k_in)
        return self._objective_from_hidden(hid_new)

    def _chrom_layer_one(self, h_k: torch.Tensor, chroms: torch.Tensor) -> torch.Tensor:
        """Per-chromosome layer of ``h_k [m, n, e]`` where slice ``m`` lies on ``chroms[m]``."""
        enc = self.enc
        h = F.layer_norm(h_k, (enc.emb_dim,))
        h = F.gelu(h * enc.norm_weight[chroms][:, None, :] + enc.norm_bias[chroms][:, None, :])
        h = torch.einsum("mne,meh->mnh", h, enc.chrom_weight[chroms])
        return F.gelu(h + enc.chrom_bias[chroms][:, None, :])

    @torch.no_grad()
    def per_cell(self, selection: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Predicted expression ``[n, n_genes]`` before and after perturbing ``selection``."""
        before = self.module.expression_from_latent(self.enc.latent(self.hid0), self.genes)
        self.pooled(selection)
        after = self.module.expression_from_latent(self.enc.latent(self._cache[1]), self.genes)
        return before.cpu().numpy(), after.cpu().numpy()
