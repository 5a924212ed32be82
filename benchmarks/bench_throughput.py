"""Throughput of ``grids.tl.explain`` over every gene in every group: the batched engine
against a loop of one ``explain`` call per task, and against correlation links.

    python benchmarks/bench_throughput.py [--cells 10000] [--peaks 100000] [--genes 2000]
        [--celltypes 6] [--L 10] [--sample 12] [--threads 2] [--window auto|none|BP]
        [--max-epochs 10] [--cis-max-epochs 60] [--models loco cis] [--no-correlation]
        [--correlation-genes N] [--workers 2] [--save PATH | --data PATH]

One surrogate per ``--models`` entry (default: the package's default, ``model="loco"``) is fit
on the simulator (``--save`` writes the data set and its fits; a later run with ``--data``
reads them instead of simulating and fitting again), then, in one run and for each
surrogate:

- ``batched``: one ``explain`` call over every gene and every cell type at the defaults
  (``batched=None``: the batched engine from 8 tasks on, ``batch_size=64``; ``window="auto"``,
  the surrogate's cis window, unless ``--window`` says otherwise), wall time;
- ``loop``: one ``explain`` call per task (what a user's loop over genes costs) on
  ``--sample`` tasks drawn from the same tasks (seeded), wall time per task (each call writes
  into the data set under one key, replacing the last, as a user's loop would);
- ``workers`` (``--workers N``): the batched run again on a process pool of N workers with
  one torch thread each (``explain(executor=...)``), and whether its selections equal the
  serial run's;
- ``correlation``: ``attribute(method="correlation")`` for the same genes and groups (once,
  with the first surrogate's record: the links do not use the model; ``--correlation-genes``
  times the first N genes' tasks and extrapolates; ``--no-correlation`` leaves it out);
- peak memory (maximum resident set size of the process) after each.

The per-task time of the batched run against the loop's is the speed-up; the full-size
wall time is extrapolated linearly in the number of tasks from the measured per-task time
(the cost of a task grows with the group's search cells and with the peaks, so run at the
size you extrapolate from when you can).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import mudata
import numpy as np
import torch

import grids_sc as grids


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--peaks", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--celltypes", type=int, default=6)
    parser.add_argument("--L", type=int, default=10)
    parser.add_argument("--sample", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--full-tasks", type=int, default=12_000)
    parser.add_argument("--cis-max-epochs", type=int, default=60)
    parser.add_argument(
        "--explain-genes", type=int, default=None,
        help="explain only the first N genes (the data and the fit keep --genes); the full "
        "size is extrapolated from their tasks",
    )  # fmt: skip
    parser.add_argument(
        "--window", default="auto",
        help="explain's and the correlation links' window: 'auto' (the default: the "
        "surrogate's cis window), 'none' (every peak a candidate) or bp",
    )  # fmt: skip
    parser.add_argument(
        "--models", nargs="+", default=["loco"],
        help="surrogates to fit and explain with, in turn (fit_surrogate's model=)",
    )  # fmt: skip
    parser.add_argument(
        "--data", default=None,
        help="read the data set and its fitted surrogates from this .h5mu (written by --save "
        "with the same sizes and models) instead of simulating and fitting",
    )  # fmt: skip
    parser.add_argument(
        "--save", default=None, help="write the data set and its fits to this .h5mu after fitting"
    )  # fmt: skip
    parser.add_argument("--no-correlation", action="store_true", help="skip correlation links")
    parser.add_argument(
        "--correlation-genes", type=int, default=None,
        help="time the correlation links on the tasks of the first N explained genes only "
        "(their per-task time is extrapolated to all tasks)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=0,
        help="also run the batched explain on a process pool of this many workers (one "
        "torch thread each; explain(executor=...))",
    )  # fmt: skip
    args = parser.parse_args()
    window = {"auto": "auto", "none": None}.get(args.window.lower(), None)
    if args.window.lower() not in ("auto", "none"):
        window = int(args.window)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    grids.set_verbosity("warning") if hasattr(grids, "set_verbosity") else None

    t = time.perf_counter()
    if args.data:
        m = mudata.read_h5mu(args.data)
        size = (m["rna"].n_obs, m["atac"].n_vars, m["rna"].n_vars)
        if size != (args.cells, args.peaks, args.genes):
            raise SystemExit(f"{args.data} holds {size} (cells, peaks, genes), not the sizes asked")
    else:
        m = grids.datasets.synthetic_multiome(
            n_cells=args.cells, n_peaks=args.peaks, n_genes=args.genes,
            n_celltypes=args.celltypes, seed=0,
        )  # fmt: skip
    t_sim = time.perf_counter() - t
    genes = list(m["rna"].var_names)[: args.explain_genes]
    groups = sorted(m.obs["celltype"].astype(str).unique())
    n_tasks = len(genes) * len(groups)
    print(f"data: {args.cells} cells x {args.peaks} peaks x {args.genes} genes, "
          f"{len(genes)} explained x "
          f"{len(groups)} cell types ({n_tasks} tasks), L={args.L}, window={window}, torch threads "
          f"{torch.get_num_threads()}; {'read' if args.data else 'simulate'} "
          f"{t_sim:.0f} s")  # fmt: skip
    rng = np.random.default_rng(0)
    sample = [
        (genes[i // len(groups)], groups[i % len(groups)])
        for i in rng.choice(n_tasks, min(args.sample, n_tasks), replace=False)
    ]
    rows, runs = [], {}
    for model in args.models:
        if not args.data:
            t = time.perf_counter()
            grids.tl.fit_surrogate(
                m, model=model, groupby="celltype", max_epochs=args.max_epochs,
                cis_max_epochs=args.cis_max_epochs, progress=False,
                key_added=f"surrogate_{model}",
            )  # fmt: skip
            print(f"{model}: fit {time.perf_counter() - t:.0f} s", flush=True)
            if args.save and model == args.models[-1]:
                m.write(args.save)
        kw = dict(groupby="celltype", progress=False, window=window, key=f"surrogate_{model}")
        t = time.perf_counter()
        batched = grids.tl.explain(m, genes, args.L, copy=True, key_added="b", **kw)
        t_batched = time.perf_counter() - t
        rss_batched = _rss_gb()
        t = time.perf_counter()
        same = 0
        for gene, group in sample:
            grids.tl.explain(m, gene, args.L, groups=group, key_added="one", **kw)
            rec = m.uns["grids"]["explain"]["one"]
            ref = batched.uns["grids"]["explain"].get(f"b_{gene}_{group}")
            same += ref is not None and list(rec["selected"]) == list(ref["selected"])
        t_loop = (time.perf_counter() - t) / len(sample)
        per_task = t_batched / n_tasks
        runs[model] = (t_batched, per_task, t_loop, same, rss_batched)
        rows.append((f"{model}: explain, batched (all tasks)", f"{t_batched:.1f} s",
                     f"{per_task:.3f} s"))  # fmt: skip
        if args.workers:
            with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as ex:
                t = time.perf_counter()
                pooled = grids.tl.explain(
                    m, genes, args.L, copy=True, key_added="b", executor=ex, worker_threads=1,
                    **kw,
                )  # fmt: skip
                t_pool = time.perf_counter() - t
            a, b = batched.uns["grids"]["explain"], pooled.uns["grids"]["explain"]
            equal = sum(list(a[k]["selected"]) == list(b[k]["selected"]) for k in a)
            label = f"{model}: explain, batched on {args.workers} worker processes (1 thread each)"
            rows.append((label, f"{t_pool:.1f} s", f"{t_pool / n_tasks:.3f} s"))
            print(f"{model}: {args.workers} workers {t_pool:.1f} s; selections equal to the "
                  f"serial run's: {equal}/{len(a)}", flush=True)  # fmt: skip
            del pooled
        del batched
        rows.append((f"{model}: explain, one call per task ({len(sample)} sampled)",
                     f"{t_loop * len(sample):.1f} s", f"{t_loop:.3f} s"))  # fmt: skip
        print(f"{model}: batched {t_batched:.1f} s ({per_task:.3f} s per task), loop "
              f"{t_loop:.3f} s per task, same selection {same}/{len(sample)}",
              flush=True)  # fmt: skip

    t_corr = None
    if not args.no_correlation:
        corr_genes = genes[: args.correlation_genes]
        n_corr = len(corr_genes) * len(groups)
        t = time.perf_counter()
        grids.tl.attribute(
            m, corr_genes, "correlation", L=args.L, groupby="celltype", progress=False,
            copy=True, window=window, key=f"surrogate_{args.models[0]}",
        )  # fmt: skip
        t_corr = (time.perf_counter() - t) / n_corr * n_tasks  # all tasks (extrapolated)
        rows.append((f"correlation links (attribute, {n_corr} tasks"
                     f"{'' if n_corr == n_tasks else ', extrapolated to all'})",
                     f"{t_corr:.1f} s", f"{t_corr / n_tasks:.3f} s"))  # fmt: skip
    rss_end = _rss_gb()

    print("| run | wall time | per task |\n| --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    for model, (t_batched, per_task, t_loop, same, rss_batched) in runs.items():
        corr = "" if t_corr is None else f"; batched / correlation time: {t_batched / t_corr:.2f}x"
        print(f"{model}: speed-up over the loop {t_loop / per_task:.1f}x{corr}; sampled tasks "
              f"with the same selection: {same}/{len(sample)}; peak memory (max RSS) after the "
              f"batched run {rss_batched:.2f} GB")  # fmt: skip
        full = args.full_tasks * per_task
        print(f"{model}: extrapolated to {args.full_tasks} tasks at this per-task time: "
              f"{full / 60:.1f} min (loop: {args.full_tasks * t_loop / 60:.1f} min)")  # fmt: skip
    if len(runs) > 1:
        ref = args.models[0]
        for model in args.models[1:]:
            print(f"{model} / {ref} batched time: {runs[model][0] / runs[ref][0]:.2f}x")
    print(f"peak memory (max RSS) at the end: {rss_end:.2f} GB")


if __name__ == "__main__":
    main()
