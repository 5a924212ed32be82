"""Scale-out of ``grids.tl.explain`` on a local Dask cluster, and a projection to an atlas.

    python benchmarks/bench_scaleout.py [--workers 2] [--genes 4] [--cells 1500] [--peaks 3000]

One cis surrogate is fit on the simulator (``--genes`` genes, 3 cell types), then ``explain``
runs every (gene, cell type) task (12 by default: 250 kb window, L=5, pair moves, at most 60
steps) three ways: serially with torch's default threads, serially with 1 thread, and on a
``LocalCluster(n_workers=--workers, threads_per_worker=1, processes=True)``. The cluster's
start and a one-task warm-up (workers importing the package and caching the surrogate) are
timed apart from the run. The Dask results are checked equal to the serial ones.

From the measured 1-thread cost per task ``c`` and the Dask run's overhead per task
``o = (workers * T_dask - n_tasks * c) / n_tasks`` (worker time not spent computing: transfer,
scheduling, result merge), the wall time of 2,000 genes x 20 cell types on 100 workers is
projected as ``40,000 * (c' + o) / 100`` for ``c' = c`` (this data size) and for ``c'`` = 50 s,
the full explain measured at 1,000 search cells x 100,000 peaks (benchmarks/README.md,
``bench_search.py``), assuming the tasks are independent, each worker runs one task at a time
on one core, and the per-task overhead stays as measured here.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import grids_sc as grids

ATLAS_TASKS, ATLAS_WORKERS = 2_000 * 20, 100
ATLAS_TASK_S = 50.0  # full explain, 1,000 search cells x 100,000 peaks (bench_search.py)


def _explain(m, executor, genes):
    kw = dict(L=5, groupby="celltype", window=250_000, n_steps=60, progress=False)
    t = time.perf_counter()
    grids.tl.explain(m, genes, executor=executor, **kw)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--genes", type=int, default=4)
    parser.add_argument("--cells", type=int, default=1500)
    parser.add_argument("--peaks", type=int, default=3000)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    warnings.filterwarnings("ignore", category=UserWarning)
    m = grids.datasets.synthetic_multiome(
        n_cells=args.cells, n_peaks=args.peaks, n_genes=args.genes, n_celltypes=3, seed=0
    )
    t = time.perf_counter()
    grids.tl.fit_surrogate(m, groupby="celltype", max_epochs=10, cis_max_epochs=60, progress=False)
    print(f"fit: {time.perf_counter() - t:.1f} s")
    genes = list(m["rna"].var_names)
    n_tasks = len(genes) * m.obs["celltype"].nunique()

    threads = torch.get_num_threads()
    serial = m.copy()
    t_serial = _explain(serial, None, genes)
    torch.set_num_threads(1)
    t_serial1 = _explain(m.copy(), None, genes)
    torch.set_num_threads(threads)

    t = time.perf_counter()
    with LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, Client(cluster) as client:  # fmt: skip
        t_start = time.perf_counter() - t
        warm = m.copy()
        t_warm = time.perf_counter()
        grids.tl.explain(warm, genes[0], L=5, groupby="celltype", groups=["type0"],
                         window=250_000, n_steps=1, executor=client, progress=False)  # fmt: skip
        t_warm = time.perf_counter() - t_warm
        dist = m.copy()
        t_dask = _explain(dist, client, genes)
    same = all(
        np.array_equal(rec["selected"], dist.uns["grids"]["explain"][k]["selected"])
        and rec["delta"] == dist.uns["grids"]["explain"][k]["delta"]
        for k, rec in serial.uns["grids"]["explain"].items()
    )

    c = t_serial1 / n_tasks
    overhead = max(0.0, (args.workers * t_dask - n_tasks * c) / n_tasks)
    print(f"data: {args.cells} cells x {args.peaks} peaks x {args.genes} genes; {n_tasks} tasks")
    print(f"serial ({threads} torch threads): {t_serial:.1f} s")
    print(f"serial (1 torch thread):  {t_serial1:.1f} s  ({c:.2f} s per task)")
    print(f"dask start {t_start:.1f} s, warm-up {t_warm:.1f} s (not counted below)")
    print(f"dask ({args.workers} workers x 1 thread): {t_dask:.1f} s; results equal: {same}")
    print(
        f"speed-up: {t_serial / t_dask:.2f}x vs serial ({threads} threads), "
        f"{t_serial1 / t_dask:.2f}x vs serial (1 thread); "
        f"overhead {overhead * 1e3:.0f} ms per task"
    )
    for label, cost in (("this data size", c), ("1,000 cells x 100,000 peaks", ATLAS_TASK_S)):
        hours = ATLAS_TASKS * (cost + overhead) / ATLAS_WORKERS / 3600
        print(
            f"projection, 2,000 genes x 20 types on {ATLAS_WORKERS} workers at {label} "
            f"({cost:.2f} s/task + {overhead:.2f} s overhead): {hours:.2f} h "
            f"(one worker: {hours * ATLAS_WORKERS / 24:.1f} days)"
        )


if __name__ == "__main__":
    main()
