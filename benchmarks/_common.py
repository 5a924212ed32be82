"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp


def random_atac(n_cells: int, n_peaks: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """A random binary CSR matrix with about ``density`` open entries."""
    rng = np.random.default_rng(seed)
    return sp.random(
        n_cells, n_peaks, density=density, format="csr", random_state=rng, dtype=np.float32
    ).ceil()


def chromosomes(n_peaks: int, n_chrom: int) -> np.ndarray:
    """Chromosome code per peak, peaks split into ``n_chrom`` contiguous blocks."""
    return np.minimum(np.arange(n_peaks) * n_chrom // n_peaks, n_chrom - 1).astype(np.int64)


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def peak_rss_gb() -> float:
    """Peak resident memory of this process in GB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
