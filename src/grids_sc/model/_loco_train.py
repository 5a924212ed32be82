"""Training of the LOCO surrogate's cell state on expression.

Two phases, each stopped early on the validation cells and restored to its best epoch:

1. **RNA autoencoder.** A temporary RNA encoder (expression to a latent) is fit with the
   state's own decoder on the expression reconstruction loss, so the decoder starts as a
   map from a low-dimensional description of the expression to every gene.
2. **State.** The ATAC encoder and the decoder are fit on the expression loss (mean squared
   error of every gene's prediction from the latent without the gene's own chromosome) plus
   ``lambda_loco_align`` times the alignment of every leave-one-chromosome-out latent with the
   (frozen) RNA latent of the same cell, as the paper's translator aligns its latents; only
   the expression loss decides the early stop.

The RNA encoder is discarded afterwards (the fitted surrogate has the architecture it always
had). The per-gene cis heads are fit afterwards on the frozen state by
:func:`~grids_sc.model.fit_cis_heads`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._batch import make_batch
from ._loco import LocoSurrogate
from ._parallel import DataParallel
from ._surrogate import _mlp
from ._train import EarlyStopping, TrainConfig, make_adamw


class _RnaLoss(nn.Module):
    """The RNA autoencoder's loss: expression through a temporary encoder and the state's
    decoder (owns those two only).
    """

    def __init__(self, module: LocoSurrogate, rna_encoder: nn.Module) -> None:
        super().__init__()
        self.rna_encoder, self.decoder, self.out = rna_encoder, module.decoder, module.out

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = F.mse_loss(self.out(self.decoder(self.rna_encoder(y))), y)
        return {"loss": loss, "val": loss}


class _StateLoss(nn.Module):
    """The state's loss on a batch (owns the encoder and the decoder only): the expression
    loss (``"val"``) plus ``align`` times the alignment of the leave-one-chromosome-out
    latents with the RNA latents ``z_rna``.
    """

    def __init__(self, module: LocoSurrogate, align: float) -> None:
        super().__init__()
        self.atac_encoder, self.decoder, self.out = module.atac_encoder, module.decoder, module.out
        self._surrogate = (module,)
        self.align = align

    def forward(self, batch, y: torch.Tensor, z_rna: torch.Tensor) -> dict[str, torch.Tensor]:
        module = self._surrogate[0]
        enc = module.atac_encoder
        zc = module.chrom_latents(enc.chrom_layer(enc.pool(batch)))
        expr = F.mse_loss(module.state_from_chrom(zc), y)
        loss = expr
        if self.align > 0:
            loss = loss + self.align * F.mse_loss(zc, z_rna.unsqueeze(-2).expand_as(zc))
        return {"loss": loss, "val": expr}


def _run_phase(loss_fn, inputs, train_idx, val_idx, cfg, rng, parallel, desc, progress):
    """Fit the parameters of ``loss_fn`` (``inputs(idx)``: its arguments for the cells
    ``idx``) with early stopping on its ``"val"`` term; restore the best epoch's weights.
    """
    opt = make_adamw(loss_fn.parameters(), cfg.lr, cfg.weight_decay)
    step = parallel.wrap(loss_fn)
    batch_size = parallel.batch_size(cfg.batch_size)
    val_share = parallel.shard(np.asarray(val_idx))
    stopping = EarlyStopping(loss_fn, cfg.patience)
    train_hist, val_hist = [], []
    bar = tqdm(range(cfg.max_epochs), desc=desc, disable=not progress, leave=False)
    for _epoch in bar:
        loss_fn.train()
        order = parallel.shard(rng.permutation(train_idx))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start : start + batch_size])
            loss = step(*inputs(idx))["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        total, n = parallel.sum(torch.tensor([total, len(order)], dtype=torch.float64)).tolist()
        train_hist.append(total / max(n, 1))
        loss_fn.eval()
        val_total = 0.0
        with torch.no_grad():
            for start in range(0, len(val_share), cfg.batch_size):
                b = np.asarray(val_share[start : start + cfg.batch_size])
                val_total += float(loss_fn(*inputs(b))["val"]) * len(b)
        val_total, val_n = parallel.sum(
            torch.tensor([val_total, len(val_share)], dtype=torch.float64)
        ).tolist()
        val = val_total / max(val_n, 1)
        val_hist.append(val)
        bar.set_postfix(train=f"{train_hist[-1]:.4f}", val=f"{val:.4f}")
        if stopping.update(val):
            break
    bar.close()
    stopping.restore()
    loss_fn.eval()
    return np.asarray(train_hist), np.asarray(val_hist)


def fit_loco_state(
    module: LocoSurrogate,
    x: sp.csr_matrix,
    y: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    parallel: DataParallel | None = None,
) -> dict[str, np.ndarray]:
    """Fit the LOCO state (encoder and decoder) of ``module`` on expression ``y``.

    Parameters are those of :func:`~grids_sc.model.fit_surrogate_module` (no groups);
    ``cfg.lambda_loco_align`` weighs the alignment with the RNA latent. Returns the per-epoch
    ``train`` and ``val`` losses of the state (``val``: the expression loss) and
    ``rna_train`` and ``rna_val`` of the RNA autoencoder.
    """
    parallel = parallel or DataParallel(device=torch.device(device))
    device = parallel.device if parallel.active else torch.device(device)
    progress = progress and parallel.main
    module.to(device)
    c = module.config
    x = sp.csr_matrix(x, dtype=np.float32)
    y_t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)
    pc, n_chrom = module.atac_encoder.peak_chrom.cpu().numpy(), c.n_chrom
    rng = np.random.default_rng(seed)

    # 1. the RNA autoencoder: the decoder's start and the latents the state is aligned with
    rna_encoder = _mlp(c.n_genes, c.hidden, c.n_latent, c.dropout).to(device)
    rna_loss = _RnaLoss(module, rna_encoder)
    rna_train, rna_val = _run_phase(
        rna_loss, lambda idx: (y_t[idx],), train_idx, val_idx, cfg, rng, parallel,
        "surrogate [loco rna]", progress,
    )  # fmt: skip
    with torch.no_grad():
        z_rna = rna_encoder(y_t)

    # 2. the state on expression, aligned with the RNA latent
    def state_inputs(idx):
        it = torch.from_numpy(idx).to(device)
        return make_batch(x[idx], pc, n_chrom).to(device), y_t[it], z_rna[it]

    state_loss = _StateLoss(module, cfg.lambda_loco_align)
    train, val = _run_phase(
        state_loss, state_inputs, train_idx, val_idx, cfg, rng, parallel, "surrogate [loco]",
        progress,
    )  # fmt: skip
    module.eval()
    return {"train": train, "val": val, "rna_train": rna_train, "rna_val": rna_val}


@torch.no_grad()
def loco_cell_state(
    module: LocoSurrogate, x: sp.csr_matrix, device: torch.device, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(zc, r)`` of every cell: the latents without each chromosome
    ``[n, n_chrom + 1, n_latent]`` and the state's prediction of every gene ``[n, n_genes]``.
    """
    module.eval()
    enc = module.atac_encoder
    pc = enc.peak_chrom.cpu().numpy()
    zs, rs = [], []
    for s in range(0, x.shape[0], batch_size):
        b = make_batch(x[s : s + batch_size], pc, enc.n_chrom).to(device)
        zc = module.chrom_latents(enc.chrom_layer(enc.pool(b)))
        zs.append(zc)
        rs.append(module.state_from_chrom(zc))
    return torch.cat(zs), torch.cat(rs)
