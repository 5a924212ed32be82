"""Incremental evaluation of the cis surrogate (:class:`~grids_sc.model.CisSurrogate`).

Besides the shared encoder's pooled sums (:class:`EmbeddingSumIncremental`), the target
genes' window sums ``s_g`` are a second embedding sum over the few peaks of their windows,
updated the same way. Window peaks interact through the small per-gene heads: pair effects
among them are the exact change through the heads of two peaks together (the Boolean
second-order term ``f(ab) - f(a) - f(b) + f(0)``) for all pairs of a window at once, the
change through the shared latent to first order.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch

from ._batch import csr_tensor, expand_ranges
from ._incremental import Objective
from ._incremental_sum import EmbeddingSumIncremental, EmbeddingSumState

PAIR_CHUNK = 65_536  # (cell, pair) entries whose heads run together in pair effects


class CisIncremental(EmbeddingSumIncremental):
    """:class:`~grids_sc.model.IncrementalSurrogate` of a
    :class:`~grids_sc.model.CisSurrogate` (parameters as :class:`EmbeddingSumIncremental`).
    """

    # -- window sums ----------------------------------------------------------------------------
    def _window_sums(self, batch) -> torch.Tensor:
        """The target genes' window sums ``[n, T, c]``: each gene's offset plus a sparse
        product of the cells' window columns with the window embeddings, so the cost grows
        with the windows' nonzeros, not with the whole genome's (``batch`` is not read).
        """
        self._window_table()
        offset = self.module.cis.offset[self.genes].detach()  # [T, c]
        s0 = offset.expand(self.n_cells, -1, -1).clone()
        if len(self.win_peaks):
            cols = sp.csr_matrix(self.x[:, self.win_peaks.cpu().numpy()])  # [n, U]
            xw = csr_tensor(cols.indptr, cols.indices, cols.data, cols.shape).to(self.device)
            s0 += (xw @ self.win_emb.flatten(1)).view_as(s0)
        return s0

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

    def _window_peaks_of(self, peaks: torch.Tensor) -> torch.Tensor:
        return peaks[self.slot[peaks] >= 0]

    def _window_change(self, peaks: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        return torch.einsum("mn,mte->nte", change, self._window_emb(peaks))

    def _move_window(self, s, peaks, change):
        return s + torch.einsum("mqn,mqte->mnte", change, self._window_emb(peaks))

    def _readout(self, z: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        return self.module.expression_from_state(z, s, self.genes)

    def _head_state(self, z: torch.Tensor):
        """The cell state the heads read, from the latent of a state (here: the latent)."""
        return z

    def _window_function(self, features: torch.Tensor):
        win_emb = self._window_emb(features)  # [W, T, c]

        def g(cells: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
            return self.s0[cells] + torch.einsum("bw,wte->bte", du, win_emb)

        return g

    # -- first order ----------------------------------------------------------------------------
    def _window_first_order(self, grad_s, d: torch.Tensor) -> torch.Tensor:
        d_cis = torch.zeros_like(d)
        if len(self.win_peaks):
            v = torch.einsum("cte,ute->cu", grad_s, self.win_emb)  # [n, U]
            d_cis[self.win_peaks] = (self.columns(self.win_peaks).T * v).sum(0)
        return d_cis

    def _window_input_gradient(self, g: torch.Tensor, grad_s) -> None:
        if len(self.win_peaks):
            g[self.win_peaks] += torch.einsum("cte,ute->u", grad_s, self.win_emb)

    # -- effects through the heads alone ----------------------------------------------------------
    @torch.no_grad()
    def head_effects(self, peaks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-cell change of the target genes' predictions from setting each of ``peaks`` to
        ``p``, through their cis heads only (the cell state, the latent, held at the observed
        one): with the other peaks as observed (``alone``), and in isolation, from the state
        where every window peak is at ``p`` and only this one as observed (``isolated``: where
        a redundant OR peak shows its effect).

        Returns ``alone`` and ``isolated`` ``[m, n_cells, n_targets]`` for the ``m`` peaks
        that are in a target gene's window, and the boolean mask of those among ``peaks``.
        """
        peaks = torch.as_tensor(peaks, dtype=torch.long, device=self.device)
        emb = self._window_emb(peaks)  # [m, T, c]
        live = emb.abs().sum((-1, -2)) > 0
        peaks, emb = peaks[live], emb[live]
        state = self.initial()
        z, s0 = state.z, state.s
        y0 = self._readout(z, s0)  # [n, T]
        s_off = self.module.cis.offset[self.genes.to(self.module.cis.offset.device)]
        s_off = s_off.to(self.device)[None].expand_as(s0)  # every window peak at p
        y_off = self._readout(z, s_off)
        cols = self.columns(peaks)[:, :, None, None] * emb[:, None]  # [m, n, T, c]
        zm = z.expand(len(peaks), -1, -1)
        alone = self._readout(zm, s0[None] + cols) - y0[None]
        isolated = y_off[None] - self._readout(zm, s_off[None] - cols)
        return alone, isolated, live.cpu()

    # -- pairs ----------------------------------------------------------------------------------
    def interacting_features(self) -> torch.Tensor:
        """The target genes' window peaks (the cis heads make them interact)."""
        return self.win_peaks.cpu()

    @torch.no_grad()
    def pair_effects(
        self,
        state: EmbeddingSumState,
        features: torch.Tensor,
        signs: torch.Tensor,
        objective: Objective,
    ) -> torch.Tensor:
        """Objective change of applying two features' changes together (diagonal: alone).

        The change through the target genes' heads is computed exactly for every pair of
        window peaks (the window sums of all cells move by ``u_a C_a + u_b C_b`` with the
        cell state held at ``state``'s), and the change through the shared latent to first
        order: the binary interaction ``f(ab) - f(a) - f(b) + f(0)`` of OR and AND peaks is
        exactly what a first- or second-order expansion misses when a head saturates.
        """
        if not len(features):
            return super().pair_effects(state, features, signs, objective)
        features, signs = features.to(self.device), signs.to(self.device).to(torch.float32)
        d_shared, _ = self.first_order_parts(state, objective)
        lin = d_shared[features] * signs
        e = lin[:, None] + lin[None, :]
        e.diagonal().copy_(lin)
        # only window peaks move the heads; the others act through the shared part alone,
        # so their pairs are additive and the exact head effects are needed among window peaks
        wi = torch.nonzero(self.slot[features] >= 0).squeeze(1)
        if len(wi):
            ew = self._head_pair_effects(state, features[wi], signs[wi], objective)
            c = torch.zeros(len(features), device=self.device)
            c[wi] = ew.diagonal()
            e += c[:, None] + c[None, :]
            e.diagonal().sub_(c)
            corr = ew - c[wi][:, None] - c[wi][None, :]
            corr.diagonal().zero_()
            e[wi[:, None], wi[None, :]] += corr
        return e.cpu()

    def _heads_at(self, state: EmbeddingSumState) -> tuple[torch.Tensor, torch.Tensor]:
        """The target genes' heads in ``state`` split at their hidden pre-activations: those
        ``[n, T, H]`` and the rest of the heads' output ``[n, T]`` (all but the hidden
        layer's contribution), kept for the last state (moves and pair effects from one
        state come in several calls).
        """
        cached = getattr(self, "_heads_cache", None)
        if cached is None or cached[0] is not state or cached[1] is not self.genes:
            cis = self.module.cis
            s, z = state.s, self._head_state(state.z)
            a0 = cis.pre_activation(s, z, self.genes)
            rest = cis(s, z, self.genes) - (cis.act(a0) * cis.w2[self.genes]).sum(-1)
            cached = self._heads_cache = (state, self.genes, a0, rest)
        return cached[2], cached[3]

    def _head_projection(self, peaks: torch.Tensor) -> torch.Tensor:
        """``[..., T, H]``: how a unit change of each of ``peaks`` (any shape) moves the
        target genes' hidden pre-activations, ``W1_cis C`` (zero off-window).
        """
        w1 = self.module.cis.w1_cis(self.genes)  # [T, H, c]
        return torch.einsum("...te,the->...th", self._window_emb(peaks), w1)

    def _head_pair_effects(self, state, features, signs, objective: Objective) -> torch.Tensor:
        """Exact change of the objective through the target genes' heads of applying two
        window peaks' changes together (diagonal: alone), cell state held fixed.

        The heads are evaluated from their hidden pre-activations: a window peak's change
        moves them by ``u W1_cis C`` and leaves the rest of the head's output unchanged. A
        cell's prediction moves only where a peak of the pair changes it, so the heads run
        on those cells alone (a pair changed in one cell by one peak only: that peak's
        effect alone there; nowhere: the observed prediction); the predictions of every cell
        are then reduced by the objective as if all had been evaluated, with the same result.
        """
        a0, rest = self._heads_at(state)
        u = self.columns(features).T * signs  # [n, F] signed changes
        proj = self._head_projection(features)  # [F, T, H]
        cis = self.module.cis
        w2 = cis.w2[self.genes]  # [T, H]

        def heads(cells: torch.Tensor, *feats: torch.Tensor) -> torch.Tensor:
            """Predictions ``[m, T]`` of ``cells`` with the changes of ``feats`` (each
            ``[m]``, one feature per cell) applied.
            """
            pre = a0[cells]
            for f in feats:
                pre = pre + u[cells, f, None, None] * proj[f]
            return ((cis.act(pre) * w2).sum(-1) + rest[cells]).clamp(min=0)

        moved = u != 0  # [n, F]: the cells each feature changes
        weights = getattr(objective, "gene_weights", None)
        if weights is not None:
            return self._linear_pair_effects(moved, heads, weights)
        n, n_feat = u.shape
        y0 = heads(torch.arange(n, device=self.device))  # [n, T]
        f0 = objective(y0, 0)
        alone = y0[:, None].expand(-1, n_feat, -1).clone()  # [n, F, T]
        c, a = torch.nonzero(moved, as_tuple=True)
        alone[c, a] = heads(c, a)
        e = torch.empty(n_feat, n_feat, device=self.device)
        step = max(1, int(2**24 // max(1, n * n_feat * y0.shape[1])))
        for i in range(0, n_feat, step):
            rows = slice(i, i + step)
            # each pair's predictions: the observed, or one feature's alone where only it
            # changes the cell, or both evaluated where both do
            y = y0[:, None, None].expand(-1, min(step, n_feat - i), n_feat, -1).clone()
            m_a, m_b = moved[:, rows, None], moved[:, None, :]
            y = torch.where((m_a & ~m_b)[..., None], alone[:, rows, None], y)
            y = torch.where((~m_a & m_b)[..., None], alone[:, None, :], y)
            c, a, b = torch.nonzero(m_a & m_b, as_tuple=True)
            a = a + i
            for j in range(0, len(c), PAIR_CHUNK):
                cj, aj, bj = c[j : j + PAIR_CHUNK], a[j : j + PAIR_CHUNK], b[j : j + PAIR_CHUNK]
                y[cj, aj - i, bj] = heads(cj, aj, bj)
            e[rows] = objective(y, 0) - f0
        e.diagonal().copy_(objective(alone, 0) - f0)
        return e

    def _linear_pair_effects(self, moved, heads, weights) -> torch.Tensor:
        """:meth:`_head_pair_effects` of an objective that is a weighted mean over the cells
        (``gene_weights``): each feature's effect alone is summed over the cells it changes
        (``moved`` ``[n, F]``), and a pair's effect is the two alone plus, over the cells both
        change, what their joint change adds; nothing runs over the cells a pair leaves as
        they are. ``heads(cells, *features)``: the predictions with those changes.
        """
        n, n_feat = moved.shape
        y0 = heads(torch.arange(n, device=self.device))  # [n, T]
        weights = weights.to(y0.dtype)
        c, a = torch.nonzero(moved, as_tuple=True)
        alone = torch.zeros(n, n_feat, device=self.device, dtype=y0.dtype)  # [n, F]
        alone[c, a] = ((heads(c, a) - y0[c]) * weights).sum(-1)
        single = alone.sum(0) / n
        extra = torch.zeros(n_feat, n_feat, device=self.device, dtype=y0.dtype)
        c, a, b = pairs_in_rows(moved, c, a)
        for j in range(0, len(c), PAIR_CHUNK):
            cj, aj, bj = c[j : j + PAIR_CHUNK], a[j : j + PAIR_CHUNK], b[j : j + PAIR_CHUNK]
            joint = ((heads(cj, aj, bj) - y0[cj]) * weights).sum(-1)
            extra.index_put_((aj, bj), joint - alone[cj, aj] - alone[cj, bj], accumulate=True)
        extra = (extra + extra.T) / n
        e = single[:, None] + single[None, :] + extra
        e.diagonal().copy_(single)
        return e


def pairs_in_rows(
    mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every ``(r, a, b)`` with ``a < b`` and ``mask[r, a]`` and ``mask[r, b]`` set, in the
    order of ``torch.nonzero`` over ``[r, a, b]`` (row, then ``a``, then ``b``), from
    ``rows, cols = torch.nonzero(mask, as_tuple=True)``: the cost grows with the pairs, not
    with ``rows x cols x cols`` as a dense pair mask's would (on sparse ATAC a cell changes a
    few of a window's features).
    """
    counts = mask.sum(1)
    end = torch.cumsum(counts, 0)[rows]  # past the last entry of each entry's row
    entry = torch.arange(len(rows), device=mask.device)
    # each entry pairs with the entries after it in its row
    first, second = expand_ranges(entry + 1, end - entry - 1)
    return rows[first], cols[first], cols[second]
