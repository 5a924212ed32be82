"""Incremental evaluation of the LOCO surrogate (:class:`~grids_sc.model.LocoSurrogate`).

As for the cis surrogate, the cells' per-chromosome sums and the target genes' window sums
are held and updated in O(nnz) per change. The state each target gene reads is the latent
without its own chromosome, ``z - W_k hid_k``; the latent layer is linear in the hidden units
of the chromosomes, so the evaluator carries, besides the full latent, each target
chromosome's contribution ``W_k hid_k`` as extra blocks of the latent. An exact move then
updates every block through the touched chromosomes' columns of ``W`` alone, and the search
code of the embedding-sum surrogates (:class:`EmbeddingSumIncremental`) runs unchanged.

A move whose peaks all lie on the chromosome of every target gene (a search of one gene's
window) leaves the genes' states as they are: it changes their window sums alone, so it is
evaluated through the heads from their hidden pre-activations, without the encoder's layers
or the state's decoder (:meth:`LocoIncremental.move_expression`), and the first-order scores
of such peaks need the gradient through the heads alone.
"""

from __future__ import annotations

import torch

from ._cis_incremental import CisIncremental
from ._incremental_sum import EmbeddingSumState


class _LocoLatent:
    """The encoder seen by the search, whose latent is ``[full, W_k hid_k for k in chroms]``
    (every other attribute is the encoder's).
    """

    def __init__(self, enc, chroms: torch.Tensor) -> None:
        self._enc, self.chroms = enc, chroms

    def __getattr__(self, name):
        return getattr(self._enc, name)

    def _w(self, hid_dim: int) -> torch.Tensor:
        return self._enc.out.weight.view(-1, self._enc.n_chrom, hid_dim)  # [L, K, c]

    def latent(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full latent and the target chromosomes' contributions, ``[..., (1 + T) L]``."""
        full = self._enc.latent(hidden)
        if not len(self.chroms):
            return full
        w = self._w(hidden.shape[-1])[:, self.chroms]  # [L, T, c]
        blocks = torch.einsum("...tc,ltc->...tl", hidden[..., self.chroms, :], w)
        return torch.cat([full, blocks.flatten(-2)], -1)

    def latent_change(self, d_hidden: torch.Tensor, chroms: torch.Tensor) -> torch.Tensor:
        """Change of :meth:`latent` from hidden-unit changes of chromosomes ``chroms``."""
        per = torch.einsum("mqnc,lmqc->mqnl", d_hidden, self._w(d_hidden.shape[-1])[:, chroms])
        parts = [per.sum(1)]
        for k in self.chroms.tolist():
            parts.append((per * (chroms == k).to(per.dtype)[:, :, None, None]).sum(1))
        return torch.cat(parts, -1)


class LocoIncremental(CisIncremental):
    """:class:`~grids_sc.model.IncrementalSurrogate` of a
    :class:`~grids_sc.model.LocoSurrogate` (parameters as :class:`EmbeddingSumIncremental`).
    """

    def __init__(self, module, x, genes, perturb_value: float = 0.0, device="cpu") -> None:
        super().__init__(module, x, genes, perturb_value, device)
        self.n_latent = module.config.n_latent
        self._encoder = self.enc
        # the observed latent with each set of target chromosomes' blocks: shared by the
        # evaluators of other genes of the same cells (for_genes copies share this dict)
        self._z0_by_chroms: dict[tuple, torch.Tensor] = {}
        self._set_blocks()

    def _set_blocks(self) -> None:
        """The latent blocks of the target genes' chromosomes and each gene's block (what
        depends on the target genes besides their window sums).
        """
        gc = self.module.gene_chrom.to(self.device)[self.genes]
        chroms = torch.unique(gc[gc >= 0])
        self.enc = _LocoLatent(self._encoder, chroms)
        block = torch.full_like(gc, len(chroms))  # the zero block: nothing left out
        for i, k in enumerate(chroms.tolist()):
            block[gc == k] = i
        self.gene_block = block
        # the chromosome of every target gene (None: genes of several or of none)
        self.own_chrom = int(chroms[0]) if len(chroms) == 1 and bool((gc >= 0).all()) else None
        self._z0_value = None  # the observed latent with these blocks, when first asked
        self._initial, self._y0 = None, None
        self._head_state0 = None  # the heads' state at the observed latent, when first asked

    def for_genes(self, genes) -> LocoIncremental:
        """As :meth:`EmbeddingSumIncremental.for_genes`; the latent blocks follow the new
        genes' chromosomes (each gene's state leaves out its own chromosome).
        """
        other = super().for_genes(genes)
        other._set_blocks()
        return other

    def _z0(self) -> torch.Tensor:
        """As :meth:`EmbeddingSumIncremental._z0`; computed once per set of target
        chromosomes for all the genes of these cells (a gene's blocks are its chromosome's).
        """
        if self._z0_value is None:
            key = tuple(self.enc.chroms.tolist())
            z0 = self._z0_by_chroms.get(key)
            if z0 is None:
                with torch.no_grad():
                    z0 = self._z0_by_chroms[key] = self.enc.latent(self.hid0)
            self._z0_value = z0
        return self._z0_value

    def _head_state(self, z: torch.Tensor):
        """The heads' state ``(zc, slots, r)`` of the target genes from the blocked latent:
        slot ``i`` is the latent without target chromosome ``i``, the last the full latent.
        That of the observed latent is kept (every state of a search of the genes' own
        window has it, :meth:`perturbed`).
        """
        if z is self._z0_value and self._head_state0 is not None:
            return self._head_state0
        n_l = self.n_latent
        full = z[..., :n_l]
        blocks = z[..., n_l:].unflatten(-1, (-1, n_l))
        zc = torch.cat([full.unsqueeze(-2) - blocks, full.unsqueeze(-2)], -2)
        out = zc, self.gene_block, self.module.state_from_slots(zc, self.gene_block, self.genes)
        if z is self._z0_value and not torch.is_grad_enabled():
            self._head_state0 = out
        return out

    def _readout(self, z: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        return self.module.expression_from_state(self._head_state(z), s, self.genes)

    # -- moves on the target genes' own chromosome ------------------------------------------------
    def heads_only(self, peaks: torch.Tensor) -> bool:
        """Whether ``peaks`` all lie on the chromosome of every target gene, so that setting
        them changes the genes' window sums and leaves the states they read as they are.
        """
        return self.own_chrom is not None and bool((self.peak_chrom[peaks] == self.own_chrom).all())

    def exact_pair_effects(self, features: torch.Tensor) -> bool:
        """True when ``features`` all lie on the target genes' own chromosome
        (:meth:`heads_only`): setting them moves the window sums alone, the state is held
        exactly, and the heads' pair effects (:meth:`pair_effects`) are the exact change of
        the objective; their first-order part through the shared latent is zero.
        """
        features = torch.as_tensor(features, dtype=torch.long, device=self.device)
        return bool(len(features)) and self.heads_only(features)

    def perturbed(self, peaks: torch.Tensor) -> EmbeddingSumState:
        """As :meth:`EmbeddingSumIncremental.perturbed`. When every peak lies on the target
        genes' own chromosome (:meth:`heads_only`), only the window sums move: the pooled
        sums, hidden units and latent stay the observed ones, because the only chromosome
        whose sums would change is the one every target gene's state leaves out (no
        prediction, score or later move of these genes reads it).
        """
        peaks = torch.as_tensor(peaks, dtype=torch.long, device=self.device)
        if not len(peaks) or not self.heads_only(peaks):
            return super().perturbed(peaks)
        s = self.s0.clone()
        win = self._window_peaks_of(peaks)
        if len(win):
            s += self._window_change(win, self.columns(win))
        return EmbeddingSumState(self.h0, self.hid0, self._z0(), s)

    def _score_grads(self, objective, state: EmbeddingSumState) -> tuple:
        """As :meth:`EmbeddingSumIncremental._score_grads`. When every scored peak lies on the
        target genes' own chromosome (a search of a gene's window), the objective's gradient
        through the pooled sums is zero on that chromosome, so only the window sums' gradient
        is taken, through the heads with the state held (no pass back through the state's
        decoder and the encoder), and the gradient through the pooled sums is returned as
        ``None`` (zero: the scores through the shared latent are 0 without a product).
        """
        if self.scored is None or not self.heads_only(self.scored):
            return super()._score_grads(objective, state)
        s = state.s.detach().requires_grad_(True)
        with torch.enable_grad():
            y = self.module.expression_from_state(self._head_state(state.z), s, self.genes)
            (grad_s,) = torch.autograd.grad(objective(y), [s])
        return None, grad_s.detach()

    @torch.no_grad()
    def move_expression(self, state, restore, perturb) -> torch.Tensor:
        """As :meth:`EmbeddingSumIncremental.move_expression`. Moves whose peaks all lie on
        the target genes' own chromosome (:meth:`heads_only`) change the heads' window sums
        alone: each head's pre-activation moves by ``u W1_cis C`` of the changed peaks and
        the rest of its output is the state's; cells a move does not change keep ``state``'s
        prediction exactly. Other moves take the general path.
        """
        peaks = torch.cat([restore, perturb], dim=1)  # [m, q]
        if not self.heads_only(peaks):
            return super().move_expression(state, restore, perturb)
        signs = torch.cat([-torch.ones_like(restore), torch.ones_like(perturb)], 1)
        change = signs.to(state.h.dtype)[..., None] * self.columns(peaks)  # [m, q, n]
        a0, rest = self._heads_at(state)
        pre = a0 + torch.einsum("mqn,mqth->mnth", change, self._head_projection(peaks))
        cis = self.module.cis
        y_new = ((cis.act(pre) * cis.w2[self.genes]).sum(-1) + rest).clamp(min=0)
        moved = (change != 0).any(1)  # [m, n]
        return torch.where(moved[..., None], y_new, self.expression(state))
