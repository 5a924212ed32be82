"""Multi-output ridge regression from sparse accessibility: the linear baseline of fidelity.

Solved exactly for all genes at once, in the dual (kernel) form when there are fewer cells
than peaks and in the primal form otherwise, with the penalty chosen on validation cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def pearson_per_column(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``a`` with the same column of ``b`` (NaN if constant)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / den
    r[den <= 1e-12] = np.nan
    return r


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


class RidgeFit:
    """Ridge regression of ``y`` on ``x`` with an intercept, for several penalties at once."""

    def __init__(self, x: sp.spmatrix | np.ndarray, y: np.ndarray) -> None:
        x = sp.csr_matrix(x, dtype=np.float64)
        self.x = x
        self.mu = np.asarray(x.mean(0)).ravel()
        self.ybar = y.mean(0)
        yc = y - self.ybar
        n, p = x.shape
        self.dual = n < p
        if self.dual:
            k = _dense(x @ x.T)
            xm = x @ self.mu
            kc = k - xm[:, None] - xm[None, :] + self.mu @ self.mu
            self.s, self.u = np.linalg.eigh(kc)
            self.uty = self.u.T @ yc
            self.xm = xm
        else:
            xc_t_xc = _dense(x.T @ x) - n * np.outer(self.mu, self.mu)
            self.s, self.u = np.linalg.eigh(xc_t_xc)
            self.uty = self.u.T @ (x.T @ yc - np.outer(self.mu, yc.sum(0)))

    def predict(self, x_new: sp.spmatrix | np.ndarray, alpha: float) -> np.ndarray:
        """Predictions for new cells at penalty ``alpha``."""
        x_new = sp.csr_matrix(x_new, dtype=np.float64)
        coef = self.u @ (self.uty / (np.clip(self.s, 0, None) + alpha)[:, None])
        if self.dual:
            k_new = _dense(x_new @ self.x.T)
            xn_mu = x_new @ self.mu
            kc_new = k_new - xn_mu[:, None] - self.xm[None, :] + self.mu @ self.mu
            return kc_new @ coef + self.ybar
        return x_new @ coef - self.mu @ coef + self.ybar


def ridge_predict(
    x_train, y_train, x_val, y_val, x_test, alphas: Sequence[float] = (1, 10, 100, 1000, 1e4)
) -> tuple[np.ndarray, float]:
    """Fit ridge on train cells, pick the penalty by validation Pearson, predict test cells."""
    fit = RidgeFit(x_train, y_train)
    scores = []
    for a in alphas:
        r = pearson_per_column(fit.predict(x_val, a), y_val)
        scores.append(np.nanmedian(r) if np.any(np.isfinite(r)) else -np.inf)
    best = float(alphas[int(np.argmax(scores))])
    return fit.predict(x_test, best), best
