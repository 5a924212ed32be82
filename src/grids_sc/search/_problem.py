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

With the cis surrogate, the target genes' window sums ``s_g`` are a second embedding sum over
the few peaks of their windows, updated the same way. Pair moves are scored by the exact
effect of two window peaks together through the small per-gene heads (the Boolean
second-order term ``f(ab) - f(a) - f(b) + f(0)``), for all pairs of a window at once.

No dense ``[cells, peaks, emb]`` tensor is formed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..model import CisSurrogate, Surrogate, make_batch

DENSE_STATE_LIMIT = 512  # selections up to this size update the pooled sums column by column


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
        d = self.first_order(selection).cpu()[features.cpu()] * signs.cpu().to(torch.float32)
        e = d[:, None] + d[None, :]
        e.diagonal().copy_(d)
        return e

    def interacting_features(self) -> torch.Tensor:
        """Features whose interactions :meth:`pair_effects` models (candidates for pairs)."""
        return torch.zeros(0, dtype=torch.long)


class EmbeddingSumProblem(SubsetProblem):
    """Move a surrogate's predicted expression of some genes, averaged over cells.

    The objective is ``sign * mean_g(mean_c F_g(x_c with r set to p) / base_g)`` where
    ``base_g`` is the unperturbed mean: the relative change of mean expression averaged over
    the genes (for one gene, proportional to the mean expression), minimised when
    ``sign = +1`` (move down) and maximised when ``sign = -1`` (move up).

    Parameters
    ----------
    module
        A fitted :class:`~grids_sc.model.Surrogate` or :class:`~grids_sc.model.CisSurrogate`
        (used in eval mode, not modified).
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
        module: Surrogate | CisSurrogate,
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
        self.cis = isinstance(module, CisSurrogate)
        with torch.no_grad():
            self.delta = enc.delta.detach()
            self.h0 = enc.pool(batch).detach()  # [n, K, e]
            self.hid0 = enc.chrom_layer(self.h0)
            self.s0 = module.cis.pool(batch, self.genes).detach() if self.cis else None
            if self.cis:
                self._window_table()
            base = self._expression(self.hid0, self.s0).mean(0)
        self.base = base.clamp(min=1e-6)
        self._cache_key: tuple | None = None
        self._cache: tuple | None = None
        self._grad_key: tuple | None = None
        self._grad: tuple | None = None

    def _window_table(self) -> None:
        """Per-peak window embeddings of the target genes: ``win_emb[slot[j]]`` is
        ``[n_targets, cis_dim]`` for a window peak ``j`` (``slot[j] = -1`` elsewhere).
        """
        peaks, local, emb = self.module.cis.window_embeddings(self.genes)
        uniq, inv = torch.unique(peaks, return_inverse=True)
        table = torch.zeros(len(uniq), len(self.genes), emb.shape[-1], device=self.device)
        table[inv, local] = emb.detach()
        self.win_peaks = uniq
        self.win_emb = table
        self.slot = torch.full((self.n_features,), -1, dtype=torch.long, device=self.device)
        self.slot[uniq] = torch.arange(len(uniq), device=self.device)

    def _window_emb(self, peaks: torch.Tensor) -> torch.Tensor:
        """``[..., n_targets, cis_dim]`` window embeddings of ``peaks`` (zero off-window)."""
        slot = self.slot[peaks]
        emb = self.win_emb[slot.clamp(min=0)]
        return emb * (slot >= 0)[..., None, None].to(emb.dtype)

    # -- state ------------------------------------------------------------------------------
    def _columns(self, peaks: torch.Tensor) -> torch.Tensor:
        """``[..., n_cells]`` state changes ``p - x`` of peaks (any shape)."""
        flat = peaks.reshape(-1).cpu().numpy()
        dense = np.asarray(self.x[:, flat].todense(), dtype=np.float32).T
        cols = torch.from_numpy(self.p - dense).to(self.device)
        return cols.reshape(*peaks.shape, self.n_cells)

    def _expression(self, hid: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """Predicted expression of the target genes from chromosome hidden units (and window
        sums), any leading dimensions.
        """
        return self._expression_z(self.enc.latent(hid), s)

    def _expression_z(self, z: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """Predicted expression of the target genes from the ATAC latent (and window sums)."""
        if self.cis:
            return self.module.expression_from_state(z, s, self.genes)
        return self.module.expression_from_latent(z, self.genes)

    def pooled(self, selection: torch.Tensor) -> torch.Tensor:
        """Pooled sums ``[n, K, e]`` with the selected peaks perturbed."""
        return self._state(selection)[0]

    def _state(self, selection: torch.Tensor) -> tuple:
        """``(h, hid, s, z)`` with the selected peaks perturbed (cached for the last selection)."""
        sel = selection[selection >= 0].to(self.device)
        key = tuple(sorted(sel.tolist()))
        if self._cache_key == key and self._cache is not None:
            return self._cache
        h, s = self.h0.clone(), None if self.s0 is None else self.s0.clone()
        if len(sel) > DENSE_STATE_LIMIT:
            # large selections (masks of attribution methods): the change of the pooled sums
            # is p sum_j D_j - sum_{j open in c} D_j per chromosome, from the nonzeros alone
            h += self._sparse_change(sel)
            if s is not None:
                win = sel[self.slot[sel] >= 0]  # only window peaks move the window sums
                if len(win):
                    s += torch.einsum("mn,mte->nte", self._columns(win), self._window_emb(win))
        elif len(sel):
            cols = self._columns(sel)  # [m, n]
            upd = cols[:, :, None] * self.delta[sel][:, None, :]  # [m, n, e]
            h.index_add_(1, self.peak_chrom[sel], upd.transpose(0, 1))
            if s is not None:
                s += torch.einsum("mn,mte->nte", cols, self._window_emb(sel))
        hid = self.enc.chrom_layer(h)
        self._cache_key, self._cache = key, (h, hid, s, self.enc.latent(hid))
        return self._cache

    def _sparse_change(self, sel: torch.Tensor) -> torch.Tensor:
        """``[n, K, e]`` change of the pooled sums from perturbing ``sel``, in
        O(nnz(X[:, sel]) e + |sel| e).
        """
        n_chrom, emb = self.h0.shape[1], self.h0.shape[2]
        chrom = self.peak_chrom[sel]
        const = torch.zeros(n_chrom, emb, device=self.device, dtype=self.h0.dtype)
        const.index_add_(0, chrom, self.p * self.delta[sel])
        sub = self.x[:, sel.cpu().numpy()].tocoo()
        cells = torch.from_numpy(sub.row.astype(np.int64)).to(self.device)
        local = torch.from_numpy(sub.col.astype(np.int64)).to(self.device)
        vals = torch.from_numpy(sub.data.astype(np.float32)).to(self.device)
        change = torch.zeros(self.n_cells * n_chrom, emb, device=self.device, dtype=self.h0.dtype)
        upd = -vals[:, None] * self.delta[sel[local]]
        change.index_add_(0, cells * n_chrom + chrom[local], upd)
        return change.view(self.n_cells, n_chrom, emb) + const

    def _objective(self, hid: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """Objective of hidden units ``[..., n, K, c]`` (leading dims kept)."""
        return self._objective_z(self.enc.latent(hid), s)

    def _objective_z(self, z: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """Objective of latents ``[..., n, n_latent]`` (leading dims kept)."""
        y = self._expression_z(z, s)
        return self.sign * (y.mean(-2) / self.base).mean(-1)

    # -- interface --------------------------------------------------------------------------
    @torch.no_grad()
    def value(self, selection: torch.Tensor) -> float:
        """Objective with the selected peaks perturbed."""
        _, _, s, z = self._state(selection)
        return float(self._objective_z(z, s))

    def first_order(self, selection: torch.Tensor) -> torch.Tensor:
        """First-order change ``d_j`` of perturbing each peak from its original state."""
        d_shared, d_cis = self._first_order_parts(selection)
        return d_shared if d_cis is None else d_shared + d_cis

    def input_gradient(self) -> torch.Tensor:
        """``g_j = sum_c dObjective/dx_cj`` at the observed states, for every peak.

        The gradient of the objective with respect to each peak's accessibility (as a real
        number), summed over the cells: the vanilla saliency (Simonyan et al.; Captum's
        ``Saliency`` with ``abs=False``) of the group objective, in O(nnz) like
        :meth:`first_order`. Unlike ``d_j`` it ignores whether a peak can move in a cell
        (``d_j = sum_c (p - x_cj) dObjective/dx_cj``).
        """
        grad, grad_s = self._objective_grads(self.h0, self.s0)
        g = (self.delta * grad.sum(0)[self.peak_chrom]).sum(-1)
        if self.cis and len(self.win_peaks):
            g[self.win_peaks] += torch.einsum("cte,ute->u", grad_s, self.win_emb)
        return g

    def _objective_grads(self, h: torch.Tensor, s: torch.Tensor | None) -> tuple:
        """``dObjective/dh`` ``[n, K, e]`` and ``dObjective/ds`` (``None`` without cis heads)
        at pooled sums ``h`` and window sums ``s``.
        """
        h = h.detach().requires_grad_(True)
        inputs = [h] if s is None else [h, s.detach().requires_grad_(True)]
        with torch.enable_grad():
            obj = self._objective(self.enc.chrom_layer(h), inputs[1] if self.cis else None)
            grads = torch.autograd.grad(obj, inputs)
        return grads[0].detach(), (grads[1].detach() if len(grads) > 1 else None)

    def _first_order_parts(self, selection: torch.Tensor):
        """``d_j`` through the shared latent, and through the window sums (or ``None``);
        cached for the last selection (a pair step asks twice).
        """
        h, _, s, _ = self._state(selection)
        if self._grad_key == self._cache_key and self._grad is not None:
            return self._grad
        grad, grad_s = self._objective_grads(h, s)
        m = self.by_peak @ grad.reshape(-1, grad.shape[-1])  # sum_c x_cj G_c,k(j)
        total = grad.sum(0)  # [K, e]
        d = (self.delta * (self.p * total[self.peak_chrom] - m)).sum(-1)
        d_cis = None
        if self.cis:
            d_cis = torch.zeros_like(d)
            if len(self.win_peaks):
                v = torch.einsum("cte,ute->cu", grad_s, self.win_emb)  # [n, U]
                d_cis[self.win_peaks] = (self._columns(self.win_peaks).T * v).sum(0)
        self._grad_key, self._grad = self._cache_key, (d, d_cis)
        return self._grad

    @torch.no_grad()
    def move_values(self, selection, out_pos, incoming) -> torch.Tensor:
        """Exact objective of each move, recomputing only the touched chromosomes."""
        state = self._state(selection)
        out_pos, incoming = out_pos.to(self.device), incoming.to(self.device)
        vals = []
        for s in range(0, len(incoming), self.chunk):
            outs = selection.to(self.device)[out_pos[s : s + self.chunk]]
            vals.append(self._move_chunk(state, outs, incoming[s : s + self.chunk]))
        return torch.cat(vals) if vals else torch.zeros(0, device=self.device)

    @torch.no_grad()
    def add_values(self, selection, incoming) -> torch.Tensor:
        """Exact objective with each incoming peak added (a move that restores nothing)."""
        none = torch.zeros(len(incoming), 0, dtype=torch.long)
        return self.move_values(selection, none, incoming.reshape(-1, 1))

    def _move_chunk(self, state, outs: torch.Tensor, ins: torch.Tensor) -> torch.Tensor:
        h, hid, s, z = state
        peaks = torch.cat([outs, ins], dim=1)  # [m, q]: every peak the move changes
        signs = torch.cat([-torch.ones_like(outs), torch.ones_like(ins)], 1).to(h.dtype)
        change = signs[..., None] * self._columns(peaks)  # [m, q, n]
        chroms = self.peak_chrom[peaks]  # [m, q]
        contrib = change[..., None] * self.delta[peaks][:, :, None, :]  # [m, q, n, e]
        same = (chroms[:, :, None] == chroms[:, None, :]).to(h.dtype)  # [m, q, q]
        # each touched chromosome's sums after all of the move's changes on it
        h_slot = h.permute(1, 0, 2)[chroms] + torch.einsum("mqr,mrne->mqne", same, contrib)
        hid_slot = torch.stack(
            [self._chrom_layer_one(h_slot[:, q], chroms[:, q]) for q in range(peaks.shape[1])], 1
        )  # [m, q, n, c]
        # the latent is linear in the hidden units: add each touched chromosome's change once
        # (a chromosome touched by several peaks of a move is counted 1 / count per peak)
        w_out = self.enc.out.weight.view(-1, self.enc.n_chrom, hid.shape[-1])  # [L, K, c]
        d_hid = (hid_slot - hid.permute(1, 0, 2)[chroms]) / same.sum(-1)[..., None, None]
        z_new = z + torch.einsum("mqnc,lmqc->mnl", d_hid, w_out[:, chroms])  # [m, n, L]
        s_new = None
        if s is not None:
            s_new = s + torch.einsum("mqn,mqte->mnte", change, self._window_emb(peaks))
        return self._objective_z(z_new, s_new)

    def _chrom_layer_one(self, h_k: torch.Tensor, chroms: torch.Tensor) -> torch.Tensor:
        """Per-chromosome layer of ``h_k [m, n, e]`` where slice ``m`` lies on ``chroms[m]``."""
        return self.enc.chrom_layer(h_k.transpose(0, 1), chroms).transpose(0, 1)

    def interacting_features(self) -> torch.Tensor:
        """The target genes' window peaks (the cis heads make them interact)."""
        return self.win_peaks.cpu() if self.cis else super().interacting_features()

    @torch.no_grad()
    def pair_effects(
        self, selection: torch.Tensor, features: torch.Tensor, signs: torch.Tensor
    ) -> torch.Tensor:
        """Objective change of applying two features' changes together (diagonal: alone).

        With the cis surrogate the change through the target genes' heads is computed
        exactly for every pair (the window sums of all cells move by ``u_a C_a + u_b C_b``
        with the cell state held at the current selection's), and the change through the
        shared latent to first order: the binary interaction ``f(ab) - f(a) - f(b) + f(0)``
        of OR and AND peaks is exactly what a first- or second-order expansion misses when
        a head saturates. Without cis heads this is the first-order estimate.
        """
        if not self.cis or not len(features):
            return super().pair_effects(selection, features, signs)
        features, signs = features.to(self.device), signs.to(self.device).to(torch.float32)
        d_shared, _ = self._first_order_parts(selection)
        lin = d_shared[features] * signs
        e = lin[:, None] + lin[None, :]
        e.diagonal().copy_(lin)
        # only window peaks move the heads; the others act through the shared part alone,
        # so their pairs are additive and the exact head effects are needed among window peaks
        wi = torch.nonzero(self.slot[features] >= 0).squeeze(1)
        if len(wi):
            ew = self._head_pair_effects(selection, features[wi], signs[wi])
            c = torch.zeros(len(features), device=self.device)
            c[wi] = ew.diagonal()
            e += c[:, None] + c[None, :]
            e.diagonal().sub_(c)
            corr = ew - c[wi][:, None] - c[wi][None, :]
            corr.diagonal().zero_()
            e[wi[:, None], wi[None, :]] += corr
        return e.cpu()

    def _head_pair_effects(self, selection, features, signs) -> torch.Tensor:
        """Exact change of the objective through the target genes' heads of applying two
        window peaks' changes together (diagonal: alone), cell state held fixed.
        """
        _, _, s, z = self._state(selection)
        cis = self.module.cis
        a0 = cis.pre_activation(s, z, self.genes)  # [n, T, H]
        rest = cis(s, z, self.genes) - (F.gelu(a0) * cis.w2[self.genes]).sum(-1)  # [n, T]
        u = self._columns(features).T * signs  # [n, F] signed changes
        proj = torch.einsum("fte,the->fth", self._window_emb(features), cis.w1_cis(self.genes))
        w2 = cis.w2[self.genes]  # [T, H]

        def objective(pre: torch.Tensor) -> torch.Tensor:  # pre: [n, ..., T, H]
            y = (F.gelu(pre) * w2).sum(-1)
            y = y + rest.reshape(rest.shape[0], *([1] * (y.ndim - 2)), rest.shape[1])
            return self.sign * (y.clamp(min=0).mean(0) / self.base).mean(-1)

        f0 = objective(a0)
        single = a0[:, None] + u[:, :, None, None] * proj[None]  # [n, F, T, H]
        e = torch.empty(len(features), len(features), device=self.device)
        step = max(1, int(2**24 // max(1, u.shape[0] * len(features) * a0[0].numel())))
        for i in range(0, len(features), step):
            both = single[:, i : i + step, None] + (u[:, None, :, None, None] * proj[None, None])
            e[i : i + step] = objective(both) - f0
        e.diagonal().copy_(objective(single) - f0)
        return e

    @torch.no_grad()
    def per_cell(self, selection: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Predicted expression ``[n, n_genes]`` before and after perturbing ``selection``."""
        before = self._expression(self.hid0, self.s0)
        _, _, s, z = self._state(selection)
        after = self._expression_z(z, s)
        return before.cpu().numpy(), after.cpu().numpy()
