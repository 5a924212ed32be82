"""Peak–gene correlation with an accessibility-matched background (no surrogate needed).

What analysts use today (Signac's ``LinkPeaks``, ArchR's peak-to-gene links): the Pearson
correlation ``r_j`` of each candidate peak's accessibility with the gene's expression over the
group's cells, turned into a z-score against background peaks on other chromosomes (which
cannot regulate the gene in cis; with one chromosome, peaks outside the gene's window) with
matched accessibility:
``z_j = (r_j - mean(r_bg)) / sd(r_bg)``. Signac matches background peaks on GC content,
accessibility and length; GC content needs a genome sequence, which the package does not
ship, so peaks are matched on accessibility (the fraction of cells in which they are open).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _pearson(x: sp.csc_matrix, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of sparse ``x`` with ``y`` (0 for constants)."""
    n = x.shape[0]
    yc = y - y.mean()
    mx = np.asarray(x.mean(0)).ravel()
    ex2 = np.asarray(x.multiply(x).mean(0)).ravel()
    sx = np.sqrt(np.maximum(ex2 - mx**2, 0.0))
    cov = np.asarray(x.T @ yc).ravel() / n
    sy = yc.std()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / (sx * sy)
    return np.where((sx > 0) & (sy > 0), r, 0.0)


def correlation_z(
    x: sp.spmatrix,
    y: np.ndarray,
    features: np.ndarray,
    background: np.ndarray,
    *,
    n_background: int = 200,
    n_bins: int = 20,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Correlation ``r`` and background z-score of each candidate peak.

    Parameters
    ----------
    x
        ``[cells, peaks]`` accessibility of the group's cells.
    y
        ``[cells]`` expression of the gene (or the mean standardised expression of a set).
    features
        Candidate peak indices.
    background
        Boolean mask of the peaks that may serve as background: those that cannot regulate
        the gene in cis (other chromosomes; with a single chromosome, peaks outside the
        gene's window).
    n_background, n_bins, seed
        Background peaks per accessibility bin (quantile bins of the candidates' own
        accessibility; every candidate of a bin shares its background), bins, seed.

    Returns
    -------
    r, z
        Arrays over ``features``.
    """
    x = sp.csc_matrix(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    features = np.asarray(features, dtype=np.int64)
    r = _pearson(x[:, features], y)
    access = np.asarray(x.mean(0)).ravel()
    pool = np.flatnonzero(np.asarray(background, dtype=bool) & (access > 0))
    if len(pool) < 2:
        raise ValueError(
            "correlation needs background peaks that cannot regulate the gene in cis (other "
            "chromosomes, or outside its window); the data have fewer than 2 accessible ones"
        )
    edges = np.unique(np.quantile(access[pool], np.linspace(0, 1, n_bins + 1)))
    pool_bin = np.clip(np.searchsorted(edges, access[pool], side="right") - 1, 0, len(edges) - 2)
    feat_bin = np.clip(
        np.searchsorted(edges, access[features], side="right") - 1, 0, len(edges) - 2
    )
    rng = np.random.default_rng(seed)
    z = np.zeros(len(features))
    cache: dict[int, tuple[float, float]] = {}
    for b in np.unique(feat_bin):
        members = pool[pool_bin == b]
        if len(members) < 2:
            members = pool
        bg = rng.choice(members, min(n_background, len(members)), replace=False)
        r_bg = _pearson(x[:, bg], y)
        cache[int(b)] = (float(r_bg.mean()), float(max(r_bg.std(), 1e-12)))
    for i, b in enumerate(feat_bin):
        mu, sd = cache[int(b)]
        z[i] = (r[i] - mu) / sd
    return r, z
