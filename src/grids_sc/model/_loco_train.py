"""Training of the LOCO surrogate's cell state on expression.

The encoder and the state decoder are fit together on the expression loss (mean squared error
of every gene's prediction from the latent without the gene's own chromosome), with early
stopping on the validation cells; the per-gene cis heads are fit afterwards on the frozen
state by :func:`~grids_sc.model.fit_cis_heads`.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._batch import make_batch
from ._loco import LocoSurrogate
from ._parallel import DataParallel
from ._train import TrainConfig, make_adamw


class _StateLoss(nn.Module):
    """The state's expression loss on a batch (owns the encoder and the decoder only)."""

    def __init__(self, module: LocoSurrogate) -> None:
        super().__init__()
        self.atac_encoder, self.decoder, self.out = module.atac_encoder, module.decoder, module.out
        self._surrogate = (module,)

    def forward(self, batch, y: torch.Tensor) -> torch.Tensor:
        module = self._surrogate[0]
        enc = module.atac_encoder
        zc = module.chrom_latents(enc.chrom_layer(enc.pool(batch)))
        return F.mse_loss(module.state_from_chrom(zc), y)


def _batch(x, idx, pc, n_chrom, device):
    return make_batch(x[idx], pc, n_chrom).to(device)


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

    Parameters are those of :func:`~grids_sc.model.fit_surrogate_module` (one phase, no
    groups). Returns the per-epoch ``train`` and ``val`` losses.
    """
    parallel = parallel or DataParallel(device=torch.device(device))
    device = parallel.device if parallel.active else torch.device(device)
    module.to(device)
    x = sp.csr_matrix(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    pc, n_chrom = module.atac_encoder.peak_chrom.cpu().numpy(), module.config.n_chrom
    rng = np.random.default_rng(seed)
    loss_fn = _StateLoss(module)
    opt = make_adamw(loss_fn.parameters(), cfg.lr, cfg.weight_decay)
    step = parallel.wrap(loss_fn)
    batch_size = parallel.batch_size(cfg.batch_size)
    val_share = parallel.shard(np.asarray(val_idx))
    best, best_state, wait = np.inf, None, 0
    train_hist, val_hist = [], []
    bar = tqdm(range(cfg.max_epochs), desc="surrogate [loco]", disable=not progress, leave=False)
    for _epoch in bar:
        module.train()
        order = parallel.shard(rng.permutation(train_idx))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start : start + batch_size])
            loss = step(_batch(x, idx, pc, n_chrom, device), torch.from_numpy(y[idx]).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        total, n = parallel.sum(torch.tensor([total, len(order)], dtype=torch.float64)).tolist()
        train_hist.append(total / max(n, 1))
        module.eval()
        val_total = 0.0
        with torch.no_grad():
            for start in range(0, len(val_share), cfg.batch_size):
                b = np.asarray(val_share[start : start + cfg.batch_size])
                yb = torch.from_numpy(y[b]).to(device)
                val_total += float(loss_fn(_batch(x, b, pc, n_chrom, device), yb)) * len(b)
        val_total, val_n = parallel.sum(
            torch.tensor([val_total, len(val_share)], dtype=torch.float64)
        ).tolist()
        val = val_total / max(val_n, 1)
        val_hist.append(val)
        bar.set_postfix(train=f"{train_hist[-1]:.4f}", val=f"{val:.4f}")
        if val < best - 1e-5 * abs(best) or best_state is None:
            best, wait = val, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            wait += 1
            if wait >= cfg.patience:
                break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {"train": np.asarray(train_hist), "val": np.asarray(val_hist)}


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
