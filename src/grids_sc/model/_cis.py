"""The cis-regulatory surrogate: per-gene heads over each gene's own window of peaks.

The paper's surrogate reads every gene from one shared latent, which makes it close to
additive in the peaks: it cannot say that a gene stays up while either of two redundant
enhancers is open (OR logic) or needs two peaks open together (AND logic). The cis surrogate
keeps the shared embedding-sum encoder as a description of the cell's state and adds, for
every gene ``g``, a small model of its own window ``W_g`` of peaks::

    s_g(x)  = offset_g + sum_{j in W_g} x_j C_{g,j}           (per-gene embedding sum)
    q_g(x)  = A_g z(x) + a_g                                     (cell state, projected)
    F_g(x)  = w2_g . gelu(W1_g [s_g, q_g] + b1_g) + v_g . z(x) + b2_g,   clamped at 0

with ``z`` the ATAC latent of the shared encoder. ``s_g`` is again a sum of embeddings, so the
search stays O(nnz): perturbing peak ``j`` adds ``(p - x_j) C_{g,j}`` to ``s_g``. The head is a
two-layer network, so it can express OR and AND; being small, it can be evaluated exactly
for every pair of window peaks, which scores pair moves in the search.

Every trainable tensor of a gene's head is indexed by that gene (the peak embeddings through
``pair_gene``), so the heads of all genes train as independent models in one batch, each with
its own early stopping.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._batch import AtacBatch, expand_ranges
from ._cis_incremental import CisIncremental
from ._surrogate import Surrogate, SurrogateConfig

#: Monotone heads: the slope of the hidden activation ``tanh(MONOTONE_SLOPE * a)``.
MONOTONE_SLOPE = 3.0


@dataclass
class CisConfig:
    """Architecture of the per-gene cis heads (plain values, stored with the weights).

    Attributes
    ----------
    cis_dim
        Size of a peak's per-gene embedding ``C_{g,j}``.
    state_dim
        Size of each gene's projection of the cell-state latent.
    cis_hidden
        Width of each gene's hidden layer.
    monotone
        ``1``: every head is monotone in each of its window peaks, with a direction (opening
        raises or lowers the gene) learnt per peak: a peak's embedding ``C_{g,j}`` keeps one
        sign in all its entries, the part of ``W1`` that reads the window sum and the output
        weights ``w2`` are non-negative, and the hidden activation is ``tanh(3 a)`` (odd and
        increasing, so both OR-like and AND-like units remain). Adding a peak to a set of
        changed peaks can then never undo the set's effect on the gene, however far the set
        is from the cells the head was fit on. ``0`` (files fit before this option): the
        unconstrained head with ``gelu``.
    """

    cis_dim: int = 8
    state_dim: int = 8
    cis_hidden: int = 16
    monotone: int = 0

    def to_dict(self) -> dict:
        """The configuration as a plain dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CisConfig:
        """Rebuild from :meth:`to_dict` output (extra keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names})


class CisHeads(nn.Module):
    """Per-gene embedding sums over window peaks and per-gene two-layer heads.

    Parameters
    ----------
    n_genes, n_peaks
        Output genes and input peaks.
    pair_gene, pair_peak
        The (gene, peak) pairs: peak ``pair_peak[k]`` lies in the window of gene
        ``pair_gene[k]``. Stored sorted by gene, then peak.
    n_latent
        Size of the shared cell-state latent.
    config
        Head sizes.
    """

    def __init__(
        self,
        n_genes: int,
        n_peaks: int,
        pair_gene: torch.Tensor,
        pair_peak: torch.Tensor,
        n_latent: int,
        config: CisConfig | None = None,
    ) -> None:
        super().__init__()
        c = config or CisConfig()
        self.config = c
        self.n_genes, self.n_peaks, self.n_latent = int(n_genes), int(n_peaks), int(n_latent)
        pg = torch.as_tensor(pair_gene, dtype=torch.long).reshape(-1)
        pp = torch.as_tensor(pair_peak, dtype=torch.long).reshape(-1)
        if pg.numel() != pp.numel():
            raise ValueError("pair_gene and pair_peak must have the same length")
        if pg.numel() and (
            pg.min() < 0 or pg.max() >= n_genes or pp.min() < 0 or pp.max() >= n_peaks
        ):
            raise ValueError("cis pairs refer to genes or peaks out of range")
        order = torch.from_numpy(np.lexsort((pp.numpy(), pg.numpy())))
        pg, pp = pg[order], pp[order]
        if pg.numel() > 1 and bool(((pg[1:] == pg[:-1]) & (pp[1:] == pp[:-1])).any()):
            raise ValueError("cis pairs contain duplicates")
        self.register_buffer("pair_gene", pg)
        self.register_buffer("pair_peak", pp)
        n_in = c.cis_dim + c.state_dim
        g = self.n_genes
        self.offset = nn.Parameter(torch.zeros(g, c.cis_dim))
        self.emb = nn.Parameter(torch.randn(pg.numel(), c.cis_dim) * 0.5)
        self.state_w = nn.Parameter(torch.randn(g, c.state_dim, n_latent) / math.sqrt(n_latent))
        self.state_b = nn.Parameter(torch.zeros(g, c.state_dim))
        self.w1 = nn.Parameter(torch.randn(g, c.cis_hidden, n_in) / math.sqrt(n_in))
        self.b1 = nn.Parameter(torch.zeros(g, c.cis_hidden))
        self.w2 = nn.Parameter(torch.randn(g, c.cis_hidden) / math.sqrt(c.cis_hidden))
        self.lin = nn.Parameter(torch.zeros(g, n_latent))
        self.b2 = nn.Parameter(torch.zeros(g))
        if c.monotone:
            with torch.no_grad():  # a monotone start: the same magnitudes, the right signs
                self.w1[..., : c.cis_dim].abs_()
                self.w2.abs_()
            self.project_()

    @property
    def monotone(self) -> bool:
        """Whether the heads are monotone in each window peak (:class:`CisConfig`)."""
        return bool(self.config.monotone)

    def act(self, a: torch.Tensor) -> torch.Tensor:
        """The hidden layer's activation: ``tanh(3 a)`` for monotone heads, else ``gelu``.

        A monotone unit can only express OR and AND logic by saturating (its output weight
        cannot be negative), so its slope at 0 is steeper than ``gelu``'s: with ``tanh(a)``
        the heads stayed close to additive within their training epochs (the method page
        and ``benchmarks/README.md`` have the figures).
        """
        return torch.tanh(MONOTONE_SLOPE * a) if self.config.monotone else F.gelu(a)

    @torch.no_grad()
    def project_(self, w2_floor: float = 0.0) -> None:
        """Monotone heads: put the parameters back on the constraint after a step (nothing
        otherwise). ``W1``'s window part is clipped at 0 and ``w2`` at ``w2_floor``; each
        peak embedding is projected onto the nearer of the non-negative and non-positive
        orthants (its positive or its negative part, whichever is longer), so each peak
        moves every hidden unit of its gene's head in one direction.

        Training keeps ``w2`` at a small positive floor: a hidden unit whose output weight
        sat at exactly 0 would pass no gradient to its input weights and could never come
        back (a silent start, ``w2 = 0``, would stay silent), while Adam moves weights of
        any gradient scale, so a floored unit keeps learning.
        """
        if not self.config.monotone:
            return
        self.w1[..., : self.config.cis_dim].clamp_(min=0)
        self.w2.clamp_(min=w2_floor)
        e = self.emb
        pos, neg = e.clamp(min=0), e.clamp(max=0)
        keep_pos = (pos.square().sum(1) >= neg.square().sum(1)).unsqueeze(1)
        e.copy_(torch.where(keep_pos, pos, neg))

    # -- pairs --------------------------------------------------------------------------------
    def pairs_of(self, genes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair indices of ``genes`` and each pair's position in ``genes``."""
        if genes is None:
            return torch.arange(
                self.pair_gene.numel(), device=self.pair_gene.device
            ), self.pair_gene
        genes = genes.to(self.pair_gene.device)
        if len(torch.unique(genes)) == len(genes):
            # each gene's pairs are a range of the gene-sorted pairs (no pass over all pairs)
            ptr = self._gene_pointers()
            local, pairs = expand_ranges(ptr[genes], ptr[genes + 1] - ptr[genes])
            pairs, order = torch.sort(pairs)
            return pairs, local[order]
        pos = torch.full((self.n_genes,), -1, dtype=torch.long, device=genes.device)
        pos[genes] = torch.arange(len(genes), device=genes.device)
        local = pos[self.pair_gene]
        keep = torch.nonzero(local >= 0).flatten()
        return keep, local[keep]

    def _gene_pointers(self) -> torch.Tensor:
        """``ptr [n_genes + 1]``: gene ``g``'s pairs are ``ptr[g]:ptr[g + 1]`` (the pairs are
        stored sorted by gene); kept until the pair buffer changes.
        """
        key = (self.pair_gene.data_ptr(), self.pair_gene._version, self.pair_gene.numel())
        cached = getattr(self, "_ptr_cache", None)
        if cached is None or cached[0] != key:
            genes = torch.arange(self.n_genes + 1, device=self.pair_gene.device)
            cached = self._ptr_cache = (key, torch.searchsorted(self.pair_gene, genes))
        return cached[1]

    def window_embeddings(
        self, genes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(peaks, local_gene, emb)`` of the window pairs of ``genes``."""
        pairs, local = self.pairs_of(genes)
        return self.pair_peak[pairs], local, self.emb[pairs]

    # -- the function -------------------------------------------------------------------------
    def pool(self, batch: AtacBatch, genes: torch.Tensor | None = None) -> torch.Tensor:
        """Per-gene window sums ``s [n_cells, n_genes_out, cis_dim]`` of a sparse batch."""
        pairs, local = self.pairs_of(genes)
        n_out = self.n_genes if genes is None else len(genes)
        dev = self.emb.device
        offset = self.offset if genes is None else self.offset[genes.to(dev)]
        s = offset.unsqueeze(0).expand(batch.n_cells, n_out, -1)
        if not pairs.numel() or not batch.indices.numel():
            return s.clone()
        # peak -> pairs map (CSR over peaks) for this gene subset
        pk = self.pair_peak[pairs]
        order = torch.argsort(pk, stable=True)
        pk_sorted = pk[order]
        ptr = torch.searchsorted(pk_sorted, torch.arange(self.n_peaks + 1, device=dev))
        start = ptr[batch.indices]
        count = ptr[batch.indices + 1] - start
        hit = torch.nonzero(count).flatten()
        if not hit.numel():
            return s.clone()
        owner, at = expand_ranges(start[hit], count[hit])
        entry = hit[owner]
        pair_sel = order[at]  # position within `pairs`
        rows = batch.rows[entry]
        vals = torch.index_select(self.emb, 0, pairs[pair_sel]) * batch.weights[entry].unsqueeze(-1)
        flat = torch.zeros(batch.n_cells * n_out, s.shape[-1], dtype=vals.dtype, device=dev)
        flat = flat.index_add(0, rows * n_out + local[pair_sel], vals)
        return s + flat.view(batch.n_cells, n_out, -1)

    def pre_activation(
        self, s: torch.Tensor, z: torch.Tensor, genes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden pre-activations ``[..., n_out, cis_hidden]`` of the heads."""
        sl = slice(None) if genes is None else genes
        q = torch.einsum("...l,tsl->...ts", z, self.state_w[sl]) + self.state_b[sl]
        u = torch.cat([s, q], dim=-1)
        return torch.einsum("...tu,thu->...th", u, self.w1[sl]) + self.b1[sl]

    def forward(
        self, s: torch.Tensor, z: torch.Tensor, genes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Expression (before clamping) ``[..., n_out]`` from window sums and cell state."""
        sl = slice(None) if genes is None else genes
        a = self.pre_activation(s, z, genes)
        lin = torch.einsum("...l,tl->...t", z, self.lin[sl])
        return (self.act(a) * self.w2[sl]).sum(-1) + lin + self.b2[sl]

    def w1_cis(self, genes: torch.Tensor) -> torch.Tensor:
        """The part of ``W1`` that reads the window sum, ``[n_out, cis_hidden, cis_dim]``."""
        return self.w1[genes][..., : self.config.cis_dim]


class CisSurrogate(nn.Module):
    """The shared surrogate (cell state) plus per-gene cis heads (the prediction).

    Parameters
    ----------
    config
        Architecture of the shared :class:`~grids_sc.model.Surrogate`.
    cis_config
        Architecture of the heads.
    peak_chrom
        Chromosome code of every peak.
    pair_gene, pair_peak
        The (gene, peak) window pairs (see :class:`CisHeads`).
    """

    def __init__(
        self,
        config: SurrogateConfig,
        cis_config: CisConfig,
        peak_chrom: torch.Tensor,
        pair_gene: torch.Tensor,
        pair_peak: torch.Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.cis_config = cis_config
        self.base = Surrogate(config, peak_chrom)
        self.cis = CisHeads(
            config.n_genes, config.n_peaks, pair_gene, pair_peak, config.n_latent, cis_config
        )

    @property
    def atac_encoder(self):
        """The shared embedding-sum ATAC encoder."""
        return self.base.atac_encoder

    def expression_from_state(
        self,
        z: torch.Tensor,
        s: torch.Tensor,
        genes: torch.Tensor | None = None,
        clamp: bool = True,
    ) -> torch.Tensor:
        """Predicted expression from the ATAC latent ``z`` and window sums ``s``."""
        y = self.cis(s, z, genes)
        return y.clamp(min=0) if clamp else y

    def incremental(
        self, x, genes, perturb_value: float = 0.0, device: torch.device | str = "cpu"
    ) -> CisIncremental:
        """The :class:`~grids_sc.model.IncrementalSurrogate` of cells ``x`` (binary CSR
        ``[n_cells, n_peaks]``) for output genes ``genes``, perturbed peaks set to
        ``perturb_value``: what the subset search evaluates (eval mode, on ``device``).
        """
        return CisIncremental(self, x, genes, perturb_value, device)

    def forward(
        self, batch: AtacBatch, genes: torch.Tensor | None = None, clamp: bool = True
    ) -> torch.Tensor:
        """``F(x)``: predicted expression ``[n_cells, n_genes]`` of a sparse ATAC batch."""
        z = self.atac_encoder(batch)
        return self.expression_from_state(z, self.cis.pool(batch, genes), genes, clamp)
