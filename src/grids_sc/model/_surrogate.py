"""The multiome surrogate F: ATAC autoencoder, RNA autoencoder and affine translators.

``F(x) = clamp(RNA-decode(translate(ATAC-encode(x))), min=0)``. The module knows nothing of
AnnData: it takes :class:`~grids_sc.model.AtacBatch` objects and tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from ._atac import AtacDecoder, SparseAtacEncoder
from ._batch import AtacBatch
from ._incremental_sum import EmbeddingSumIncremental


@dataclass
class SurrogateConfig:
    """Architecture of a :class:`Surrogate` (plain values, stored with the weights).

    Attributes
    ----------
    n_peaks, n_genes, n_chrom
        Data dimensions.
    n_groups
        Number of cell groups the discriminator is conditioned on (0: unconditional).
    emb_dim
        Size of each peak embedding.
    chrom_hidden
        Width of the per-chromosome layer.
    n_latent
        Size of both latents.
    hidden
        Width of the hidden layers of the RNA autoencoder, the ATAC decoder and the
        discriminator.
    dropout
        Dropout in the encoders.
    chrom_norm
        Normalisation of each chromosome's pooled embedding sum: ``"center"`` (subtract the
        mean, keep the scale) or ``"layer"`` (layer normalisation; models stored without
        this key used it).
    """

    n_peaks: int
    n_genes: int
    n_chrom: int
    n_groups: int = 0
    emb_dim: int = 32
    chrom_hidden: int = 32
    n_latent: int = 32
    hidden: int = 128
    dropout: float = 0.1
    chrom_norm: str = "center"

    def to_dict(self) -> dict:
        """The configuration as a plain dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SurrogateConfig:
        """Rebuild from :meth:`to_dict` output (extra keys are ignored)."""
        names = {f.name for f in fields(cls)}
        cast = {"dropout": float, "chrom_norm": str}
        kw = {k: cast.get(k, int)(v) for k, v in d.items() if k in names}
        kw.setdefault("chrom_norm", "layer")  # stored before the option existed
        return cls(**kw)


def _mlp(n_in: int, hidden: int, n_out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.LayerNorm(hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_out),
    )


class RnaDecoder(nn.Module):
    """Decode an RNA latent to expression; can compute a subset of genes only."""

    def __init__(self, n_latent: int, hidden: int, n_genes: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(n_latent, hidden), nn.LayerNorm(hidden), nn.GELU())
        self.out = nn.Linear(hidden, n_genes)

    def forward(self, z: torch.Tensor, genes: torch.Tensor | None = None) -> torch.Tensor:
        """Expression ``[..., n_genes]`` (or ``[..., len(genes)]`` for a gene subset)."""
        hid = self.hidden(z)
        if genes is None:
            return self.out(hid)
        return F.linear(hid, self.out.weight[genes], self.out.bias[genes])


class Surrogate(nn.Module):
    """ATAC and RNA autoencoders with affine translators and a group-conditional discriminator.

    Parameters
    ----------
    config
        The architecture.
    peak_chrom
        Chromosome code of every peak.
    """

    def __init__(self, config: SurrogateConfig, peak_chrom: torch.Tensor) -> None:
        super().__init__()
        c = config
        self.config = c
        self.atac_encoder = SparseAtacEncoder(
            peak_chrom, c.n_chrom, c.emb_dim, c.chrom_hidden, c.n_latent, c.dropout, c.chrom_norm
        )
        self.atac_decoder = AtacDecoder(c.n_latent, c.n_peaks, c.hidden)
        self.rna_encoder = _mlp(c.n_genes, c.hidden, c.n_latent, c.dropout)
        self.rna_decoder = RnaDecoder(c.n_latent, c.hidden, c.n_genes)
        self.atac_to_rna = nn.Linear(c.n_latent, c.n_latent)
        self.rna_to_atac = nn.Linear(c.n_latent, c.n_latent)
        self.discriminator = _mlp(c.n_latent + c.n_groups, c.hidden, 1)

    # -- the function F and its pieces ------------------------------------------------------
    def pool(self, batch: AtacBatch) -> torch.Tensor:
        """Per-chromosome sums of peak embeddings, ``[n_cells, n_chrom, emb_dim]``."""
        return self.atac_encoder.pool(batch)

    def expression_from_pooled(
        self, h: torch.Tensor, genes: torch.Tensor | None = None, clamp: bool = True
    ) -> torch.Tensor:
        """Predicted expression from pooled sums ``h`` (any leading batch dimensions)."""
        return self.expression_from_latent(self.atac_encoder.head(h), genes, clamp)

    def expression_from_latent(
        self, z: torch.Tensor, genes: torch.Tensor | None = None, clamp: bool = True
    ) -> torch.Tensor:
        """Predicted expression from the ATAC latent."""
        y = self.rna_decoder(self.atac_to_rna(z), genes)
        return y.clamp(min=0) if clamp else y

    def forward(
        self, batch: AtacBatch, genes: torch.Tensor | None = None, clamp: bool = True
    ) -> torch.Tensor:
        """``F(x)``: predicted expression ``[n_cells, n_genes]`` of a sparse ATAC batch."""
        return self.expression_from_pooled(self.pool(batch), genes, clamp)

    def incremental(
        self, x, genes, perturb_value: float = 0.0, device: torch.device | str = "cpu"
    ) -> EmbeddingSumIncremental:
        """The :class:`~grids_sc.model.IncrementalSurrogate` of cells ``x`` (binary CSR
        ``[n_cells, n_peaks]``) for output genes ``genes``, perturbed peaks set to
        ``perturb_value``: what the subset search evaluates (eval mode, on ``device``).
        """
        return EmbeddingSumIncremental(self, x, genes, perturb_value, device)

    def discriminate(self, z: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """Discriminator logit that ``z`` is a real RNA latent, conditioned on the cell group."""
        if self.config.n_groups:
            if groups is None:
                raise ValueError("this surrogate's discriminator needs group labels")
            z = torch.cat([z, F.one_hot(groups, self.config.n_groups).to(z.dtype)], dim=-1)
        return self.discriminator(z).squeeze(-1)
