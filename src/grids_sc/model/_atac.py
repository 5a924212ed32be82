"""ATAC side of the surrogate: the sparse embedding-sum encoder and the peak decoder.

Every peak ``j`` has one embedding per state, ``E0_j`` (closed) and ``E1_j`` (open). A cell's
embeddings are summed per chromosome ``k``::

    h_k(x) = sum_{j in k} E_{x_j, j} = sum_{j in k} E0_j + sum_{j in k} x_j (E1_j - E0_j)
           = C_k + (X D)_k

so the encoder stores the per-chromosome constant ``C`` (``offset``) and the per-peak
difference ``D = E1 - E0`` (``delta``): the same function class as two embeddings per peak,
computed from the open peaks only (O(nnz)) with :func:`torch.nn.functional.embedding_bag`.
The search differentiates the model with respect to these pooled sums.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._batch import AtacBatch


class SparseAtacEncoder(nn.Module):
    """Embedding-sum ATAC encoder: per-chromosome sums, then per-chromosome layers, then a latent.

    Parameters
    ----------
    peak_chrom
        Chromosome code of every peak (``int64``, values ``0 .. n_chrom - 1``).
    n_chrom
        Number of chromosomes.
    emb_dim
        Size of a peak embedding.
    chrom_hidden
        Width of the per-chromosome layer.
    n_latent
        Size of the ATAC latent.
    dropout
        Dropout before the latent layer.
    """

    def __init__(
        self,
        peak_chrom: torch.Tensor,
        n_chrom: int,
        emb_dim: int = 32,
        chrom_hidden: int = 32,
        n_latent: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        n_peaks = int(peak_chrom.numel())
        self.n_peaks, self.n_chrom, self.emb_dim = n_peaks, n_chrom, emb_dim
        self.register_buffer("peak_chrom", peak_chrom.to(torch.long).clone())
        self.offset = nn.Parameter(torch.zeros(n_chrom, emb_dim))
        self.delta = nn.Parameter(torch.randn(n_peaks, emb_dim) * 0.05)
        self.norm_weight = nn.Parameter(torch.ones(n_chrom, emb_dim))
        self.norm_bias = nn.Parameter(torch.zeros(n_chrom, emb_dim))
        bound = 1.0 / math.sqrt(emb_dim)
        self.chrom_weight = nn.Parameter(torch.empty(n_chrom, emb_dim, chrom_hidden).uniform_(-bound, bound))
        self.chrom_bias = nn.Parameter(torch.zeros(n_chrom, chrom_hidden))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(n_chrom * chrom_hidden, n_latent)

    def pool(self, batch: AtacBatch) -> torch.Tensor:
        """Per-chromosome embedding sums ``h`` of shape ``[n_cells, n_chrom, emb_dim]``."""
        bags = F.embedding_bag(
            batch.indices,
            self.delta,
            batch.offsets,
            mode="sum",
            per_sample_weights=batch.weights,
        )
        return bags.view(batch.n_cells, self.n_chrom, self.emb_dim) + self.offset

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Map pooled sums ``[..., n_chrom, emb_dim]`` to the ATAC latent ``[..., n_latent]``."""
        h = F.layer_norm(h, (self.emb_dim,)) * self.norm_weight + self.norm_bias
        h = F.gelu(h)
        h = torch.einsum("...ke,keh->...kh", h, self.chrom_weight) + self.chrom_bias
        h = self.dropout(F.gelu(h))
        return self.out(h.flatten(-2))

    def forward(self, batch: AtacBatch) -> torch.Tensor:
        """ATAC latent of a batch."""
        return self.head(self.pool(batch))


class AtacDecoder(nn.Module):
    """Decode the ATAC latent to per-peak logits; logits can be computed for chosen entries only."""

    def __init__(self, n_latent: int, n_peaks: int, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(n_latent, hidden), nn.GELU())
        self.weight = nn.Parameter(torch.randn(n_peaks, hidden) / math.sqrt(hidden))
        self.bias = nn.Parameter(torch.full((n_peaks,), -3.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Dense logits ``[n_cells, n_peaks]``."""
        return F.linear(self.hidden(z), self.weight, self.bias)

    def entry_logits(self, z: torch.Tensor, rows: torch.Tensor, peaks: torch.Tensor) -> torch.Tensor:
        """Logits of the entries ``(rows[i], peaks[i])`` only."""
        hid = self.hidden(z)
        return (hid[rows] * self.weight[peaks]).sum(-1) + self.bias[peaks]


def focal_bce(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Elementwise focal binary cross-entropy (Lin et al. 2017) on logits."""
    logpt = target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)
    return -((1 - torch.exp(logpt)) ** gamma) * logpt


def atac_reconstruction_loss(
    decoder: AtacDecoder,
    z: torch.Tensor,
    batch: AtacBatch,
    gamma: float = 2.0,
    neg_ratio: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean focal BCE over all ``[cells, peaks]`` entries of a batch, estimated sparsely.

    All open entries are scored; closed entries are estimated from a uniform sample of
    ``neg_ratio`` entries per open one, re-weighted to stay unbiased. Small batches are scored
    densely.
    """
    n_cells, n_peaks = z.shape[0], decoder.bias.numel()
    total = n_cells * n_peaks
    nnz = batch.indices.numel()
    n_sample = neg_ratio * max(nnz, n_cells)
    if total <= 2 * (nnz + n_sample):
        logits = decoder(z)
        return focal_bce(logits, batch.dense(n_peaks).clamp(0, 1), gamma).mean()
    pos = focal_bce(decoder.entry_logits(z, batch.rows, batch.indices), batch.weights.clamp(0, 1), gamma)
    dev = z.device
    flat = torch.randint(0, total, (n_sample,), generator=generator).to(dev)
    rows, peaks = flat // n_peaks, flat % n_peaks
    pos_keys = torch.sort(batch.rows * n_peaks + batch.indices).values
    where = torch.searchsorted(pos_keys, flat).clamp(max=max(nnz - 1, 0))
    is_pos = pos_keys[where] == flat if nnz else torch.zeros_like(flat, dtype=torch.bool)
    keep = ~is_pos
    n_zero_sampled = int(keep.sum())
    neg_sum = z.new_zeros(())
    if n_zero_sampled:
        zeros = torch.zeros(n_zero_sampled, device=dev)
        neg = focal_bce(decoder.entry_logits(z, rows[keep], peaks[keep]), zeros, gamma)
        neg_sum = neg.sum() * ((total - nnz) / n_zero_sampled)
    return (pos.sum() + neg_sum) / total
