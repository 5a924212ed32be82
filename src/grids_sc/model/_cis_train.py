"""Training of the per-gene cis heads on a fitted shared surrogate.

The shared encoder is frozen and its latent ``z`` computed once for every cell; each epoch then
only sums the window embeddings of the cells' open window peaks (a sparse ``[cells, pairs]``
matrix built once) and runs the small heads. The loss is the sum over genes of each gene's mean
squared error, and every gene's parameters belong to that gene alone, so the genes train as
independent models: each keeps the weights of its own best validation epoch and stops on its
own. A loss averaged over genes would let the genes with large errors decide when training
ends, before the weaker cis logic of the others is learned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from ._batch import make_batch
from ._cis import CisSurrogate
from ._parallel import DataParallel
from ._surrogate import Surrogate
from ._train import make_adamw


@dataclass
class CisTrainConfig:
    """Optimisation of the cis heads (plain values, stored with the model).

    Attributes
    ----------
    max_epochs
        Most epochs.
    batch_size
        Cells per step.
    lr, weight_decay
        AdamW settings.
    patience
        Epochs without validation improvement after which a gene stops improving its
        weights; training ends when every gene has stopped.
    sparsity
        Group-lasso weight on each window peak's embedding (the sum of their Euclidean
        norms is added to each gene's loss): peaks without signal shrink to no effect
        instead of fitting noise, which the search would otherwise exploit.
    keep_margin
        Heads that start silent (the LOCO heads): a gene keeps its head only when the head's
        best validation loss is at least this fraction below the silent start's (the
        state's prediction alone); otherwise the head is set back to silent and the gene's
        window acts through nothing. ``0``: any improvement keeps the head. The early stop
        picks each head's best of up to ``max_epochs`` epochs on the same validation cells,
        so a head that fits noise also beats the silent start, by a little.
    """

    max_epochs: int = 300
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 30
    sparsity: float = 3e-3
    keep_margin: float = 0.0

    def to_dict(self) -> dict:
        """The settings as a plain dict."""
        return asdict(self)


def window_matrix(x: sp.csr_matrix, pair_peak: np.ndarray) -> sp.csr_matrix:
    """``[n_cells, n_pairs]`` accessibility of each pair's peak (a column gather of ``x``)."""
    # CSR column selection: memory in the output only (no CSC copy of all peaks)
    return sp.csr_matrix(sp.csr_matrix(x, dtype=np.float32)[:, np.asarray(pair_peak)])


@torch.no_grad()
def shared_latent(
    module: CisSurrogate | Surrogate,
    x: sp.csr_matrix,
    device: torch.device,
    batch_size: int = 1024,
) -> torch.Tensor:
    """ATAC latent ``z`` of every cell under the (frozen) shared encoder."""
    module.eval()
    enc = module.atac_encoder
    pc = enc.peak_chrom.cpu().numpy()
    out = [
        enc(make_batch(x[s : s + batch_size], pc, enc.n_chrom).to(device))
        for s in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, module.config.n_latent, device=device)


def _cell_state(module, x: sp.csr_matrix, device):
    """The heads' cell state of every cell: the shared latent ``z`` (cis), or ``(zc, r)``
    (LOCO: the latents without each chromosome and the state's prediction).
    """
    if hasattr(module, "gene_slots"):
        from ._loco_train import loco_cell_state

        return loco_cell_state(module, x, device)
    return shared_latent(module, x, device)


def _take(module, state, it: torch.Tensor):
    """The heads' state of the cells ``it``."""
    if isinstance(state, tuple):  # LOCO: each gene reads the latent without its chromosome
        return state[0][it], module.gene_slots(), state[1][it]
    return state[it]


def _pool_rows(module: CisSurrogate, w: sp.csr_matrix, idx: np.ndarray, device) -> torch.Tensor:
    sub = w[idx].tocoo()
    cis = module.cis
    rows = torch.from_numpy(sub.row.astype(np.int64)).to(device)
    cols = torch.from_numpy(sub.col.astype(np.int64)).to(device)
    vals = torch.from_numpy(sub.data.astype(np.float32)).to(device)
    n_g = cis.n_genes
    flat = torch.zeros(len(idx) * n_g, cis.config.cis_dim, device=device)
    # index_select rather than emb[cols]: its backward (index_add) is deterministic on CPU,
    # the backward of advanced indexing (index_put with accumulate) is not
    flat = flat.index_add(
        0, rows * n_g + cis.pair_gene[cols], torch.index_select(cis.emb, 0, cols) * vals[:, None]
    )
    return cis.offset + flat.view(len(idx), n_g, -1)


class _HeadsLoss(nn.Module):
    """The heads' loss on a batch of cells, as a module that owns the heads only (what
    ``DistributedDataParallel`` wraps; the shared part is frozen).
    """

    def __init__(self, module: CisSurrogate, w: sp.csr_matrix, sparsity: float) -> None:
        super().__init__()
        self.cis = module.cis
        self._surrogate = (module,)  # not a submodule
        self.w, self.sparsity = w, sparsity

    def forward(self, idx: np.ndarray, z, y: torch.Tensor) -> torch.Tensor:
        cis = self.cis
        pred = cis(_pool_rows(self._surrogate[0], self.w, idx, y.device), z)
        loss = ((pred - y) ** 2).mean(0).sum()
        if self.sparsity > 0 and cis.emb.numel():
            loss = loss + self.sparsity * cis.emb.norm(dim=1).sum()
        return loss


def fit_cis_heads(
    module: CisSurrogate,
    x: sp.csr_matrix,
    y: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    cfg: CisTrainConfig,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    parallel: DataParallel | None = None,
) -> dict[str, np.ndarray]:
    """Fit the cis heads of ``module`` (the shared part is left unchanged).

    Parameters
    ----------
    module
        A :class:`~grids_sc.model.CisSurrogate` whose shared part is already fitted.
    x
        ``[n_cells, n_peaks]`` binary CSR accessibility.
    y
        ``[n_cells, n_genes]`` expression (already transformed).
    train_idx, val_idx
        Cells for fitting and for each gene's early stopping.
    cfg
        Optimisation settings.
    device, seed, progress
        Where to train, the seed, and whether to show a progress bar.
    parallel
        This rank's place in a data-parallel fit (see
        :func:`~grids_sc.model.fit_surrogate_module`): each rank trains on its share of every
        step's cells, and the per-gene validation losses are summed over the ranks, so every
        gene stops at the same epoch on all ranks.

    Returns
    -------
    dict
        ``train`` and ``val`` mean (over genes) losses per epoch, and ``best_epoch`` and
        ``best_val`` per gene (``best_epoch`` -1: a head that starts silent, as the LOCO
        heads do, and did not beat its start on the validation cells by ``keep_margin``, so
        it was set back to silent and adds nothing), and with a silent start ``silent_val``,
        each gene's validation loss of the silent start.
    """
    parallel = parallel or DataParallel(device=torch.device(device))
    device = parallel.device if parallel.active else torch.device(device)
    progress = progress and parallel.main
    module.to(device)
    cis = module.cis
    x = sp.csr_matrix(x, dtype=np.float32)
    y_t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)
    z = _cell_state(module, x, device)
    w = window_matrix(x, cis.pair_peak.cpu().numpy())
    rng = np.random.default_rng(seed)
    silent = bool(getattr(cis, "silent_start", False))
    with torch.no_grad():  # start every head at its gene's training mean
        tr = torch.as_tensor(train_idx, device=device)
        init = getattr(cis, "initial_bias", None)
        cis.b2.copy_(y_t[tr].mean(0) if init is None else init(y_t[tr], _take(module, z, tr)))
        if silent:  # the head adds nothing until training gives it something to add
            cis.w2.zero_()
            cis.lin.zero_()
    loss_fn = _HeadsLoss(module, w, cfg.sparsity)
    opt = make_adamw(loss_fn.parameters(), cfg.lr, cfg.weight_decay)
    step = parallel.wrap(loss_fn)
    batch_size = parallel.batch_size(cfg.batch_size)
    val_share = parallel.shard(np.asarray(val_idx))
    n_g = cis.n_genes
    best = torch.full((n_g,), float("inf"), device=device)
    best_epoch = np.full(n_g, -1)
    wait = torch.zeros(n_g, dtype=torch.long, device=device)
    best_state = {k: v.detach().clone() for k, v in cis.named_parameters()}
    silent_state = silent_val = None
    if silent:  # the silent start is every gene's first candidate: a head must beat it
        best = _val_loss(module, w, z, y_t, val_share, cfg.batch_size, device, parallel)
        silent_val = best.clone()
        silent_state = {k: v.clone() for k, v in best_state.items()}
    train_hist, val_hist = [], []
    bar = tqdm(range(cfg.max_epochs), desc="surrogate [cis]", disable=not progress, leave=False)
    for epoch in bar:
        order = parallel.shard(rng.permutation(train_idx))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start : start + batch_size])
            it = torch.from_numpy(idx).to(device)
            loss = step(idx, _take(module, z, it), y_t[it])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        total, n = parallel.sum(torch.tensor([total, len(order)], dtype=torch.float64)).tolist()
        train_hist.append(total / max(n, 1) / max(n_g, 1))
        val = _val_loss(module, w, z, y_t, val_share, cfg.batch_size, device, parallel)
        val_hist.append(float(val.mean()))
        improved = torch.isinf(best) | (val < best - 1e-6 * best.abs())
        best = torch.where(improved, val, best)
        wait = torch.where(improved, torch.zeros_like(wait), wait + 1)
        _keep_improved(cis, best_state, improved)
        best_epoch[improved.cpu().numpy()] = epoch
        bar.set_postfix(val=f"{val_hist[-1]:.4f}", active=int((wait < cfg.patience).sum()))
        if bool((wait >= cfg.patience).all()):
            break
    bar.close()
    if silent:  # a head that does not beat the state alone by the margin goes back to silent
        weak = best > silent_val * (1 - cfg.keep_margin)
        _keep_improved(cis, best_state, weak, source=silent_state)
        best = torch.where(weak, silent_val, best)
        best_epoch[weak.cpu().numpy()] = -1
    with torch.no_grad():
        for k, v in cis.named_parameters():
            v.copy_(best_state[k])
    module.eval()
    out = {
        "train": np.asarray(train_hist),
        "val": np.asarray(val_hist),
        "best_epoch": best_epoch,
        "best_val": best.cpu().numpy(),
    }
    if silent:
        out["silent_val"] = silent_val.cpu().numpy()
    return out


def _val_loss(module, w, z, y_t, val_share, batch_size, device, parallel) -> torch.Tensor:
    """Per-gene mean squared error over the validation cells of every rank."""
    sse = _per_gene_sse(module, w, z, y_t, val_share, batch_size, device)
    sse = parallel.sum(torch.cat([sse, torch.tensor([len(val_share)], device=device)]))
    return sse[:-1] / max(float(sse[-1]), 1)


@torch.no_grad()
def _per_gene_sse(module, w, z, y_t, idx, batch_size, device) -> torch.Tensor:
    """Per-gene sum of squared errors over the cells ``idx``."""
    cis = module.cis
    total = torch.zeros(cis.n_genes, device=device)
    for start in range(0, len(idx), batch_size):
        b = np.asarray(idx[start : start + batch_size])
        it = torch.from_numpy(b).to(device)
        pred = cis(_pool_rows(module, w, b, device), _take(module, z, it))
        total += ((pred - y_t[it]) ** 2).sum(0)
    return total


@torch.no_grad()
def _keep_improved(cis, best_state: dict, improved: torch.Tensor, source=None) -> None:
    """Copy the parameters of the genes ``improved`` into ``best_state``: the heads' current
    ones, or those of ``source`` (a dict like ``best_state``).
    """
    if not bool(improved.any()):
        return
    for k, v in cis.named_parameters():
        mask = improved[cis.pair_gene] if k == "emb" else improved
        best_state[k][mask] = (v if source is None else source[k])[mask]
