"""Phased training of the surrogate: ATAC autoencoder, RNA autoencoder, then translation.

Phase ``atac`` fits the sparse ATAC autoencoder (focal BCE), phase ``rna`` the RNA
autoencoder (MSE), and phase ``translate`` the affine translators together with the ATAC
encoder and RNA decoder on the paired cells: expression loss of ``F(x)``, latent alignment
and cycle losses, an adversarial loss from a group-conditional discriminator, and the ATAC
reconstruction loss so the encoder keeps describing chromatin. Every phase stops early on its
validation loss and restores its best weights.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._atac import atac_reconstruction_loss
from ._batch import make_batch
from ._parallel import DataParallel
from ._surrogate import Surrogate

PHASES = ("atac", "rna", "translate")


@dataclass
class TrainConfig:
    """Optimisation settings (plain values, stored with the model).

    Attributes
    ----------
    max_epochs
        Most epochs per phase.
    batch_size
        Cells per step.
    lr, weight_decay
        AdamW settings.
    patience
        Epochs without validation improvement before a phase stops.
    recon_columns
        Peaks scored per step in the ATAC reconstruction loss (a fresh uniform subset when
        there are more peaks; all of them otherwise).
    focal_gamma
        Focusing parameter of the focal BCE.
    lambda_latent, lambda_cycle, lambda_adv, lambda_atac
        Weights of the latent alignment, cycle, adversarial and ATAC reconstruction terms in the
        translation phase (the expression loss has weight 1).
    lambda_loco_align
        ``model="loco"``: weight of the alignment of the state's leave-one-chromosome-out
        latents with the RNA autoencoder's latent (the expression loss has weight 1).
    """

    max_epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 6
    recon_columns: int = 8192
    focal_gamma: float = 2.0
    lambda_latent: float = 0.1
    lambda_cycle: float = 0.1
    lambda_adv: float = 0.01
    lambda_atac: float = 0.1
    lambda_loco_align: float = 0.3

    def to_dict(self) -> dict:
        """The settings as a plain dict."""
        return asdict(self)


class _Data:
    """Training data held as CSR rows and dense expression, batched by cell index."""

    def __init__(
        self, x: sp.csr_matrix, y: np.ndarray, groups: np.ndarray | None, peak_chrom, n_chrom
    ):
        self.x, self.y, self.groups = x, y, groups
        self.peak_chrom, self.n_chrom = peak_chrom, n_chrom

    def batch(self, idx: np.ndarray, device: torch.device):
        atac = make_batch(self.x[idx], self.peak_chrom, self.n_chrom).to(device)
        y = torch.from_numpy(self.y[idx]).to(device)
        g = None if self.groups is None else torch.from_numpy(self.groups[idx]).to(device)
        return atac, y, g


def make_adamw(params, lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """AdamW, fused when this torch build supports it (much faster on the CPU for
    million-row peak embeddings).
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older torch or unsupported device
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _phase_modules(module: Surrogate, phase: str) -> list[nn.Module]:
    """The parts of the surrogate a phase trains."""
    if phase == "atac":
        return [module.atac_encoder, module.atac_decoder]
    if phase == "rna":
        return [module.rna_encoder, module.rna_decoder]
    return [
        module.atac_encoder,
        module.atac_to_rna,
        module.rna_to_atac,
        module.rna_decoder,
        module.atac_decoder,
    ]


class _PhaseLoss(nn.Module):
    """A phase's losses as a module that owns exactly the parts the phase trains (what
    ``DistributedDataParallel`` wraps); the rest of the surrogate is read, not trained.
    """

    def __init__(self, module: Surrogate, phase: str, cfg: TrainConfig, gen) -> None:
        super().__init__()
        self.parts = nn.ModuleList(_phase_modules(module, phase))
        self._surrogate = (module,)  # not a submodule: its other parameters stay out
        self.phase, self.cfg, self.gen = phase, cfg, gen

    def forward(self, atac, y, g) -> dict[str, torch.Tensor]:
        module = self._surrogate[0]
        frozen = module.discriminator.requires_grad_(False)  # trained by its own step
        try:
            return _losses(module, self.phase, atac, y, g, self.cfg, self.gen)
        finally:
            frozen.requires_grad_(True)


class _DiscriminatorLoss(nn.Module):
    """The discriminator's loss (real RNA latents against translated ATAC latents)."""

    def __init__(self, module: Surrogate) -> None:
        super().__init__()
        self.discriminator = module.discriminator
        self._surrogate = (module,)

    def forward(self, z_r, z_ar, g) -> torch.Tensor:
        module = self._surrogate[0]
        real = module.discriminate(z_r, g)
        fake = module.discriminate(z_ar, g)
        loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
        return loss + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def _losses(
    module: Surrogate, phase: str, atac, y, g, cfg: TrainConfig, gen
) -> dict[str, torch.Tensor]:
    if phase == "atac":
        z = module.atac_encoder(atac)
        rec = atac_reconstruction_loss(
            module.atac_decoder, z, atac, cfg.focal_gamma, cfg.recon_columns, gen
        )
        return {"loss": rec}
    if phase == "rna":
        return {"loss": F.mse_loss(module.rna_decoder(module.rna_encoder(y)), y)}
    z_a = module.atac_encoder(atac)
    with torch.no_grad():
        z_r = module.rna_encoder(y)
    z_ar = module.atac_to_rna(z_a)
    z_ra = module.rna_to_atac(z_r)
    expr = F.mse_loss(module.rna_decoder(z_ar), y)
    latent = F.mse_loss(z_ar, z_r) + F.mse_loss(z_ra, z_a)
    cycle = F.mse_loss(module.rna_to_atac(z_ar), z_a) + F.mse_loss(module.atac_to_rna(z_ra), z_r)
    cycle = cycle + F.mse_loss(module.rna_decoder(module.atac_to_rna(z_ra)), y)
    logit = module.discriminate(z_ar, g)
    adv = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
    rec = atac_reconstruction_loss(
        module.atac_decoder, z_a, atac, cfg.focal_gamma, cfg.recon_columns, gen
    )
    loss = (
        expr
        + cfg.lambda_latent * latent
        + cfg.lambda_cycle * cycle
        + cfg.lambda_adv * adv
        + cfg.lambda_atac * rec
    )
    return {"loss": loss, "expression": expr, "z_ar": z_ar.detach(), "z_r": z_r}


def _discriminator_step(d_loss: nn.Module, opt, z_r, z_ar, g) -> float:
    loss = d_loss(z_r, z_ar, g)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def fit_surrogate_module(
    module: Surrogate,
    x: sp.csr_matrix,
    y: np.ndarray,
    groups: np.ndarray | None,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    phases: tuple[str, ...] = PHASES,
    parallel: DataParallel | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Train ``module`` in phases; return the per-epoch loss history of each phase.

    Parameters
    ----------
    module
        The surrogate to train (modified in place, left in eval mode on ``device``).
    x
        ``[n_cells, n_peaks]`` binary CSR accessibility.
    y
        ``[n_cells, n_genes]`` expression (already transformed), ``float32``.
    groups
        Group code of every cell for the conditional discriminator, or ``None``.
    train_idx, val_idx
        Cells used for training and for early stopping.
    cfg
        Optimisation settings.
    device, seed, progress
        Where to train, the seed that makes a run repeatable, and whether to show progress.
    phases
        Which phases to run, in order.
    parallel
        This rank's place in a data-parallel fit (:mod:`torch.distributed`, every rank
        passing the same data and seed): each rank trains on its share of every step's
        cells under ``DistributedDataParallel`` and validation losses are summed over the
        ranks, so all ranks stop together with the same weights. ``None``: one process.

    Returns
    -------
    dict
        ``{phase: {"train": losses, "val": losses}}`` with one entry per epoch.
    """
    parallel = parallel or DataParallel(device=torch.device(device))
    device = parallel.device if parallel.active else torch.device(device)
    module.to(device)
    peak_chrom = module.atac_encoder.peak_chrom.cpu().numpy()
    data = _Data(
        sp.csr_matrix(x, dtype=np.float32),
        np.ascontiguousarray(y, dtype=np.float32),
        groups,
        peak_chrom,
        module.config.n_chrom,
    )
    rng = np.random.default_rng(seed)
    history: dict[str, dict[str, np.ndarray]] = {}
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        for phase in phases:
            history[phase] = _run_phase(
                module, data, phase, train_idx, val_idx, cfg, device, rng, gen,
                progress and parallel.main, parallel,
            )  # fmt: skip
    module.eval()
    return history


class EarlyStopping:
    """Keep the weights of ``module`` at its best validation loss so far; say when
    ``patience`` epochs in a row have not improved it by a relative 1e-5.
    """

    def __init__(self, module: nn.Module, patience: int) -> None:
        self.module, self.patience = module, patience
        self.best, self.state, self.wait = np.inf, None, 0

    def update(self, val: float) -> bool:
        """Record an epoch's validation loss; ``True`` when training should stop."""
        if val < self.best - 1e-5 * abs(self.best) or self.state is None:
            self.best, self.wait = val, 0
            self.state = copy.deepcopy(self.module.state_dict())
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self) -> None:
        """Load the best epoch's weights back (if any epoch ran)."""
        if self.state is not None:
            self.module.load_state_dict(self.state)


def _run_phase(module, data, phase, train_idx, val_idx, cfg, device, rng, gen, progress, parallel):
    loss_fn = _PhaseLoss(module, phase, cfg, gen)
    opt = make_adamw(loss_fn.parameters(), cfg.lr, cfg.weight_decay)
    step = parallel.wrap(loss_fn)
    d_opt = d_step = None
    if phase == "translate":
        d_loss = _DiscriminatorLoss(module)
        d_opt = make_adamw(d_loss.parameters(), cfg.lr)
        d_step = parallel.wrap(d_loss)
    metric = "expression" if phase == "translate" else "loss"
    batch_size = parallel.batch_size(cfg.batch_size)
    val_share = parallel.shard(np.asarray(val_idx))
    stopping = EarlyStopping(module, cfg.patience)
    train_hist, val_hist = [], []
    bar = tqdm(
        range(cfg.max_epochs), desc=f"surrogate [{phase}]", disable=not progress, leave=False
    )
    for _epoch in bar:
        module.train()
        order = parallel.shard(rng.permutation(train_idx))
        total, n = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start : start + batch_size])
            atac, y, g = data.batch(idx, device)
            out = step(atac, y, g)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            if d_step is not None:
                _discriminator_step(d_step, d_opt, out["z_r"], out["z_ar"], g)
            total += float(out[metric].detach()) * len(idx)
            n += len(idx)
        total, n = parallel.sum(torch.tensor([total, n], dtype=torch.float64)).tolist()
        train_hist.append(total / max(n, 1))
        val_total, val_n = _evaluate(module, data, phase, val_share, cfg, device, gen, metric)
        val_total, val_n = parallel.sum(torch.tensor([val_total, val_n], dtype=torch.float64))
        val = float(val_total) / max(float(val_n), 1)
        val_hist.append(val)
        bar.set_postfix(train=f"{train_hist[-1]:.4f}", val=f"{val:.4f}")
        if stopping.update(val):
            break
    bar.close()
    stopping.restore()
    return {"train": np.asarray(train_hist), "val": np.asarray(val_hist)}


@torch.no_grad()
def _evaluate(module, data, phase, idx, cfg, device, gen, metric) -> tuple[float, int]:
    """Summed loss over the cells ``idx`` and their number."""
    module.eval()
    total, n = 0.0, 0
    for start in range(0, len(idx), cfg.batch_size):
        b = np.asarray(idx[start : start + cfg.batch_size])
        atac, y, g = data.batch(b, device)
        out = _losses(module, phase, atac, y, g, cfg, gen)
        total += float(out[metric]) * len(b)
        n += len(b)
    return total, n
