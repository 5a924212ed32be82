"""The leave-one-chromosome-out (LOCO) surrogate: an expression-trained cell state that cannot
see the gene's own chromosome, plus a cis head per gene over its window.

The cis surrogate's state is the ATAC autoencoder's latent, fit without expression: it does
not absorb a gene's cis effects, but on sparse genome-wide ATAC it says little about
expression. Training that state on expression makes it absorb the cis effects (proximal
contamination). Statistical genetics solves the same problem by leaving the tested
chromosome out of the genome-wide background (LOCO, as in BOLT-LMM and REGENIE). Here::

    z_{-k}(x) = b + sum_{k' != k} W_{k'} hid_{k'}(x)     (the latent without chromosome k)
    r_g(x)    = w_g . dec(z_{-k(g)}) + c_g                 (the state's prediction of gene g)
    F_g(x)    = r_g(x) + head_g(s_g(x), z_{-k(g)}(x)),      clamped at 0

``hid_k`` is the per-chromosome layer of the embedding-sum encoder and ``W_k`` its columns of
the (linear) latent layer, so leaving a chromosome out is one subtraction: the full latent
minus that chromosome's contribution. The state (encoder and decoder) is trained on expression
first; then every gene's cis head (:class:`~grids_sc.model.CisHeads`' per-gene window sums
``s_g`` and two-layer network) is trained on top of the frozen state. A gene's own window
reaches its prediction only through its head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._atac import SparseAtacEncoder
from ._batch import AtacBatch
from ._cis import CisConfig, CisHeads
from ._surrogate import SurrogateConfig


def by_slot(slots: torch.Tensor, fn, dim: int = -1) -> torch.Tensor:
    """``fn(u, g)`` for the genes ``g`` (positions in ``slots``) that read state slot ``u``,
    concatenated on the genes' dimension ``dim`` in the genes' order. Genes sharing a slot (a
    chromosome) are computed together, so no per-gene copy of the state is formed.
    """
    if len(slots) == 1:  # one gene (a task's search): no grouping, the same arithmetic
        return fn(int(slots[0]), torch.zeros(1, dtype=torch.long, device=slots.device))
    uniq = torch.unique(slots)
    parts, order = [], []
    for u in uniq.tolist():
        g = torch.nonzero(slots == u).squeeze(1)
        parts.append(fn(u, g))
        order.append(g)
    inv = torch.argsort(torch.cat(order))
    return torch.cat(parts, dim).index_select(dim, inv)


class LocoHeads(CisHeads):
    """:class:`~grids_sc.model.CisHeads` whose cell state is per gene.

    The state argument of :meth:`pre_activation` and :meth:`forward` is ``(zc, slots, r)``:
    state latents ``zc [..., n_slots, n_latent]`` (the latent without each chromosome), the
    slot each output gene reads (``slots [n_out]``: its chromosome) and the state's
    prediction ``r [..., n_out]``, which the head's output is added to.

    The heads start silent (:func:`~grids_sc.model.fit_cis_heads` zeroes their output
    layer and linear term, so a gene's prediction starts as the state's plus a constant)
    and that start is every gene's first early-stopping candidate. After training the keep
    rule (:attr:`~grids_sc.model.CisTrainConfig.keep_rule`) keeps a gene's head whole,
    scales it (as a change from the silent start) or sets it back to silent, so the gene
    keeps the state's prediction (:meth:`silent`).
    """

    silent_start = True

    def pre_activation(self, s, state, genes=None) -> torch.Tensor:
        """Hidden pre-activations ``[..., n_out, cis_hidden]`` of the heads."""
        zc, slots = state[0], state[1]
        sl = slice(None) if genes is None else genes
        w, b = self.state_w[sl], self.state_b[sl]
        q = by_slot(slots, lambda u, g: torch.einsum("...l,tsl->...ts", zc[..., u, :], w[g]), -2)
        u = torch.cat([s, q + b], dim=-1)
        return torch.einsum("...tu,thu->...th", u, self.w1[sl]) + self.b1[sl]

    def forward(self, s, state, genes=None) -> torch.Tensor:
        """Expression (before clamping) ``[..., n_out]``: the state's prediction plus the head."""
        zc, slots, r = state
        sl = slice(None) if genes is None else genes
        a = self.pre_activation(s, state, genes)
        v = self.lin[sl]
        lin = by_slot(slots, lambda u, g: zc[..., u, :] @ v[g].T)
        return (self.act(a) * self.w2[sl]).sum(-1) + lin + self.b2[sl] + r

    @torch.no_grad()
    def silent(self) -> torch.Tensor:
        """``[n_genes]`` bool: the genes whose head adds only a constant (output layer and
        linear term zero: the silent start kept, the head not having beaten the state alone
        on the validation cells), so no peak of the gene's own chromosome changes its
        prediction.
        """
        return (self.w2 == 0).all(-1) & (self.lin == 0).all(-1)

    def initial_bias(self, y: torch.Tensor, state) -> torch.Tensor:
        """Start of ``b2``: the genes' mean residual of the state's prediction."""
        return (y - state[2]).mean(0)


class LocoSurrogate(nn.Module):
    """Expression-trained LOCO cell state plus per-gene cis heads.

    Parameters
    ----------
    config
        Sizes of the encoder (``emb_dim``, ``chrom_hidden``, ``n_latent``, ``dropout``,
        ``chrom_norm``) and of the state decoder (``hidden``).
    cis_config
        Sizes of the heads.
    peak_chrom
        Chromosome code of every peak.
    gene_chrom
        Chromosome code of every gene (``-1``: a chromosome without peaks, nothing to leave
        out).
    pair_gene, pair_peak
        The (gene, peak) window pairs of the heads.
    """

    def __init__(
        self,
        config: SurrogateConfig,
        cis_config: CisConfig,
        peak_chrom: torch.Tensor,
        gene_chrom: torch.Tensor,
        pair_gene: torch.Tensor,
        pair_peak: torch.Tensor,
    ) -> None:
        super().__init__()
        c = config
        self.config, self.cis_config = c, cis_config
        gc = torch.as_tensor(gene_chrom, dtype=torch.long).reshape(-1)
        if gc.numel() != c.n_genes or (gc.numel() and (gc.min() < -1 or gc.max() >= c.n_chrom)):
            raise ValueError("gene_chrom must give a chromosome code (or -1) for every gene")
        self.atac_encoder = SparseAtacEncoder(
            peak_chrom, c.n_chrom, c.emb_dim, c.chrom_hidden, c.n_latent, c.dropout, c.chrom_norm
        )
        self.register_buffer("gene_chrom", gc.clone())
        self.decoder = nn.Sequential(
            nn.Linear(c.n_latent, c.hidden), nn.LayerNorm(c.hidden), nn.GELU()
        )
        self.out = nn.Linear(c.hidden, c.n_genes)
        self.cis = LocoHeads(c.n_genes, c.n_peaks, pair_gene, pair_peak, c.n_latent, cis_config)

    # -- the state ------------------------------------------------------------------------------
    def chrom_latents(self, hid: torch.Tensor) -> torch.Tensor:
        """``[..., n_chrom + 1, n_latent]``: the latent without each chromosome, then the full
        latent (slot ``n_chrom``, for genes whose chromosome has no peaks).
        """
        enc = self.atac_encoder
        w = enc.out.weight.view(-1, enc.n_chrom, hid.shape[-1])  # [L, K, c]
        contrib = torch.einsum("...kc,lkc->...kl", hid, w)
        full = contrib.sum(-2) + enc.out.bias
        return torch.cat([full.unsqueeze(-2) - contrib, full.unsqueeze(-2)], -2)

    def with_heads(self, pair_gene: torch.Tensor, pair_peak: torch.Tensor) -> LocoSurrogate:
        """A new model with this one's state (encoder, decoder, their weights) and fresh heads
        over the window pairs ``(pair_gene, pair_peak)``.
        """
        out = LocoSurrogate(
            self.config, self.cis_config, self.atac_encoder.peak_chrom.detach().cpu(),
            self.gene_chrom.detach().cpu(), pair_gene, pair_peak,
        )  # fmt: skip
        shared = {k: v for k, v in self.state_dict().items() if not k.startswith("cis.")}
        out.load_state_dict(shared, strict=False)
        return out

    def gene_slots(self, genes: torch.Tensor | None = None) -> torch.Tensor:
        """Each gene's slot in :meth:`chrom_latents` (its chromosome, or ``n_chrom``)."""
        gc = self.gene_chrom if genes is None else self.gene_chrom[genes.to(self.gene_chrom.device)]
        return torch.where(gc < 0, torch.full_like(gc, self.config.n_chrom), gc)

    def state_from_slots(
        self, zc: torch.Tensor, slots: torch.Tensor, genes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The state's prediction ``r [..., n_out]`` of ``genes`` (all: ``None``) from state
        latents ``zc [..., n_slots, n_latent]``, gene ``i`` reading slot ``slots[i]``: the
        decoder once per slot, each gene's output from its own slot.
        """
        hid = self.decoder(zc)
        w = self.out.weight if genes is None else self.out.weight[genes]
        b = self.out.bias if genes is None else self.out.bias[genes]
        return by_slot(slots, lambda u, g: F.linear(hid[..., u, :], w[g], b[g]))

    def state_from_chrom(self, zc: torch.Tensor) -> torch.Tensor:
        """The state's prediction of every gene ``[..., n_genes]`` from
        :meth:`chrom_latents`.
        """
        return self.state_from_slots(zc, self.gene_slots())

    def head_inputs(self, zc: torch.Tensor, genes: torch.Tensor | None = None):
        """The heads' state ``(zc, slots, r)`` of ``genes`` from :meth:`chrom_latents`."""
        slots = self.gene_slots(genes)
        return zc, slots, self.state_from_slots(zc, slots, genes)

    # -- the function -----------------------------------------------------------------------
    def expression_from_state(self, state, s: torch.Tensor, genes=None, clamp: bool = True):
        """Predicted expression from the heads' state ``(zc, slots, r)`` and window sums."""
        y = self.cis(s, state, genes)
        return y.clamp(min=0) if clamp else y

    def forward(
        self, batch: AtacBatch, genes: torch.Tensor | None = None, clamp: bool = True
    ) -> torch.Tensor:
        """``F(x)``: predicted expression ``[n_cells, n_genes]`` of a sparse ATAC batch."""
        enc = self.atac_encoder
        zc = self.chrom_latents(enc.chrom_layer(enc.pool(batch)))
        state = self.head_inputs(zc, genes)
        return self.expression_from_state(state, self.cis.pool(batch, genes), genes, clamp)

    def incremental(self, x, genes, perturb_value: float = 0.0, device="cpu"):
        """The :class:`~grids_sc.model.IncrementalSurrogate` of cells ``x`` (binary CSR
        ``[n_cells, n_peaks]``) for output genes ``genes``, perturbed peaks set to
        ``perturb_value``: what the subset search evaluates (eval mode, on ``device``).
        """
        from ._loco_incremental import LocoIncremental

        return LocoIncremental(self, x, genes, perturb_value, device)
