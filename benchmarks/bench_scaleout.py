"""Scale-out of ``grids.tl.explain`` on a local Dask cluster, and a projection to an atlas.

    python benchmarks/bench_scaleout.py [--workers 2] [--genes 4] [--cells 3000] [--peaks 10000]

One cis surrogate is fit on the simulator (``--genes`` genes, 3 cell types), then ``explain``
runs every (gene, cell type) task (12 by default: 250 kb window, L=5, pair moves, at most 60
steps) three ways: serially with torch's default threads, serially with 1 thread, and on a
``LocalCluster(n_workers=--workers, threads_per_worker=1, processes=True)``. The cluster's
start and a warm-up (every worker importing the package; one task per cell type, so the
workers cache the surrogate) are timed apart from the run. The Dask results are checked
equal to the serial ones.

The Dask task stream gives each task's compute and transfer time on the workers. From the
measured serial 1-thread cost per task ``c`` and the per-task overhead ``o`` (Dask's round
trip of an empty task + the mean transfer time of a task's inputs), the wall time of 2,000
genes x 20 cell types on 100 workers is projected as ``40,000 * (c' + o) / 100`` for
``c' = c`` (this data size) and for ``c'`` = 50 s, the full explain measured at 1,000 search
cells x 100,000 peaks (benchmarks/README.md, ``bench_search.py``), assuming the tasks are
independent, each worker runs one task at a time on a core of its own, and the per-task
overhead stays as measured here.
"""

from __future__ import annotations

import argparse
import importlib
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


def _noop(i):
    return i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--genes", type=int, default=4)
    parser.add_argument("--cells", type=int, default=3000)
    parser.add_argument("--peaks", type=int, default=10000)
    args = parser.parse_args()
    from distributed import Client, LocalCluster, get_task_stream

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
        t_warm = time.perf_counter()  # every worker imports the package and caches the model
        client.run(importlib.import_module, "grids_sc._engine._executor")
        grids.tl.explain(m.copy(), genes[0], L=5, groupby="celltype", window=250_000,
                         n_steps=1, executor=client, progress=False)  # fmt: skip
        t_warm = time.perf_counter() - t_warm
        dist = m.copy()
        with get_task_stream(client) as stream:
            t_dask = _explain(dist, client, genes)
        phases = [
            {s["action"]: s["stop"] - s["start"] for s in r["startstops"]}
            for r in stream.data
            if str(r["key"]).startswith("grids-")
        ]
        compute = float(np.mean([p.get("compute", 0.0) for p in phases]))
        transfer = float(np.mean([p.get("transfer", 0.0) for p in phases]))
        t = time.perf_counter()  # the scheduler's own cost: round trips of empty tasks
        client.gather(client.map(_noop, range(400), pure=False))
        noop = (time.perf_counter() - t) * args.workers / 400
    same = all(
        np.array_equal(rec["selected"], dist.uns["grids"]["explain"][k]["selected"])
        and rec["delta"] == dist.uns["grids"]["explain"][k]["delta"]
        for k, rec in serial.uns["grids"]["explain"].items()
    )

    c = t_serial1 / n_tasks
    idle = max(0.0, (args.workers * t_dask - n_tasks * compute) / n_tasks)
    overhead = noop + transfer
    print(f"data: {args.cells} cells x {args.peaks} peaks x {args.genes} genes; {n_tasks} tasks")
    print(f"serial ({threads} torch threads): {t_serial:.1f} s")
    print(f"serial (1 torch thread):  {t_serial1:.1f} s  ({c:.2f} s per task)")
    print(f"dask start {t_start:.1f} s, warm-up {t_warm:.1f} s (not counted below)")
    print(f"dask ({args.workers} workers x 1 thread): {t_dask:.1f} s; results equal: {same}")
    print(
        f"speed-up: {t_serial / t_dask:.2f}x vs serial ({threads} threads), "
        f"{t_serial1 / t_dask:.2f}x vs serial (1 thread)"
    )
    print(
        f"per task on the workers: compute {compute:.2f} s ({compute / c:.1f}x the serial "
        f"1-thread cost: the workers share the cores with this process and anything else "
        f"running), transfer {transfer * 1e3:.1f} ms, worker time outside tasks "
        f"{idle * 1e3:.0f} ms; Dask's empty-task round trip {noop * 1e3:.1f} ms"
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
