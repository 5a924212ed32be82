"""The (gene, peak) windows of the cis surrogate, screened on the training cells."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ._windows import peak_coordinates, window_pairs


def cis_pairs(
    a_rna: AnnData,
    a_atac: AnnData,
    x: sp.csr_matrix,
    y: np.ndarray,
    train_idx: np.ndarray,
    *,
    window: int,
    max_peaks: int | None,
    rna: str,
    atac: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(gene, peak) pairs for the cis heads: peaks within ``window`` bp of each gene body,
    at most ``max_peaks`` per gene, keeping those with the largest absolute Pearson
    correlation with the gene on the training cells.
    """
    if not {"chrom", "start", "end"} <= set(a_rna.var.columns):
        raise ValueError(
            f"model='cis' needs gene coordinates: RNA modality {rna!r} has no var "
            "chrom/start/end; add them with grids.pp.annotate_genes()"
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
    if max_peaks is None:
        return pg, pp
    xt = sp.csc_matrix(x[np.sort(train_idx)], dtype=np.float64)
    yt = np.asarray(y[np.sort(train_idx)], dtype=np.float64)
    n = xt.shape[0]
    keep = np.ones(len(pg), dtype=bool)
    bounds = np.searchsorted(pg, np.arange(a_rna.n_vars + 1))
    for g in range(a_rna.n_vars):
        lo, hi = bounds[g], bounds[g + 1]
        if hi - lo <= max_peaks:
            continue
        peaks = pp[lo:hi]
        xs = xt[:, peaks]
        mx = np.asarray(xs.mean(0)).ravel()
        sx = np.sqrt(np.maximum(np.asarray(xs.multiply(xs).mean(0)).ravel() - mx**2, 0))
        yg = yt[:, g]
        cov = xs.T @ yg / n - mx * yg.mean()
        r = np.abs(cov) / np.maximum(sx * yg.std(), 1e-12)
        top = np.argsort(-r, kind="stable")[:max_peaks]
        drop = np.ones(hi - lo, dtype=bool)
        drop[top] = False
        keep[lo:hi][drop] = False
    return pg[keep], pp[keep]
