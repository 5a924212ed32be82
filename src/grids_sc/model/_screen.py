"""The screen of each gene's window peaks before its cis head is fit."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

SCREENS = ("marginal", "stepwise")


def screen_pairs(
    pg: np.ndarray,
    pp: np.ndarray,
    x: sp.csr_matrix,
    y: np.ndarray,
    max_peaks: int | None,
    covariates: np.ndarray | None = None,
    min_z: float | None = None,
    method: str = "marginal",
) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most ``max_peaks`` window peaks per gene, those most associated with the gene
    given ``covariates`` (plus an intercept).

    Parameters
    ----------
    pg, pp
        (gene, peak) window pairs sorted by gene.
    x, y
        Accessibility ``[n, peaks]`` and expression ``[n, genes]`` of the screening cells.
    max_peaks
        Peaks kept per gene (``None``: all, or, with ``method="stepwise"``, as many as pass
        ``min_z``).
    covariates
        ``[n, k]`` cell-state covariates, e.g. the shared ATAC latent. A peak that is open in
        the cell types where a gene is high correlates with the gene without regulating it;
        given the cell state, only the within-state association is left, which is what a
        cis-regulatory element shows. ``None``: plain Pearson correlation.
    min_z
        Also drop peaks whose partial correlation ``r`` has ``|r| sqrt(n - k - 1) < min_z``
        (``k`` covariates, plus the peaks already kept with ``method="stepwise"``): no weak
        peak enters a head, where it could stand in for a cell state the covariates miss.
        ``None``: keep the top ``max_peaks`` whatever their strength.
    method
        ``"marginal"``: rank every window peak by its partial correlation with the gene
        given the covariates alone. ``"stepwise"``: forward selection; each next peak is the
        one with the largest partial correlation given the covariates *and the peaks
        already kept*, so a peak that only duplicates a kept one (e.g. co-open with it)
        falls back, and one whose effect shows once a kept peak is accounted for (the
        second peak of a redundant pair, a weak peak masked by a strong one) comes forward.

    Notes
    -----
    With ``Q`` an orthonormal basis of ``[1, covariates]``, the residual of the gene is
    ``y - Q Q^T y`` and, for a peak column ``x_j``, ``x_j^T y_res`` and
    ``|x_j - Q Q^T x_j|^2 = |x_j|^2 - |Q^T x_j|^2`` need only sparse products: the screen is
    O(nnz) in the peaks, never a dense residual matrix. The stepwise screen needs, per gene,
    the ``W x W`` Gram matrix of the residualised window peaks, ``X^T X - (Q^T X)^T Q^T X``
    (again sparse products), and sweeps each kept peak out of it and out of the peaks'
    covariances with the gene: ``O(nnz + W^2 (k + max_peaks))`` per gene.
    """
    if method not in SCREENS:
        raise ValueError(f"method={method!r}: the screen is one of {SCREENS}.")
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
    dof = max(n - q.shape[1], 1)
    for g in range(yt.shape[1]):
        lo, hi = bounds[g], bounds[g + 1]
        if hi - lo <= (max_peaks or 0) and min_z is None:
            continue
        xs = xt[:, pos[lo:hi]]
        qx = np.asarray(xs.T @ q).T  # [k, W]
        cov = np.asarray(xs.T @ y_res[:, g], dtype=np.float64).ravel()
        if method == "stepwise":
            gram = np.asarray((xs.T @ xs).toarray(), dtype=np.float64) - qx.T @ qx
            top = _forward(gram, cov, float(y_res[:, g] @ y_res[:, g]), max_peaks, min_z, dof)
        else:
            x_norm = np.asarray(xs.multiply(xs).sum(0), dtype=np.float64).ravel() - (qx**2).sum(0)
            r = np.abs(cov) / np.maximum(
                np.sqrt(np.maximum(x_norm, 0)) * np.linalg.norm(y_res[:, g]), 1e-12
            )
            top = np.argsort(-r, kind="stable")[:max_peaks]
            if min_z is not None:
                top = top[r[top] * np.sqrt(dof) >= min_z]
        drop = np.ones(hi - lo, dtype=bool)
        drop[top] = False
        keep[lo:hi][drop] = False
    return pg[keep], pp[keep]


def _forward(
    gram: np.ndarray,
    cov: np.ndarray,
    yy: float,
    max_peaks: int | None,
    min_z: float | None,
    dof: int,
) -> np.ndarray:
    """Forward selection on a Gram matrix: the indices kept, in the order they entered.

    ``gram`` ``[W, W]`` and ``cov`` ``[W]`` are the residualised peaks' inner products with
    each other and with the residualised gene, ``yy`` the gene's residual sum of squares. Each
    step takes the peak of largest absolute partial correlation given the peaks taken, then
    sweeps it out (``gram``, ``cov`` and ``yy`` become those of the residuals on it); a peak
    whose residual variance falls below ``1e-6`` of its own (a duplicate of kept peaks) is
    never taken.
    """
    gram, cov = gram.copy(), cov.copy()
    w = len(cov)
    limit = w if max_peaks is None else min(max_peaks, w)
    floor = np.maximum(np.diag(gram), 0) * 1e-6
    free = np.diag(gram) > 1e-12
    taken: list[int] = []
    while len(taken) < limit and free.any() and yy > 0:
        var = np.diag(gram)
        ok = free & (var > floor)
        if not ok.any():
            break
        r = np.where(ok, np.abs(cov) / np.sqrt(np.maximum(var, 1e-300) * yy), -1.0)
        j = int(np.argmax(r))
        if min_z is not None and r[j] * np.sqrt(max(dof - len(taken), 1)) < min_z:
            break
        taken.append(j)
        free[j] = False
        gj, cj = gram[:, j].copy(), cov[j]
        gram -= np.outer(gj, gj) / gj[j]
        cov -= gj * (cj / gj[j])
        yy -= cj * cj / gj[j]
    return np.asarray(taken, dtype=np.int64)
