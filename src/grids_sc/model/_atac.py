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

CHROM_NORMS = ("center", "layer")  # how a chromosome's pooled sum is normalised


def check_chrom_norm(norm: str) -> str:
    """``norm`` if it is one of :data:`CHROM_NORMS`, else a ``ValueError`` naming them."""
    if norm not in CHROM_NORMS:
        raise ValueError(f"chrom_norm must be one of {list(CHROM_NORMS)}, got {norm!r}")
    return norm


def normalise_pooled(h: torch.Tensor, norm: str) -> torch.Tensor:
    """Normalise pooled sums ``[..., emb_dim]`` over the embedding dimension.

    ``"center"`` subtracts each sum's mean and keeps its scale, so how many (and which) peaks
    of a chromosome are open both reach the next layer; ``"layer"`` (layer normalisation, as
    in the paper) also divides by the standard deviation, which discards the scale of the sum.
    """
    if check_chrom_norm(norm) == "layer":
        return F.layer_norm(h, (h.shape[-1],))
    return h - h.mean(-1, keepdim=True)


class _BagSum(torch.autograd.Function):
    """Per-(cell, chromosome) sums of ``w * delta[j]`` over open peaks, O(nnz) both ways.

    Forward is :func:`torch.nn.functional.embedding_bag`; the backward for ``delta`` is one
    sparse CSR product with the batch's transposed structure (much faster on the CPU than
    embedding_bag's sort-based backward), and the backward for the entry weights (needed for
    gradients w.r.t. continuous accessibility) gathers one dot product per open entry.
    """

    @staticmethod
    def forward(ctx, delta, weights, indices, offsets, by_peak, bag_of_entry):
        ctx.save_for_backward(delta, weights, indices, by_peak, bag_of_entry)
        return F.embedding_bag(indices, delta, offsets, mode="sum", per_sample_weights=weights)

    @staticmethod
    def backward(ctx, grad):
        delta, weights, indices, by_peak, bag_of_entry = ctx.saved_tensors
        grad = grad.contiguous()
        g_delta = by_peak @ grad if ctx.needs_input_grad[0] else None
        g_w = None
        if ctx.needs_input_grad[1]:
            g_w = (delta[indices] * grad[bag_of_entry]).sum(-1)
        return g_delta, g_w, None, None, None, None


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
    norm
        Normalisation of each chromosome's pooled sum before its layer (see
        :func:`normalise_pooled`).
    """

    def __init__(
        self,
        peak_chrom: torch.Tensor,
        n_chrom: int,
        emb_dim: int = 32,
        chrom_hidden: int = 32,
        n_latent: int = 32,
        dropout: float = 0.1,
        norm: str = "center",
    ) -> None:
        super().__init__()
        self.norm = check_chrom_norm(norm)
        n_peaks = int(peak_chrom.numel())
        self.n_peaks, self.n_chrom, self.emb_dim = n_peaks, n_chrom, emb_dim
        self.register_buffer("peak_chrom", peak_chrom.to(torch.long).clone())
        self.offset = nn.Parameter(torch.zeros(n_chrom, emb_dim))
        self.delta = nn.Parameter(torch.randn(n_peaks, emb_dim) * 0.05)
        self.norm_weight = nn.Parameter(torch.ones(n_chrom, emb_dim))
        self.norm_bias = nn.Parameter(torch.zeros(n_chrom, emb_dim))
        bound = 1.0 / math.sqrt(emb_dim)
        self.chrom_weight = nn.Parameter(
            torch.empty(n_chrom, emb_dim, chrom_hidden).uniform_(-bound, bound)
        )
        self.chrom_bias = nn.Parameter(torch.zeros(n_chrom, chrom_hidden))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(n_chrom * chrom_hidden, n_latent)

    def pool(self, batch: AtacBatch) -> torch.Tensor:
        """Per-chromosome embedding sums ``h`` of shape ``[n_cells, n_chrom, emb_dim]``."""
        bag_of_entry = batch.rows * self.n_chrom + self.peak_chrom[batch.indices]
        bags = _BagSum.apply(
            self.delta, batch.weights, batch.indices, batch.offsets, batch.by_peak, bag_of_entry
        )
        return bags.view(batch.n_cells, self.n_chrom, self.emb_dim) + self.offset

    def chrom_layer(self, h: torch.Tensor, chroms: torch.Tensor | None = None) -> torch.Tensor:
        """Per-chromosome layer: ``[..., k, emb_dim] -> [..., k, chrom_hidden]``.

        ``chroms`` names the chromosomes of the ``k`` slices of ``h`` (default: all, in order),
        so a search can recompute only the chromosomes a swap touches.
        """
        if chroms is None:
            w, b, nw, nb = self.chrom_weight, self.chrom_bias, self.norm_weight, self.norm_bias
        else:
            w, b = self.chrom_weight[chroms], self.chrom_bias[chroms]
            nw, nb = self.norm_weight[chroms], self.norm_bias[chroms]
        h = F.gelu(normalise_pooled(h, self.norm) * nw + nb)
        return self.dropout(F.gelu(torch.einsum("...ke,keh->...kh", h, w) + b))

    def latent(self, hidden: torch.Tensor) -> torch.Tensor:
        """ATAC latent from all chromosomes' hidden units ``[..., n_chrom, chrom_hidden]``."""
        return self.out(hidden.flatten(-2))

    def latent_change(self, d_hidden: torch.Tensor, chroms: torch.Tensor) -> torch.Tensor:
        """Change ``[m, n, n_latent]`` of the latent when the hidden units of chromosome
        ``chroms[m, q]`` change by ``d_hidden[m, q, n, chrom_hidden]`` (summed over ``q``).

        The latent layer is linear in the hidden units, so a change confined to a few
        chromosomes reaches the latent through their columns of the weight alone.
        """
        w_out = self.out.weight.view(-1, self.n_chrom, d_hidden.shape[-1])  # [L, K, c]
        return torch.einsum("mqnc,lmqc->mnl", d_hidden, w_out[:, chroms])

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Map pooled sums ``[..., n_chrom, emb_dim]`` to the ATAC latent ``[..., n_latent]``."""
        return self.latent(self.chrom_layer(h))

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

    def column_logits(self, z: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Logits ``[n_cells, len(columns)]`` of the given peaks only."""
        return F.linear(self.hidden(z), self.weight[columns], self.bias[columns])


def focal_bce(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Elementwise focal binary cross-entropy (Lin et al. 2017) on logits."""
    logpt = target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)
    return -((1 - torch.exp(logpt)) ** gamma) * logpt


def atac_reconstruction_loss(
    decoder: AtacDecoder,
    z: torch.Tensor,
    batch: AtacBatch,
    gamma: float = 2.0,
    max_columns: int = 8192,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean focal BCE over all ``[cells, peaks]`` entries of a batch.

    With more than ``max_columns`` peaks, the mean is estimated without bias on a uniform random
    subset of ``max_columns`` peaks (all cells), drawn anew each call, so the cost per step
    stays bounded at genome scale.
    """
    n_peaks = decoder.bias.numel()
    if n_peaks <= max_columns:
        return focal_bce(decoder(z), batch.dense(n_peaks).clamp(0, 1), gamma).mean()
    columns = torch.randperm(n_peaks, generator=generator)[:max_columns].to(z.device)
    slot = torch.full((n_peaks,), -1, dtype=torch.long, device=z.device)
    slot[columns] = torch.arange(max_columns, device=z.device)
    where = slot[batch.indices]
    keep = where >= 0
    target = torch.zeros(z.shape[0], max_columns, device=z.device)
    target[batch.rows[keep], where[keep]] = batch.weights[keep].clamp(0, 1)
    return focal_bce(decoder.column_logits(z, columns), target, gamma).mean()
