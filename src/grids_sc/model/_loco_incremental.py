"""Incremental evaluation of the LOCO surrogate (:class:`~grids_sc.model.LocoSurrogate`).

As for the cis surrogate, the cells' per-chromosome sums and the target genes' window sums
are held and updated in O(nnz) per change. The state each target gene reads is the latent
without its own chromosome, ``z - W_k hid_k``; the latent layer is linear in the hidden units
of the chromosomes, so the evaluator carries, besides the full latent, each target
chromosome's contribution ``W_k hid_k`` as extra blocks of the latent. An exact move then
updates every block through the touched chromosomes' columns of ``W`` alone, and the search
code of the embedding-sum surrogates (:class:`EmbeddingSumIncremental`) runs unchanged.
"""

from __future__ import annotations

import torch

from ._cis_incremental import CisIncremental


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
        gc = module.gene_chrom.to(self.device)[self.genes]
        chroms = torch.unique(gc[gc >= 0])
        self.enc = _LocoLatent(self.enc, chroms)
        block = torch.full_like(gc, len(chroms))  # the zero block: nothing left out
        for i, k in enumerate(chroms.tolist()):
            block[gc == k] = i
        self.gene_block = block
        self.n_latent = module.config.n_latent

    def _head_state(self, z: torch.Tensor):
        """The heads' state ``(zc, slots, r)`` of the target genes from the blocked latent:
        slot ``i`` is the latent without target chromosome ``i``, the last the full latent.
        """
        n_l = self.n_latent
        full = z[..., :n_l]
        blocks = z[..., n_l:].unflatten(-1, (-1, n_l))
        zc = torch.cat([full.unsqueeze(-2) - blocks, full.unsqueeze(-2)], -2)
        return zc, self.gene_block, self.module.state_from_slots(zc, self.gene_block, self.genes)

    def _readout(self, z: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        return self.module.expression_from_state(self._head_state(z), s, self.genes)
