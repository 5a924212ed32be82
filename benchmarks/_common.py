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


def pbmc_fitted(path: str | None, **fit_kwargs):
    """The shipped PBMC tiles, binarised, with a surrogate fit by
    ``fit_surrogate(groupby='celltype', seed=0, **fit_kwargs)``: read from ``path`` when that
    file exists (so runs and parts of a long run share one fit), else fitted and written to it.
    """
    import os

    import mudata

    import grids_sc as grids

    if path and os.path.exists(path):
        print(f"surrogate read from {path}")
        return mudata.read_h5mu(path)
    m = grids.datasets.pbmc10k_tiles()
    grids.pp.binarize(m)
    settings = {"groupby": "celltype", "seed": 0, "progress": False, **fit_kwargs}
    t = time.perf_counter()
    grids.tl.fit_surrogate(m, **settings)
    print(f"surrogate ({settings}) fit in {time.perf_counter() - t:.0f} s")
    if path:
        m.write(path)
    return m


def fit_options(pairs: list[str]) -> dict:
    """``--fit k=v`` pairs as keyword arguments of ``fit_surrogate``: each value None, an
    int, a float or the string.
    """
    out = {}
    for kv in pairs:
        k, v = kv.split("=", 1)
        out[k] = None if v == "None" else v
        for cast in (int, float):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                pass
    return out
