"""Peak–gene links with calibrated confidence: cross-fitted cis heads, the mirror-statistic
null, Benjamini–Hochberg; and the correlation (LinkPeaks-style) links beside them.

How the confidence is made (``method="grids"``)
-----------------------------------------------
A surrogate's predicted effect of closing a peak is deterministic, so a paired test over cells
only says that the model uses the peak. The uncertainty that matters is the model's: would a
model fit on other cells give the peak the same effect? The cells are split into ``K = 2``
folds (stratified by group); on each fold the cis heads are refit (screen and heads, the
cell state kept), and each peak's effect is evaluated on the cells of the *other* fold. The
state cannot carry a window peak's effect from one fold to the other: the ``cis`` model's is
the ATAC encoder, fit on accessibility alone; a ``loco`` model's is trained on expression, but
a gene's state never reads the chromosome its window lies on. For a peak with
no role the two effects are independent noise, so the mirror statistic

    M = sign(t_1 t_2) min(|t_1|, |t_2|)

is symmetric about 0; a link must replicate (same sign, both large). The number of pairs with
``M <= -t`` estimates the number of null pairs with ``M >= t`` (data-splitting FDR control,
Dai et al. 2022), where ``t_k`` is fold ``k``'s effect of closing the peak alone plus its effect in
isolation (every other window peak closed: a redundant OR peak moves the gene only there).
The p-value of a pair is ``p = min(1, (1 + #{M_k <= -M}) / n)`` over
the ``n`` tested pairs of the call, and Benjamini–Hochberg over these p-values is the
mirror-statistic FDR procedure. Effects are the change through the gene's cis head (window
sums moved, the cell state held), relative to the group's mean prediction; a peak the heads
of a fold do not read has effect 0 there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import norm

from .._device import resolve_device
from ..attribution import correlation_z
from ..model._cis import CisConfig, CisSurrogate
from ..model._cis_train import CisTrainConfig, fit_cis_heads, shared_latent
from ..model._loco import LocoSurrogate
from ..model._loco_train import loco_cell_state
from ..model._screen import screen_pairs
from ._plan import Task
from ._selection import problems, search_task
from ._settings import SelectionSettings

Z95 = float(norm.ppf(0.975))
LOGICS = ("redundant", "cooperative", "independent", "")


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values of ``p`` (NaN kept)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    v = p[ok]
    n = len(v)
    if not n:
        return q
    order = np.argsort(v)
    ranked = v[order] * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def mirror_pvalues(m: np.ndarray) -> np.ndarray:
    """``p = min(1, (1 + #{M_k <= -M}) / n)`` for ``M > 0``, 1 otherwise (see module doc)."""
    m = np.asarray(m, dtype=np.float64)
    n = len(m)
    p = np.ones(n)
    if not n:
        return p
    neg = np.sort(-m[m < 0])  # |M| of the negative statistics, ascending
    pos = m > 0
    # number of negatives with |M_k| >= M_j
    count = len(neg) - np.searchsorted(neg, m[pos], side="left")
    p[pos] = np.minimum(1.0, (1.0 + count) / n)
    return p


# ---------------------------------------------------------------------------- cross-fitting
@dataclass
class CrossFit:
    """The cis surrogates of the folds and the fold of every cell."""

    modules: list
    fold: np.ndarray


def state_covariates(
    x: sp.csr_matrix, groups: np.ndarray | None, n_components: int = 20, seed: int = 0
) -> np.ndarray:
    """Cell-state covariates for the screen: the top singular vectors of the TF-IDF
    accessibility (LSI) and one indicator per group.
    """
    from scipy.sparse.linalg import svds

    x = sp.csr_matrix(x, dtype=np.float64)
    n, p = x.shape
    idf = np.log1p(n / np.maximum(np.asarray(x.sum(0)).ravel(), 1.0))
    tf = sp.diags(1.0 / np.maximum(np.asarray(x.sum(1)).ravel(), 1.0)) @ x
    m = sp.csr_matrix(tf @ sp.diags(idf))
    k = max(1, min(n_components, min(n, p) - 1))
    v0 = np.random.default_rng(seed).standard_normal(min(n, p))
    u, s, _ = svds(m, k=k, v0=v0)
    parts = [u * s]
    if groups is not None:
        labels = np.asarray(groups)
        levels = np.unique(labels)
        parts.append((labels[:, None] == levels[None, 1:]).astype(np.float64))
    return np.hstack(parts)


def fold_of_cells(n: int, strata: np.ndarray | None, n_folds: int, seed: int) -> np.ndarray:
    """Fold ``0..n_folds-1`` of each cell, balanced within each stratum."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(n, dtype=np.int64)
    labels = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    for s in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == s))
        fold[idx] = np.arange(len(idx)) % n_folds
    return fold


def crossfit(
    module: CisSurrogate | LocoSurrogate,
    cis_record: dict,
    x: sp.csr_matrix,
    y: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    fold: np.ndarray,
    *,
    seed: int,
    device,
    progress: bool,
    covariates: np.ndarray | None = None,
    min_z: float | None = 2.0,
) -> CrossFit:
    """Refit the screen and the cis heads of ``module`` on each fold's cells (15% of them for
    each gene's early stopping); the cell state is ``module``'s.

    The screen keeps only peaks with a partial correlation of at least ``min_z`` standard
    errors given ``covariates`` (cell-state summaries of the accessibility, the groups) and
    the model's state: for ``CisSurrogate`` the fold's ATAC latent is added to the
    covariates, for ``LocoSurrogate`` the screen reads what the LOCO state leaves of each
    gene (as in its fit). A peak that merely co-varies with a cell state the model misses
    stays out of the heads.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    loco = isinstance(module, LocoSurrogate)
    training = dict(cis_record.get("training", {}))
    train_cfg = CisTrainConfig(**{k: v for k, v in training.items() if k in _TRAIN_FIELDS})
    max_peaks = cis_record.get("max_peaks")
    max_peaks = None if max_peaks is None else int(max_peaks)
    rng = np.random.default_rng(seed)
    modules = []
    for k in range(int(fold.max()) + 1):
        inside = rng.permutation(np.flatnonzero(fold == k))
        n_val = max(1, int(round(0.15 * len(inside))))
        val, train = np.sort(inside[:n_val]), np.sort(inside[n_val:])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + k)
            x_train = x[train]
            cov = None if covariates is None else covariates[train]
            if loco:
                fold_module = _loco_fold(module, x_train, y[train], pairs, max_peaks, cov, min_z)
            else:
                fold_module = _cis_fold(module, x_train, y[train], pairs, max_peaks, cov, min_z,
                                        dev)  # fmt: skip
            fit_cis_heads(
                fold_module, x, y, train, val, train_cfg, device=dev, seed=seed + k,
                progress=progress,
            )  # fmt: skip
        modules.append(fold_module.eval())
    return CrossFit(modules, fold)


def _cis_fold(module, x_train, y_train, pairs, max_peaks, cov, min_z, dev):
    """A fold's ``CisSurrogate``: the screen given the ATAC latent, the encoder kept."""
    base = module.base
    z = shared_latent(base, x_train, dev).cpu().numpy()
    if cov is not None:
        z = np.hstack([z, cov])
    pg, pp = screen_pairs(*pairs, x_train, y_train, max_peaks, z, min_z=min_z)
    peak_chrom = base.atac_encoder.peak_chrom.detach().cpu()
    cis_cfg = CisConfig.from_dict(module.cis_config.to_dict())
    out = CisSurrogate(base.config, cis_cfg, peak_chrom, torch.from_numpy(pg), torch.from_numpy(pp))
    out.base.load_state_dict(base.state_dict())
    return out


def _loco_fold(module, x_train, y_train, pairs, max_peaks, cov, min_z):
    """A fold's ``LocoSurrogate``: the screen on what the LOCO state leaves of each gene,
    the state kept.
    """
    r = loco_cell_state(module, x_train, module.gene_chrom.device)[1].cpu().numpy()
    pg, pp = screen_pairs(*pairs, x_train, y_train - r, max_peaks, cov, min_z=min_z)
    return module.with_heads(torch.from_numpy(pg), torch.from_numpy(pp))


_TRAIN_FIELDS = set(CisTrainConfig.__dataclass_fields__)


@torch.no_grad()
def cis_effects(
    module, rows: sp.csr_matrix, gene_index: np.ndarray, peaks: np.ndarray, dev, chunk: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Effects of closing each peak through the genes' cis heads (cell state held), relative
    to the mean prediction: alone (the other peaks as observed; mean and standard error over
    the cells) and in isolation (every other window peak of the heads closed), which is where
    a redundant (OR) peak shows its effect.
    """
    eff = np.zeros(len(peaks))
    se = np.zeros(len(peaks))
    iso = np.zeros(len(peaks))
    model = module.incremental(rows, gene_index, 0.0, resolve_device(dev))
    if not len(model.interacting_features()):  # the heads read no peak: no cis effect
        return eff, se, iso
    base = model.expression(model.initial()).mean(0).clamp(min=1e-6)
    n = rows.shape[0]
    for i in range(0, len(peaks), chunk):
        alone, isolated, live = model.head_effects(torch.as_tensor(peaks[i : i + chunk]))
        if not live.any():
            continue
        d = (alone / base).mean(-1).double().cpu().numpy()  # [m, n]
        where = np.arange(i, min(i + chunk, len(peaks)))[live.numpy()]
        eff[where] = d.mean(1)
        se[where] = d.std(1, ddof=1) / np.sqrt(n) if n > 1 else 0.0
        iso[where] = (isolated / base).mean(-1).double().cpu().numpy().mean(1)
    return eff, se, iso


def pool_nearby(stat: np.ndarray, mid: np.ndarray, resolution: int) -> np.ndarray:
    """``stat`` summed over the peaks whose centres lie within ``resolution`` bp (columns are
    peaks): an element split over adjacent tiles counts once, whichever tile a fold's screen
    picked.
    """
    if resolution <= 0 or stat.shape[-1] < 2:
        return stat
    order = np.argsort(mid, kind="stable")
    m = mid[order]
    lo = np.searchsorted(m, m - resolution, side="left")
    hi = np.searchsorted(m, m + resolution, side="right")
    csum = np.concatenate([np.zeros((stat.shape[0], 1)), np.cumsum(stat[:, order], 1)], 1)
    pooled = np.empty_like(stat)
    pooled[:, order] = csum[:, hi] - csum[:, lo]
    return pooled


def crossfit_task(
    cf: CrossFit, x_all: sp.csr_matrix, task: Task, dev, mid: np.ndarray | None = None,
    resolution: int = 0,
) -> dict:  # fmt: skip
    """Each fold's cis effects of the task's window peaks on the group's cells of the other
    folds, the mirror statistic, the pooled effect and its standard error.
    """
    peaks = np.flatnonzero(task.candidates)
    effs, ses, isos = [], [], []
    for k, module in enumerate(cf.modules):
        cells = task.cells[cf.fold[task.cells] != k]
        e, s, i = cis_effects(module, x_all[cells], task.gene_index, peaks, dev)
        effs.append(e)
        ses.append(s)
        isos.append(i)
    e, s, iso = np.stack(effs), np.stack(ses), np.stack(isos)
    k = len(cf.modules)
    effect = e.mean(0)
    spread = e.var(0, ddof=1) / k if k > 1 else 0.0  # disagreement between the folds' fits
    se = np.sqrt((s**2).sum(0) / k**2 + spread)
    # the tested statistic: alone + isolated (singles count twice, OR and AND peaks once)
    stat = e + iso
    read = np.any(stat != 0, 0)  # a fold's heads read the peak
    if resolution > 0 and mid is not None:
        stat = np.where(read, pool_nearby(stat, mid[peaks], resolution), 0.0)
    same = np.where(np.all(stat > 0, 0) | np.all(stat < 0, 0), 1.0, -1.0)
    if k == 2:
        same = np.sign(stat).prod(0)
    mirror = same * np.abs(stat).min(0)
    return {
        "peak_index": peaks,
        "effect": effect,
        "se": se,
        "isolated": iso.mean(0),
        "mirror": mirror,
        "folds": stat.T,
    }


# ---------------------------------------------------------------------------- the GRIDS set
def link_set_task(module, rows, task: Task, settings: SelectionSettings, dev) -> dict:
    """The GRIDS set of a (gene, group) on the full surrogate (``explain``'s task), and for
    each of its peaks the effect of closing it alone and the loss when only it is restored,
    with intervals over the search cells. Runs on workers.
    """
    cells, _, probs = problems(module, rows, task, settings, dev)
    record, _ = search_task(cells, probs, task, settings)
    sel = np.asarray(record["selected_index"], dtype=np.int64)
    prob = probs["train"]
    t = torch.from_numpy(sel)
    before, full = prob.per_cell(t)
    base = np.maximum(before.mean(0), 1e-6)
    out = {k: np.zeros(len(sel)) for k in ("alone", "alone_se", "restored", "restored_se")}
    # each peak alone and each restored from the set: one exact move each
    none = torch.zeros(len(sel), 0, dtype=torch.long)
    ones = prob.move_predictions(t[:0], none, t[:, None])
    rests = prob.move_predictions(t, torch.arange(len(sel))[:, None], none)
    for i, (one, rest) in enumerate(zip(ones, rests)):
        d_alone = ((one - before) / base).mean(1)
        d_rest = ((rest - full) / base).mean(1)
        n = len(d_alone)
        out["alone"][i] = d_alone.mean()
        out["restored"][i] = -d_rest.mean()  # the effect lost when restored, signed as alone
        out["alone_se"][i] = d_alone.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
        out["restored_se"][i] = d_rest.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
    out["selected_index"] = sel
    out["set_delta"] = float(record["delta"].get("rel_of_means_train", np.nan))
    return out


def logic_of(alone, alone_se, restored, restored_se) -> np.ndarray:
    """``redundant`` where restoring a set peak loses more than closing it alone moves
    (OR: the others cover for it), ``cooperative`` where closing it alone moves more than
    restoring it gives back (AND), ``independent`` where both intervals exclude 0 and overlap;
    ``""`` otherwise (the intervals do not say).
    """
    a, r = np.abs(alone), np.abs(restored)
    a_lo, a_hi = a - Z95 * alone_se, a + Z95 * alone_se
    r_lo, r_hi = r - Z95 * restored_se, r + Z95 * restored_se
    out = np.full(len(a), "", dtype=object)
    out[(a_lo > 0) & (r_lo > 0)] = "independent"
    out[r_lo > a_hi] = "redundant"
    out[a_lo > r_hi] = "cooperative"
    return out


# ---------------------------------------------------------------------------- correlation
def correlation_task(rows: sp.csr_matrix, task: Task, seed: int) -> dict:
    """LinkPeaks-style links of a task: Pearson ``r`` of each window peak with the gene over
    the group's cells, its z-score against accessibility-matched background peaks (other
    chromosomes) and the two-sided normal p-value of ``z``; the interval is Fisher's.
    """
    peaks = np.flatnonzero(task.candidates)
    y = task.inputs["expression"]
    sd = y.std(0)
    y = ((y - y.mean(0)) / np.where(sd > 0, sd, 1.0)).mean(1)
    r, z = correlation_z(rows, y, peaks, task.inputs["background"], seed=seed)
    n = rows.shape[0]
    half = Z95 / np.sqrt(max(n - 3, 1))
    fz = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return {
        "peak_index": peaks,
        "effect": r,
        "se": np.full(len(r), 1.0 / np.sqrt(max(n - 3, 1))),
        "low": np.tanh(fz - half),
        "high": np.tanh(fz + half),
        "pvalue": 2.0 * norm.sf(np.abs(z)),
        "z": z,
    }
