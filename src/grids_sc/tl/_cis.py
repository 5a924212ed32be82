"""The (gene, peak) windows of the cis surrogate, screened on the training cells."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from .._genome import peak_coordinates, window_pairs


def cis_windows(
    a_rna: AnnData,
    a_atac: AnnData,
    *,
    window: int,
    max_peaks: int | None,
    rna: str,
    atac: str,
    model: str = "cis",
) -> tuple[np.ndarray, np.ndarray]:
    """All (gene, peak) pairs with the peak within ``window`` bp of the gene body, sorted by
    gene; checks the settings and coordinates first.
    """
    if not {"chrom", "start", "end"} <= set(a_rna.var.columns):
        raise ValueError(
            f"model={model!r} needs gene coordinates: RNA modality {rna!r} has no "
            "var chrom/start/end; add them with grids.pp.annotate_genes() (same genome "
            "build as the peaks), or fit the paper's architecture with model='grids'"
        )
    if window < 0:
        raise ValueError(f"cis_window must be at least 0, got {window}")
    if max_peaks is not None and max_peaks < 1:
        raise ValueError(f"cis_peaks must be at least 1 or None, got {max_peaks}")
    pg, pp = window_pairs(peak_coordinates(a_atac, atac), a_rna.var, int(window))
    if not len(pg):
        raise ValueError(
            f"no peak of {atac!r} lies within {window} bp of any gene of {rna!r}: check that "
            "both use the same chromosome names and genome build"
        )
    return pg, pp


def screen_pairs(
    pg: np.ndarray,
    pp: np.ndarray,
    x: sp.csr_matrix,
    y: np.ndarray,
    max_peaks: int | None,
    covariates: np.ndarray | None = None,
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

    Notes
    -----
    With ``Q`` an orthonormal basis of ``[1, covariates]``, the residual of the gene is
    ``y - Q Q^T y`` and, for a peak column ``x_j``, ``x_j^T y_res`` and
    ``|x_j - Q Q^T x_j|^2 = |x_j|^2 - |Q^T x_j|^2`` need only sparse products: the screen is
    O(nnz) in the peaks, never a dense residual matrix.
    """
    if max_peaks is None:
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
        if hi - lo <= max_peaks:
            continue
        xs = xt[:, pos[lo:hi]]
        qx = np.asarray(xs.T @ q).T  # [k, W]
        x_norm = np.asarray(xs.multiply(xs).sum(0), dtype=np.float64).ravel() - (qx**2).sum(0)
        cov = xs.T @ y_res[:, g]
        r = np.abs(cov) / np.maximum(
            np.sqrt(np.maximum(x_norm, 0)) * np.linalg.norm(y_res[:, g]), 1e-12
        )
        top = np.argsort(-r, kind="stable")[:max_peaks]
        drop = np.ones(hi - lo, dtype=bool)
        drop[top] = False
        keep[lo:hi][drop] = False
    return pg[keep], pp[keep]
