"""Build time, size and peak memory of :func:`grids_sc.datasets.synthetic_multiome`.

Usage::

    python benchmarks/bench_simulator.py [--cells 10000 --peaks 100000 --genes 2000]
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

import numpy as np


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024**2 if sys.platform == "darwin" else rss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--peaks", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atac-counts", action="store_true")
    parser.add_argument(
        "--truth", action="store_true", help="also time true_expression() on all cells"
    )
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import grids_sc as grids

    t_import = time.perf_counter() - t0
    rss_import = _peak_rss_mb()

    t0 = time.perf_counter()
    mdata = grids.datasets.synthetic_multiome(
        args.cells, args.peaks, args.genes, seed=args.seed, atac_counts=args.atac_counts
    )
    t_build = time.perf_counter() - t0
    rss_build = _peak_rss_mb()

    atac, rna = mdata["atac"], mdata["rna"]
    units = mdata.uns["simulation"]["units"]
    atac_density = atac.X.nnz / (atac.n_obs * atac.n_vars)
    rna_density = rna.layers["counts"].nnz / (rna.n_obs * rna.n_vars)
    res = {
        "cells": args.cells,
        "peaks": args.peaks,
        "genes": args.genes,
        "build_s": t_build,
        "import_s": t_import,
        "atac_nnz": int(atac.X.nnz),
        "atac_density": atac_density,
        "rna_nnz": int(rna.layers["counts"].nnz),
        "rna_density": rna_density,
        "units": len(units["unit"]),
        "planted_peaks": int((atac.var["cre_unit"] >= 0).sum()),
        "peak_rss_mb_import": rss_import,
        "peak_rss_mb": rss_build,
    }
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"import grids_sc           {t_import:8.2f} s")
    print(f"build                     {t_build:8.2f} s")
    print(f"ATAC nnz                  {atac.X.nnz:>12,d}  (density {atac_density:.4f})")
    print(f"RNA nnz                   {res['rna_nnz']:>12,d}  (density {rna_density:.4f})")
    print(f"units / planted peaks     {res['units']:>8,d} / {res['planted_peaks']:,d}")
    print(f"peak RSS after import     {rss_import:8.0f} MB")
    print(f"peak RSS after build      {rss_build:8.0f} MB")
    if args.truth:
        t0 = time.perf_counter()
        y = grids.datasets.true_expression(mdata)
        res["truth_s"] = time.perf_counter() - t0
        res["peak_rss_mb_truth"] = _peak_rss_mb()
        print(f"true_expression {y.shape}  {res['truth_s']:8.2f} s")
        print(f"peak RSS after truth      {res['peak_rss_mb_truth']:8.0f} MB")
    print(
        f"SUMMARY {args.cells}x{args.peaks}x{args.genes}: build {t_build:.2f} s, "
        f"ATAC nnz {atac.X.nnz:,d} ({100 * atac_density:.2f}%), peak RSS {rss_build:.0f} MB"
    )
    return res


if __name__ == "__main__":
    main()
