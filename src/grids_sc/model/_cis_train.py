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

KEEP_RULES = ("validation", "crossfit", "shrink")


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
    keep_rule
        How a silent-start head's gain over the silent start is measured for
        ``keep_margin``. ``"validation"``: its best validation loss against the silent
        start's on the same validation cells (biased upwards by the choice of the best
        epoch). ``"crossfit"``: the validation cells are split into two halves (seeded;
        ``fit_cis_heads(val_halves=)``), each half picks the head's best epoch (or the
        silent start) and the other half scores it; the gain is the two halves' pooled loss
        reduction relative to the silent start's, and the head is kept only when it is above
        ``keep_margin``. Either way the kept head is the one of the best epoch on all the
        validation cells, so training and the kept weights do not depend on the rule.
        ``"shrink"``: as ``"crossfit"``, but a head below the margin is scaled (as a change
        from the silent start) by its cross-fitted least-squares scale on the halves that
        did not pick its epoch, clipped to ``[shrink_floor, 1]``; silent only at scale 0.
        The scale shrinks what the head adds to the prediction, and keeps the order of its
        peaks' effects.
    shrink_floor
        ``keep_rule="shrink"``: the smallest scale of a head that improved on the validation
        cells at some epoch (``0``: a head without cross-fitted signal is silenced).
    consistency
        Weight of the sign-consistency penalty (``0``: none). A head fit on observed cells
        is free to say anything about states no cell shows, such as a gene's window with
        most of its open peaks closed, and that is where a search of closing peaks goes. At
        each step one random window peak per gene is opened and closed in the batch's cells
        (its effect there, whose mean gives its direction) and in a random closing of them
        (each cell's open window peaks closed at a random rate drawn per cell); the penalty
        is how far the effects in the closings go against that direction (mean over cells,
        summed over genes). A peak's effect may change size with the other peaks of its
        window, also vanish (an OR partner closed), but not reverse its sign.
    """

    max_epochs: int = 300
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 30
    sparsity: float = 3e-3
    keep_margin: float = 0.0
    keep_rule: str = "validation"
    shrink_floor: float = 0.0
    consistency: float = 0.0

    def to_dict(self) -> dict:
        """The settings as a plain dict."""
        return asdict(self)


#: Monotone heads: the smallest output weight during training (see ``CisHeads.project_``).
MONOTONE_W2_FLOOR = 1e-3


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


def _batch_entries(w: sp.csr_matrix, idx: np.ndarray, device) -> tuple:
    """``(rows, cols, vals)``: the nonzeros of the window matrix's rows ``idx`` (rows
    numbered within the batch, columns are pairs).
    """
    sub = w[idx].tocoo()
    return (
        torch.from_numpy(sub.row.astype(np.int64)).to(device),
        torch.from_numpy(sub.col.astype(np.int64)).to(device),
        torch.from_numpy(sub.data.astype(np.float32)).to(device),
    )


def _pool_entries(cis, rows, cols, vals, n_cells: int) -> torch.Tensor:
    """Window sums ``[n_cells, n_genes, cis_dim]`` of a batch's window entries."""
    n_g = cis.n_genes
    flat = torch.zeros(n_cells * n_g, cis.config.cis_dim, device=vals.device)
    # index_select rather than emb[cols]: its backward (index_add) is deterministic on CPU,
    # the backward of advanced indexing (index_put with accumulate) is not
    flat = flat.index_add(
        0, rows * n_g + cis.pair_gene[cols], torch.index_select(cis.emb, 0, cols) * vals[:, None]
    )
    return cis.offset + flat.view(n_cells, n_g, -1)


def _pool_rows(module: CisSurrogate, w: sp.csr_matrix, idx: np.ndarray, device) -> torch.Tensor:
    return _pool_entries(module.cis, *_batch_entries(w, idx, device), len(idx))


def _sign_consistency(cis, entries, n_cells: int, s, z, gen: torch.Generator) -> torch.Tensor:
    """The sign-consistency penalty of :class:`CisTrainConfig` ``consistency`` on a batch
    (window sums ``s`` of its cells, their window ``entries`` and cell state ``z``).

    Only the heads' hidden layer depends on the window, linearly before the activation, so
    the four evaluations (the picked peak opened and closed, in the cells and in their
    closings) share one pre-activation of the observed cells: the state's part is computed
    once, a closing adds its window change and the picked peak its embedding's projection.
    """
    rows, cols, vals = entries
    dev = vals.device
    n_g = cis.n_genes
    counts = torch.bincount(cis.pair_gene, minlength=n_g)
    has = counts > 0
    if not bool(has.any()):
        return s.sum() * 0.0
    first = torch.cumsum(counts, 0) - counts
    draw = torch.rand(n_g, generator=gen, device=dev)
    pick = first + torch.minimum((draw * counts).long(), (counts - 1).clamp(min=0))
    pick = torch.where(has, pick, torch.zeros_like(pick))  # one window pair per gene
    # a random closing of each cell: its open window peaks closed at a rate drawn per cell
    rate = torch.rand(n_cells, generator=gen, device=dev)
    kept = torch.rand(len(rows), generator=gen, device=dev) >= rate[rows]
    # the picked pair's value in each cell, as observed and after the closing
    gene = cis.pair_gene[cols]
    own = pick[gene] == cols
    x_obs = torch.zeros(n_cells, n_g, device=dev)
    x_obs[rows[own], gene[own]] = vals[own]
    x_closed = x_obs * 0.0
    x_closed[rows[own & kept], gene[own & kept]] = vals[own & kept]
    genes = torch.arange(n_g, device=dev)
    w1 = cis.w1_cis(genes)  # [G, H, c]
    a_obs = cis.pre_activation(s, z)  # [n, G, H]
    shut = ~kept  # the closing's window change: minus the closed entries' embeddings
    gone = _pool_entries(cis, rows[shut], cols[shut], vals[shut], n_cells) - cis.offset
    a_closed = a_obs - torch.einsum("ntc,thc->nth", gone, w1)
    step = torch.einsum("tc,thc->th", cis.emb[pick], w1)  # the picked peak's projection
    w2 = cis.w2

    def effect(a, x):  # opening minus closing the picked peak, per cell and gene
        base = a - x[..., None] * step
        return ((cis.act(base + step) - cis.act(base)) * w2).sum(-1)

    with torch.no_grad():  # the direction is held fixed within the step: no graph for it
        direction = torch.sign(effect(a_obs, x_obs).mean(0))
    against = torch.relu(-direction * effect(a_closed, x_closed)) * has
    return against.mean(0).sum()


class _HeadsLoss(nn.Module):
    """The heads' loss on a batch of cells, as a module that owns the heads only (what
    ``DistributedDataParallel`` wraps; the shared part is frozen).
    """

    def __init__(
        self,
        module: CisSurrogate,
        w: sp.csr_matrix,
        sparsity: float,
        consistency: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.cis = module.cis
        self._surrogate = (module,)  # not a submodule
        self.w, self.sparsity, self.consistency = w, sparsity, float(consistency)
        self._gen = None
        if self.consistency > 0:  # its own generator: the rest of training is unchanged
            self._gen = torch.Generator(device=self.cis.emb.device).manual_seed(seed)

    def forward(self, idx: np.ndarray, z, y: torch.Tensor) -> torch.Tensor:
        cis = self.cis
        entries = _batch_entries(self.w, idx, y.device)
        s = _pool_entries(cis, *entries, len(idx))
        pred = cis(s, z)
        loss = ((pred - y) ** 2).mean(0).sum()
        if self.consistency > 0:
            loss = loss + self.consistency * _sign_consistency(
                cis, entries, len(idx), s, z, self._gen
            )
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
    val_halves: np.ndarray | None = None,
    halves_out: dict | None = None,
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
    val_halves
        Heads that start silent: ``[len(val_idx)]`` 0/1, the half of the validation cells
        each belongs to, for the ``"crossfit"`` keep rule (see :class:`CisTrainConfig`);
        ``None``: a seeded random half of ``val_idx`` each.
    halves_out
        Heads that start silent, for benchmarks: a dict that receives ``val_halves`` and
        ``states``, each half's best head parameters (the silent start where it never
        improved), as dicts of tensors like ``module.cis.state_dict()``.

    Returns
    -------
    dict
        ``train`` and ``val`` mean (over genes) losses per epoch, and ``best_epoch`` and
        ``best_val`` per gene (``best_epoch`` -1: a head that starts silent, as the LOCO
        heads do, and did not beat its start on the validation cells by ``keep_margin``, so
        it was set back to silent and adds nothing), and with a silent start ``silent_val``,
        each gene's validation loss of the silent start, ``crossfit_gain`` (the head's
        pooled relative loss reduction on each validation half at the best epoch of the
        other half: what the ``"crossfit"`` rule compares with ``keep_margin``) and
        ``half_gain`` (``[2, n_genes]``: the relative reduction on half 1 at half 0's best
        epoch, and on half 0 at half 1's).
    """
    if cfg.keep_rule not in KEEP_RULES:
        raise ValueError(f"keep_rule must be one of {KEEP_RULES}, not {cfg.keep_rule!r}")
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
    if cis.monotone:  # each peak's direction starts as its association with the gene
        _monotone_start(cis, w, y_t, z, np.asarray(train_idx), silent)
    loss_fn = _HeadsLoss(module, w, cfg.sparsity, cfg.consistency, seed)
    opt = make_adamw(loss_fn.parameters(), cfg.lr, cfg.weight_decay)
    step = parallel.wrap(loss_fn)
    batch_size = parallel.batch_size(cfg.batch_size)
    val_share = parallel.shard(np.asarray(val_idx))
    half_share = None
    if silent:  # each validation cell's half, for the cross-fitted keep rule
        if val_halves is None:  # its own generator: the training order is unchanged
            val_halves = np.random.default_rng([seed, 1]).permutation(len(val_idx)) % 2
        val_halves = np.asarray(val_halves)
        if val_halves.shape != (len(val_idx),) or not np.isin(val_halves, (0, 1)).all():
            raise ValueError("val_halves must hold 0 or 1 for each validation cell")
        half_share = parallel.shard(val_halves.astype(bool))
    n_g = cis.n_genes
    best = torch.full((n_g,), float("inf"), device=device)
    best_epoch = np.full(n_g, -1)
    wait = torch.zeros(n_g, dtype=torch.long, device=device)
    best_state = {k: v.detach().clone() for k, v in cis.named_parameters()}
    silent_state = silent_val = None
    val_args = (module, w, z, y_t, val_share, cfg.batch_size, device, parallel)
    base = None
    if silent:  # the silent start is every gene's first candidate: a head must beat it
        best, halves, base = _val_loss(*val_args, half_share)
        silent_val = best.clone()
        silent_state = {k: v.clone() for k, v in best_state.items()}
        # per half h: its best loss so far, and the other half's sums (squared error,
        # residual x head, head x head: the head as the change from the silent start) then
        silent_half, half_best, cross = halves, _half_loss(halves), halves.flip(0).clone()
        if halves_out is not None:
            half_states = [{k: v.clone() for k, v in silent_state.items()} for _ in range(2)]
    train_hist, val_hist = [], []
    bar = tqdm(
        range(cfg.max_epochs), desc="surrogate [cis heads]", disable=not progress, leave=False
    )
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
            cis.project_(MONOTONE_W2_FLOOR)  # monotone heads: back on their constraint
            total += float(loss.detach()) * len(idx)
        total, n = parallel.sum(torch.tensor([total, len(order)], dtype=torch.float64)).tolist()
        train_hist.append(total / max(n, 1) / max(n_g, 1))
        val, halves, _ = _val_loss(*val_args, half_share, base)
        val_hist.append(float(val.mean()))
        if silent:
            loss_h = _half_loss(halves)
            up = loss_h < half_best - 1e-6 * half_best.abs()
            half_best = torch.where(up, loss_h, half_best)
            cross = torch.where(up[:, None], halves.flip(0), cross)
            if halves_out is not None:
                for h in range(2):
                    _keep_improved(cis, half_states[h], up[h])
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
        # cross[h]: the other half's sums at half h's best epoch; its silent squared error
        other = silent_half.flip(0)[:, 0]
        half_gain = (other - cross[:, 0]) / other.clamp(min=1e-12)
        crossfit_gain = (other - cross[:, 0]).sum(0) / other.sum(0).clamp(min=1e-12)
        hh = cross[:, 2].sum(0)  # least-squares scale of the head on the other halves
        crossfit_alpha = torch.where(hh > 0, cross[:, 1].sum(0) / hh.clamp(min=1e-30), 0.0)
        scale = torch.ones_like(best)
        if cfg.keep_rule == "validation":
            weak = best > silent_val * (1 - cfg.keep_margin)
        else:
            weak = ~(crossfit_gain > cfg.keep_margin)
            if cfg.keep_rule == "shrink":  # a weak head shrunk, silent only without signal
                shrunk = crossfit_alpha.clamp(0.0, 1.0).clamp(min=cfg.shrink_floor)
                # a head that never beat the silent start is the silent start (scale 0)
                shrunk = torch.where(best < silent_val, shrunk, 0.0)
                scale = torch.where(weak, shrunk, scale)
                weak = weak & (scale <= 0)
        _keep_improved(cis, best_state, weak, source=silent_state)
        best = torch.where(weak, silent_val, best)
        best_epoch[weak.cpu().numpy()] = -1
        scale = torch.where(weak, 0.0, scale)
        _scale_heads(best_state, silent_state, scale)
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
        out["crossfit_gain"] = crossfit_gain.cpu().numpy()
        out["half_gain"] = half_gain.cpu().numpy()
        out["crossfit_alpha"] = crossfit_alpha.cpu().numpy()
        out["head_scale"] = scale.cpu().numpy()
        if halves_out is not None:
            halves_out.update(val_halves=val_halves, states=half_states)
    return out


@torch.no_grad()
def _monotone_start(cis, w: sp.csr_matrix, y_t: torch.Tensor, state, train_idx, silent) -> None:
    """Monotone heads: start each window peak's embedding in the direction of its
    association with its gene on the training cells (the sign of the covariance of the
    peak with what the cell state leaves of the gene: the gene's deviation from the state's
    prediction for heads that start silent, from its mean otherwise), keeping its
    magnitudes. A peak can still change direction in training, but a head of weak signal
    need not first undo a random one before its early stop.
    """
    y = y_t[torch.as_tensor(train_idx, device=y_t.device)]
    if silent and isinstance(state, tuple):
        y = y - state[1][torch.as_tensor(train_idx, device=y_t.device)]
    y = y - y.mean(0)
    dev = cis.emb.device
    rows, cols, vals = _batch_entries(w, train_idx, dev)
    cov = torch.zeros(cis.emb.shape[0], device=dev)
    cov.index_add_(0, cols, vals * y[rows, cis.pair_gene[cols]].to(dev))
    sign = torch.where(cov < 0, -1.0, 1.0)
    cis.emb.copy_(sign[:, None] * cis.emb.abs())


def _val_loss(module, w, z, y_t, val_share, batch_size, device, parallel, half=None, base=None):
    """Per-gene mean squared error over the validation cells of every rank; with ``half`` (a
    bool per cell of ``val_share``) also each half's sums ``[2, 3, n_genes]``: squared
    error, residual of ``base`` times the change from ``base`` and that change squared
    (``base``: predictions of the cells of ``val_share``; ``None``: this call's, returned
    third for the later calls).
    """
    sse, stats, pred = _per_gene_sse(module, w, z, y_t, val_share, batch_size, device, half, base)
    n_g = len(sse)
    parts = [sse, torch.tensor([len(val_share)], device=device, dtype=sse.dtype)]
    if half is not None:
        parts.append(stats.reshape(-1))
    tot = parallel.sum(torch.cat(parts))
    val = tot[:n_g] / max(float(tot[n_g]), 1)
    if half is None:
        return val, None, None
    stats = tot[n_g + 1 :].view(2, 3, n_g)
    if base is None:  # the sums are relative to this call's predictions
        stats[:, 1:] = 0.0
    return val, stats, pred


def _half_loss(stats: torch.Tensor) -> torch.Tensor:
    """``[2, n_genes]`` each half's squared error (what picks its best epoch)."""
    return stats[:, 0]


@torch.no_grad()
def _per_gene_sse(module, w, z, y_t, idx, batch_size, device, half=None, base=None):
    """Per-gene sum of squared errors over the cells ``idx``; with ``half`` (a bool per cell
    of ``idx``) the sums of :func:`_val_loss` per half and, without ``base``, the
    predictions ``[len(idx), n_genes]``.
    """
    cis = module.cis
    total = torch.zeros(cis.n_genes, device=device)
    stats = None if half is None else torch.zeros(2, 3, cis.n_genes, device=device)
    preds = []
    for start in range(0, len(idx), batch_size):
        b = np.asarray(idx[start : start + batch_size])
        it = torch.from_numpy(b).to(device)
        pred = cis(_pool_rows(module, w, b, device), _take(module, z, it))
        err = (pred - y_t[it]) ** 2
        total += err.sum(0)
        if half is None:
            continue
        if base is None:
            preds.append(pred)
            ref = pred
        else:
            ref = base[start : start + len(b)]
        h = torch.from_numpy(np.asarray(half[start : start + len(b)], dtype=bool)).to(device)
        d, r = pred - ref, y_t[it] - ref
        for k, sel in enumerate((~h, h)):
            stats[k, 0] += err[sel].sum(0)
            stats[k, 1] += (r[sel] * d[sel]).sum(0)
            stats[k, 2] += (d[sel] ** 2).sum(0)
    pred = torch.cat(preds) if preds else None
    return total, stats, pred


@torch.no_grad()
def _scale_heads(best_state: dict, silent_state: dict, scale: torch.Tensor) -> None:
    """Scale each gene's head, as the change from its silent start, by ``scale`` (1: as
    trained, 0: silent): the output layer and linear term times ``scale``, the constant
    moved that fraction of the way from the silent start's.
    """
    if bool((scale == 1).all()):
        return
    for k in ("w2", "lin"):
        best_state[k].mul_(scale.view(-1, *[1] * (best_state[k].dim() - 1)))
    b0 = silent_state["b2"]
    best_state["b2"].copy_(b0 + scale * (best_state["b2"] - b0))


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
