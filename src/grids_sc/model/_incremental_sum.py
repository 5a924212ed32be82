"""Incremental evaluation of the paper's surrogate (:class:`~grids_sc.model.Surrogate`).

The cells' per-chromosome embedding sums ``h`` are held once; setting peak ``j`` of cell
``c`` to ``p`` adds ``(p - x_cj) D_j`` to chromosome ``k(j)`` of ``h_c``, so

- first-order scores of all peaks are one sparse product: ``d_j = D_j . (p sum_c G_ck - sum_c
  x_cj G_ck)`` with ``G = dObjective/dh`` (the transposed batch structure gives the second
  sum in O(nnz * emb));
- an exact move changes a few chromosomes of ``h``, so only their per-chromosome layers are
  recomputed, and their change reaches the latent through the encoder's linear latent layer
  (:meth:`~grids_sc.model.SparseAtacEncoder.latent_change`).

No dense ``[cells, peaks, emb]`` tensor is formed. :class:`~grids_sc.model.CisIncremental`
extends it with the cis heads' window sums.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ._batch import by_peak_rows, make_batch
from ._incremental import IncrementalSurrogate, Objective

DENSE_STATE_LIMIT = 512  # selections up to this size update the pooled sums column by column
# a move changing more than this share of the cells is evaluated on all of them
SPARSE_MOVE_SHARE = 0.5
SPARSE_MOVE_GROUP = 8  # moves evaluated together on their changed cells
COLUMN_CACHE_ENTRIES = 2**24  # a search keeps its candidates' dense columns up to this size


@dataclass(frozen=True)
class EmbeddingSumState:
    """Pooled sums ``h`` ``[n, K, e]``, per-chromosome hidden units ``hid``, the latent ``z``
    and (cis heads) the target genes' window sums ``s`` ``[n, T, c]``.
    """

    h: torch.Tensor
    hid: torch.Tensor
    z: torch.Tensor
    s: torch.Tensor | None = None


class EmbeddingSumIncremental(IncrementalSurrogate):
    """:class:`~grids_sc.model.IncrementalSurrogate` of a surrogate read out from the latent
    of a :class:`~grids_sc.model.SparseAtacEncoder`.

    Parameters
    ----------
    module
        The surrogate: it has ``atac_encoder`` and ``expression_from_latent(z, genes)``.
    x
        ``[n_cells, n_peaks]`` binary accessibility of the cells.
    genes
        Output indices of the target genes.
    perturb_value
        ``p``: the value perturbed peaks are set to.
    device
        Where to compute.
    """

    def __init__(self, module, x, genes, perturb_value: float = 0.0, device="cpu") -> None:
        self.module = module.eval()
        self.device = torch.device(device)
        self.module.to(self.device)
        enc = module.atac_encoder
        self.enc = enc
        self.n_features = enc.n_peaks
        self.perturb_value = self.p = float(perturb_value)
        self.genes = torch.as_tensor(np.asarray(genes), dtype=torch.long, device=self.device)
        self.x = sp.csc_matrix(x, dtype=np.float32)
        self.n_cells = x.shape[0]
        peak_chrom = enc.peak_chrom.cpu().numpy()
        batch = make_batch(sp.csr_matrix(x, dtype=np.float32), peak_chrom, enc.n_chrom).to(
            self.device
        )
        self.by_peak = batch.by_peak
        self._batch = batch
        self.scored: torch.Tensor | None = None  # peaks first_order scores (None: all)
        self._col_cache: torch.Tensor | None = None  # dense columns of the scored peaks
        self._col_slot: torch.Tensor | None = None
        self._scored_rows: torch.Tensor | None = None
        self.peak_chrom = enc.peak_chrom.to(self.device)
        with torch.no_grad():
            self.delta = enc.delta.detach()
            self.h0 = enc.pool(batch).detach()  # [n, K, e]
            self.hid0 = enc.chrom_layer(self.h0)
            self.s0 = self._window_sums(batch)
        self._z0_value: torch.Tensor | None = None  # the latent at the observed accessibility
        self._initial: EmbeddingSumState | None = None
        self._y0: torch.Tensor | None = None  # the expression of the observed state
        self._grad_state: EmbeddingSumState | None = None
        self._grad_objective: Objective | None = None
        self._grad: tuple | None = None
        self._y_state: EmbeddingSumState | None = None
        self._y: torch.Tensor | None = None

    def score_only(self, peaks: torch.Tensor | np.ndarray | None) -> None:
        """Compute :meth:`first_order` for ``peaks`` only (``None``: every peak); the others
        score NaN. A search over a gene's window needs the scores of its candidates alone, and
        the sparse product then runs over their nonzeros instead of the whole genome's; the
        scores of ``peaks`` are those of the unrestricted product.
        """
        self._grad_state, self._grad_objective, self._grad = None, None, None
        if peaks is None:
            self.scored, self._scored_rows = None, None
            self._col_cache, self._col_slot = None, None
            return
        idx = np.unique(np.asarray(torch.as_tensor(peaks).cpu(), dtype=np.int64))
        self.scored = torch.from_numpy(idx).to(self.device)
        self._scored_rows = None  # built when a product needs them (:meth:`_scored_peak_rows`)
        self._keep_columns(idx)

    def _keep_columns(self, peaks: np.ndarray) -> None:
        """Keep the dense :meth:`columns` of ``peaks`` (the peaks a search reads: its
        candidates) when they take at most :data:`COLUMN_CACHE_ENTRIES` values.
        """
        self._col_cache, self._col_slot = None, None
        if len(peaks) * self.n_cells > COLUMN_CACHE_ENTRIES:
            return
        dense = np.asarray(self.x[:, peaks].todense(), dtype=np.float32).T
        self._col_cache = torch.from_numpy(self.p - dense).to(self.device)  # [len(peaks), n]
        slot = torch.full((self.n_features,), -1, dtype=torch.long)
        slot[torch.from_numpy(peaks)] = torch.arange(len(peaks))
        self._col_slot = slot.to(self.device)

    def _scored_peak_rows(self) -> torch.Tensor:
        """The rows of the scored peaks in the cells' ``by_peak`` (built when first asked: a
        search whose scores need no product through the pooled sums never builds them).
        """
        if self._scored_rows is None:
            self._scored_rows = self._peak_rows(self.scored.cpu().numpy())
        return self._scored_rows

    def _peak_rows(self, peaks: np.ndarray) -> torch.Tensor:
        """The rows ``peaks`` of the cells' ``by_peak`` (``[len(peaks), n_cells * K]``)."""
        chrom = self.enc.peak_chrom.cpu().numpy()[peaks]
        return by_peak_rows(self.x[:, peaks], chrom, self.enc.n_chrom).to(self.device)

    def _shared_scores(self, m: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """``d_j`` through the shared latent ``[P]`` from ``m`` ``[P or len(scored), e]``,
        the sums ``sum_c x_cj G_c,k(j)`` of every peak (``scored`` None) or of the peaks
        scored, and the gradient's total over the cells ``[K, e]``; the peaks not scored are
        NaN. The arithmetic of a scored peak is the same either way, so its score is too.
        """
        if self.scored is None:
            return (self.delta * (self.p * total[self.peak_chrom] - m)).sum(-1)
        peaks = self.scored
        d = torch.full((self.n_features,), float("nan"), dtype=m.dtype, device=m.device)
        d[peaks] = (self.delta[peaks] * (self.p * total[self.peak_chrom[peaks]] - m)).sum(-1)
        return d

    def _zero_scores(self) -> torch.Tensor:
        """:meth:`_shared_scores` when the objective's gradient through the pooled sums is
        zero: 0 for the peaks scored, NaN for the others.
        """
        if self.scored is None:
            return torch.zeros(self.n_features, device=self.device)
        d = torch.full((self.n_features,), float("nan"), device=self.device)
        d[self.scored] = 0.0
        return d

    def for_genes(self, genes) -> EmbeddingSumIncremental:
        """The evaluator of the same cells for other target genes, sharing the cells' encoder
        pass (pooled sums and hidden units); only the genes' own parts (cis heads: their
        window sums) are computed anew. Its answers equal those of a new one.
        """
        other = copy.copy(self)
        other.genes = torch.as_tensor(np.asarray(genes), dtype=torch.long, device=self.device)
        with torch.no_grad():
            other.s0 = other._window_sums(self._batch)
        other._initial, other._y0 = None, None  # the window sums are the new genes'
        other._grad_state, other._grad_objective, other._grad = None, None, None
        other._y_state, other._y = None, None
        return other

    # -- hooks of the cis heads (none here) ---------------------------------------------------
    def _window_sums(self, batch) -> torch.Tensor | None:
        """Window sums of the target genes at the observed state (``None``: no cis heads)."""
        return None

    def _readout(self, z: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        """Predicted expression of the target genes from the latent (and window sums)."""
        return self.module.expression_from_latent(z, self.genes)

    def _window_change(self, peaks: torch.Tensor, change: torch.Tensor) -> torch.Tensor | None:
        """Change of the window sums from ``change`` ``[m, n]`` of ``peaks`` ``[m]``."""
        return None

    def _move_window(self, s, peaks, change):
        """Window sums after each move (``change`` ``[m, q, n]`` of ``peaks`` ``[m, q]``)."""
        return None

    # -- states -------------------------------------------------------------------------------
    def columns(self, peaks: torch.Tensor) -> torch.Tensor:
        """``[..., n_cells]`` state changes ``p - x`` of peaks (any shape)."""
        if self._col_cache is not None and peaks.numel():
            slot = self._col_slot[peaks.reshape(-1).to(self.device)]
            if bool((slot >= 0).all()):
                return self._col_cache[slot].reshape(*peaks.shape, self.n_cells)
        flat = peaks.reshape(-1).cpu().numpy()
        dense = np.asarray(self.x[:, flat].todense(), dtype=np.float32).T
        cols = torch.from_numpy(self.p - dense).to(self.device)
        return cols.reshape(*peaks.shape, self.n_cells)

    def movable(self, peaks: torch.Tensor) -> torch.Tensor:
        """As :meth:`IncrementalSurrogate.movable`; for binary accessibility and ``p`` 0 or 1
        from the number of cells each peak is open in (closing: some; opening: not all).
        """
        if self.p not in (0.0, 1.0):
            return super().movable(peaks)
        counts = np.diff(self.x.indptr)[np.asarray(peaks.cpu(), dtype=np.int64)]
        moves = counts > 0 if self.p == 0.0 else counts < self.n_cells
        return torch.from_numpy(moves).to(self.device)

    def initial(self) -> EmbeddingSumState:
        """The state at the observed accessibility (one object, kept: the search and the
        record ask for it many times).
        """
        if self._initial is None:
            self._initial = EmbeddingSumState(self.h0, self.hid0, self._z0(), self.s0)
        return self._initial

    def _z0(self) -> torch.Tensor:
        """The latent at the observed accessibility (computed when first asked)."""
        if self._z0_value is None:
            with torch.no_grad():
                self._z0_value = self.enc.latent(self.hid0)
        return self._z0_value

    def perturbed(self, peaks: torch.Tensor) -> EmbeddingSumState:
        """The state with ``peaks`` set to ``p`` (no peaks: :meth:`initial`)."""
        sel = peaks
        if not len(sel):
            return self.initial()
        h, s = self.h0.clone(), None if self.s0 is None else self.s0.clone()
        if len(sel) > DENSE_STATE_LIMIT:
            # large selections (masks of attribution methods): the change of the pooled sums
            # is p sum_j D_j - sum_{j open in c} D_j per chromosome, from the nonzeros alone
            h += self._sparse_change(sel)
            if s is not None:
                win = self._window_peaks_of(sel)  # only window peaks move the window sums
                if len(win):
                    s += self._window_change(win, self.columns(win))
        elif len(sel):
            cols = self.columns(sel)  # [m, n]
            upd = cols[:, :, None] * self.delta[sel][:, None, :]  # [m, n, e]
            h.index_add_(1, self.peak_chrom[sel], upd.transpose(0, 1))
            if s is not None:
                s += self._window_change(sel, cols)
        hid = self.enc.chrom_layer(h)
        return EmbeddingSumState(h, hid, self.enc.latent(hid), s)

    def _window_peaks_of(self, peaks: torch.Tensor) -> torch.Tensor:
        """The peaks of ``peaks`` that move the window sums."""
        return peaks[:0]

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

    def expression(self, state: EmbeddingSumState) -> torch.Tensor:
        """Predicted expression ``[n, n_genes]`` in ``state`` (outside autograd, that of the
        observed state and of the last other state are kept: a search and its record ask for
        them many times).
        """
        if torch.is_grad_enabled():
            return self._readout(state.z, state.s)
        if state is self._initial:
            if self._y0 is None:
                self._y0 = self._readout(state.z, state.s)
            return self._y0
        if self._y_state is not state:
            self._y_state, self._y = state, self._readout(state.z, state.s)
        return self._y

    def move_expression(self, state, restore, perturb) -> torch.Tensor:
        """Predicted expression after each move, recomputing only the touched chromosomes of
        the cells the move changes.

        Setting a peak to ``p`` changes only the cells where it is not ``p`` already (closing:
        the cells where it is open), so a move is evaluated on the union of its peaks' changed
        cells and every other cell keeps ``state``'s prediction: the layers run over the
        moved peaks' nonzeros rather than over every cell. Where a move changes most cells
        (opening peaks that are closed in most of them) it is evaluated on all cells.
        """
        h, hid, z, s = state.h, state.hid, state.z, state.s
        peaks = torch.cat([restore, perturb], dim=1)  # [m, q]: every peak the move changes
        signs = torch.cat([-torch.ones_like(restore), torch.ones_like(perturb)], 1).to(h.dtype)
        change = signs[..., None] * self.columns(peaks)  # [m, q, n]
        chroms = self.peak_chrom[peaks]  # [m, q]
        m, q, n = change.shape
        moved = (change != 0).any(1)  # [m, n]: the cells each move changes
        k = moved.sum(1)  # [m]
        y = self.expression(state)  # [n, T]
        out = y.expand(m, -1, -1).clone()
        dense = torch.nonzero(k > SPARSE_MOVE_SHARE * n).squeeze(1)
        if len(dense):  # moves that change most cells: on all cells, in one call
            c = chroms[dense]
            ht, hidt = h.permute(1, 0, 2)[c], hid.permute(1, 0, 2)[c]  # [m', q, n, .]
            out[dense] = self._move(ht, hidt, z, s, peaks[dense], c, change[dense])
        # the others on their changed cells, in groups of moves that change similar numbers
        # of cells (each group is padded to its largest)
        sparse = torch.nonzero((k <= SPARSE_MOVE_SHARE * n) & (k > 0)).squeeze(1)
        sparse = sparse[torch.argsort(k[sparse], stable=True)]
        for g in range(0, len(sparse), SPARSE_MOVE_GROUP):
            idx = sparse[g : g + SPARSE_MOVE_GROUP]
            kg = int(k[idx].max())
            # per move, its changed cells first (in order), then unchanged ones as padding
            cells = torch.argsort((~moved[idx]).to(torch.int8), dim=1, stable=True)[:, :kg]
            valid = torch.gather(moved[idx], 1, cells)  # [m', kg]
            c = chroms[idx]
            at = (cells[:, None, :], c[:, :, None])  # [m', q, kg]: (cell, chromosome)
            y_moved = self._move(
                h[at], hid[at], z[cells], None if s is None else s[cells], peaks[idx], c,
                torch.gather(change[idx], 2, cells[:, None, :].expand(-1, q, -1)),
            )  # fmt: skip
            out[idx[:, None], cells] = torch.where(valid[..., None], y_moved, y[cells])
        return out

    def _move(self, ht, hidt, z, s, peaks, chroms, change) -> torch.Tensor:
        """Predictions ``[m, c, T]`` after moves of ``peaks`` ``[m, q]`` (on ``chroms``) that
        change the cells' states by ``change`` ``[m, q, c]``, from the touched chromosomes'
        sums ``ht`` and hidden units ``hidt`` ``[m, q, c, .]``, the latent ``z`` and window
        sums ``s`` of those cells (``[c, .]`` shared by the moves, or ``[m, c, .]``).
        """
        contrib = change[..., None] * self.delta[peaks][:, :, None, :]  # [m, q, c, e]
        same = (chroms[:, :, None] == chroms[:, None, :]).to(ht.dtype)  # [m, q, q]
        # the slot of each touched chromosome that carries its change: its first peak in the
        # move (the other slots of that chromosome would repeat the same layer)
        first = ~torch.tril(same, -1).bool().any(-1)  # [m, q]
        # each touched chromosome's sums after all of the move's changes on it
        h_slot = ht + torch.einsum("mqr,mrne->mqne", same, contrib)
        d_hid = torch.zeros_like(hidt)  # [m, q, c, hidden]
        for i in range(peaks.shape[1]):
            rows = torch.nonzero(first[:, i]).squeeze(1)
            if not len(rows):
                continue
            if len(rows) == len(first):
                d_hid[:, i] = self._chrom_layer_one(h_slot[:, i], chroms[:, i]) - hidt[:, i]
            else:
                hid_i = self._chrom_layer_one(h_slot[rows, i], chroms[rows, i])
                d_hid[rows, i] = hid_i - hidt[rows, i]
        # each touched chromosome's change of the latent, once
        z_new = z + self.enc.latent_change(d_hid, chroms)  # [m, c, L]
        return self._readout(z_new, self._move_window(s, peaks, change))

    def _chrom_layer_one(self, h_k: torch.Tensor, chroms: torch.Tensor) -> torch.Tensor:
        """Per-chromosome layer of ``h_k [m, n, e]`` where slice ``m`` lies on ``chroms[m]``."""
        return self.enc.chrom_layer(h_k.transpose(0, 1), chroms).transpose(0, 1)

    # -- first order --------------------------------------------------------------------------
    def _objective_grads(self, objective: Objective, h: torch.Tensor, s) -> tuple:
        """``dObjective/dh`` ``[n, K, e]`` and ``dObjective/ds`` (``None`` without cis heads)
        at pooled sums ``h`` and window sums ``s``.
        """
        h = h.detach().requires_grad_(True)
        inputs = [h] if s is None else [h, s.detach().requires_grad_(True)]
        with torch.enable_grad():
            z = self.enc.latent(self.enc.chrom_layer(h))
            obj = objective(self._readout(z, inputs[1] if s is not None else None))
            grads = torch.autograd.grad(obj, inputs)
        return grads[0].detach(), (grads[1].detach() if len(grads) > 1 else None)

    def _score_grads(self, objective: Objective, state: EmbeddingSumState) -> tuple:
        """:meth:`_objective_grads` in ``state``, for the first-order scores of the peaks
        scored (:meth:`score_only`); a subclass may return ``None`` for the gradient through
        the pooled sums where it is zero for every scored peak.
        """
        return self._objective_grads(objective, state.h, state.s)

    def first_order_parts(self, state: EmbeddingSumState, objective: Objective) -> tuple:
        """``d_j`` through the shared latent, and through the window sums (``None`` without
        cis heads); cached for the last state and objective (a pair step asks twice).
        """
        if (
            self._grad is not None
            and self._grad_state is state
            and self._grad_objective is objective
        ):
            return self._grad
        grad, grad_s = self._score_grads(objective, state)
        d = None  # no gradient through the pooled sums
        if grad is not None:
            flat = grad.reshape(-1, grad.shape[-1])
            m = self.by_peak @ flat if self.scored is None else self._scored_peak_rows() @ flat
            d = self._shared_scores(m, grad.sum(0))
        self._scores_from(state, objective, d, grad_s)
        return self._grad

    @classmethod
    def first_order_many(cls, items) -> list[torch.Tensor]:
        """:meth:`first_order` of many ``(evaluator, state, objective)``: the gradients of
        evaluators that share their cells (:meth:`for_genes`) go through one sparse product
        with the cells' accessibility; each result equals :meth:`first_order`'s.
        """
        out: list[torch.Tensor | None] = [None] * len(items)
        shared: dict[int, list[int]] = {}
        for i, (model, state, objective) in enumerate(items):
            if not isinstance(model, EmbeddingSumIncremental):
                out[i] = model.first_order(state, objective)
            elif (
                model._grad is not None
                and model._grad_state is state
                and model._grad_objective is objective
            ):
                out[i] = model.first_order(state, objective)
            else:
                shared.setdefault(id(model.by_peak), []).append(i)
        for idx in shared.values():
            grads = [items[i][0]._score_grads(items[i][2], items[i][1]) for i in idx]
            for i, (grad, grad_s) in zip(idx, grads):  # no gradient through the pooled sums
                if grad is None:
                    out[i] = items[i][0]._scores_from(items[i][1], items[i][2], None, grad_s)
            keep = [j for j, (grad, _) in enumerate(grads) if grad is not None]
            idx, grads = [idx[j] for j in keep], [grads[j] for j in keep]
            if not idx:
                continue
            emb = grads[0][0].shape[-1]
            stacked = torch.cat([g.reshape(-1, emb) for g, _ in grads], 1)
            first = items[idx[0]][0]
            scored = [items[i][0].scored for i in idx]
            union = None
            if any(sc is None for sc in scored):  # one product over every peak
                m_all = first.by_peak @ stacked  # [P, len(idx) * e]
            else:  # over the peaks any of them scores
                union = torch.unique(torch.cat(scored))
                m_all = first._peak_rows(union.cpu().numpy()) @ stacked  # [len(union), .]
            for j, i in enumerate(idx):
                model, state, objective = items[i]
                grad, grad_s = grads[j]
                m = m_all[:, j * emb : (j + 1) * emb]
                if model.scored is not None:  # the rows of its own scored peaks
                    at = model.scored if union is None else torch.searchsorted(union, model.scored)
                    m = m[at]
                out[i] = model._scores_from(
                    state, objective, model._shared_scores(m, grad.sum(0)), grad_s
                )
        return out

    def _scores_from(self, state, objective, d: torch.Tensor | None, grad_s) -> torch.Tensor:
        """The first-order scores from their part through the shared latent ``d`` (``None``:
        zero) and the window sums' gradient, kept as :meth:`first_order_parts` keeps them.
        """
        d = self._zero_scores() if d is None else d
        d_cis = self._window_first_order(grad_s, d)
        self._grad_state, self._grad_objective, self._grad = state, objective, (d, d_cis)
        return d if d_cis is None else d + d_cis

    def _window_first_order(self, grad_s, d: torch.Tensor) -> torch.Tensor | None:
        """``d_j`` through the window sums (``None`` without cis heads)."""
        return None

    def first_order(self, state: EmbeddingSumState, objective: Objective) -> torch.Tensor:
        """First-order change ``d_j`` of perturbing each peak from its observed state."""
        d_shared, d_cis = self.first_order_parts(state, objective)
        return d_shared if d_cis is None else d_shared + d_cis

    def input_gradient(self, objective: Objective) -> torch.Tensor:
        """``g_j = sum_c dObjective/dx_cj`` at the observed states, for every peak."""
        grad, grad_s = self._objective_grads(objective, self.h0, self.s0)
        g = (self.delta * grad.sum(0)[self.peak_chrom]).sum(-1)
        self._window_input_gradient(g, grad_s)
        return g

    def _window_input_gradient(self, g: torch.Tensor, grad_s) -> None:
        """Add the window sums' part of the input gradient to ``g`` (in place)."""

    # -- a window of peaks --------------------------------------------------------------------
    def window(self, features: torch.Tensor):
        """``f(cells, du) -> [b, n_genes]`` over the states of ``features`` (see the
        interface), in O(cells x W x emb).
        """
        idx = features.to(self.device)
        chroms = self.peak_chrom[idx]
        uniq = torch.unique(chroms)
        positions = [torch.nonzero(chroms == k).squeeze(1) for k in uniq]
        window_change = self._window_function(idx)

        def f(cells: torch.Tensor, du: torch.Tensor) -> torch.Tensor:
            h = self.h0[cells]
            if len(uniq):
                upd = torch.stack(
                    [du[:, pos] @ self.delta[idx[pos]] for pos in positions], 1
                )  # [b, k, e]
                h = h.index_add(1, uniq, upd)
            hid = self.enc.chrom_layer(h)
            s = None if window_change is None else window_change(cells, du)
            return self._readout(self.enc.latent(hid), s)

        return f

    def _window_function(self, features: torch.Tensor):
        """``g(cells, du)``: window sums of ``cells`` with ``features`` changed by ``du``
        (``None`` without cis heads).
        """
        return None
