"""The screen of each gene's window peaks before its cis head is fit."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def screen_pairs(
    pg: np.ndarray,
    pp: np.ndarray,
    x: sp.csr_matrix,
    y: np.ndarray,
    max_peaks: int | None,
    covariates: np.ndarray | None = None,
    min_z: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_peaks`` window peaks per gene: those with the largest absolute
    partial correlation with the gene given ``covariates`` (plus an intercept).

    Parameters
    ----------
    pg, pp
        (gene, peak) window pairs sorted by gene.
    x, y
        Accessibility ``[n, peaks]`` and expression ``[n, genes]`` of the screening cells.
    max_peaks
        Peaks kept per gene (``None``: all).
    covariates
        ``[n, k]`` cell-state covariates, e.g. the shared ATAC latent. A peak that is open in
        the cell types where a gene is high correlates with the gene without regulating it;
        given the cell state, only the within-state association is left, which is what a
        cis-regulatory element shows. ``None``: plain Pearson correlation.
    min_z
        Also drop peaks whose partial correlation ``r`` has ``|r| sqrt(n - k - 1) < min_z``
        (``k`` covariates): no weak peak enters a head, where it could stand in for a cell
        state the covariates miss. ``None``: keep the top ``max_peaks`` whatever their
        strength.

    Notes
    -----
    With ``Q`` an orthonormal basis of ``[1, covariates]``, the residual of the gene is
    ``y - Q Q^T y`` and, for a peak column ``x_j``, ``x_j^T y_res`` and
    ``|x_j - Q Q^T x_j|^2 = |x_j|^2 - |Q^T x_j|^2`` need only sparse products: the screen is
    O(nnz) in the peaks, never a dense residual matrix.
    """
    if max_peaks is None and min_z is None:
        return pg, pp
    n = x.shape[0]
    base = np.ones((n, 1))
    if covariates is not None:
        base = np.hstack([base, np.asarray(covariates, dtype=np.float64)])
    q, _ = np.linalg.qr(base)
    cols, pos = np.unique(pp, return_inverse=True)  # only the window peaks, as CSC
    xt = sp.csc_matrix(sp.csr_matrix(x)[:, cols], dtype=np.float32)
    yt = np.asarray(y, dtype=np.float64)
    y_res = yt - q @ (q.T @ yt)  # [n, genes]
    keep = np.ones(len(pg), dtype=bool)
    bounds = np.searchsorted(pg, np.arange(yt.shape[1] + 1))
    for g in range(yt.shape[1]):
        lo, hi = bounds[g], bounds[g + 1]
        if hi - lo <= (max_peaks or 0) and min_z is None:
            continue
        xs = xt[:, pos[lo:hi]]
        qx = np.asarray(xs.T @ q).T  # [k, W]
        x_norm = np.asarray(xs.multiply(xs).sum(0), dtype=np.float64).ravel() - (qx**2).sum(0)
        cov = xs.T @ y_res[:, g]
        r = np.abs(cov) / np.maximum(
            np.sqrt(np.maximum(x_norm, 0)) * np.linalg.norm(y_res[:, g]), 1e-12
        )
        top = np.argsort(-r, kind="stable")[:max_peaks]
        if min_z is not None:
            top = top[r[top] * np.sqrt(max(n - q.shape[1], 1)) >= min_z]
        drop = np.ones(hi - lo, dtype=bool)
        drop[top] = False
        keep[lo:hi][drop] = False
    return pg[keep], pp[keep]
