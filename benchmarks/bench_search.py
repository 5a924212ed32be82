"""Wall time of GRIDS search steps on simulated genome-scale data (sparse engine only).

    python benchmarks/bench_search.py [--cells 700] [--peaks 100000] [--steps 20]

Times full steps (first-order scores of all peaks + 32 exact swap evaluations) of an
untrained surrogate (timing does not depend on the weights); every step applies a swap, so
none ends early. The dense reference step of issue #5 is not measured here yet.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import grids_sc as grids
from grids_sc.model import Surrogate, SurrogateConfig
from grids_sc.search import EmbeddingSumProblem, GridsOptimizer, initial_selection


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=700)
    ap.add_argument("--peaks", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--L", type=int, default=10)
    args = ap.parse_args()
    m = grids.datasets.synthetic_multiome(n_cells=args.cells, n_peaks=args.peaks, n_genes=20)
    x = m["atac"].X.tocsr()
    chrom = m["atac"].var["chrom"].astype("category").cat.codes.to_numpy().astype(np.int64)
    torch.manual_seed(0)
    cfg = SurrogateConfig(n_peaks=args.peaks, n_genes=20, n_chrom=int(chrom.max() + 1))
    module = Surrogate(cfg, torch.from_numpy(chrom)).eval()
    t = time.perf_counter()
    prob = EmbeddingSumProblem(module, x, np.array([0]))
    setup = time.perf_counter() - t
    d0 = prob.first_order(torch.empty(0, dtype=torch.long))
    sel = initial_selection(d0, torch.ones(args.peaks, dtype=torch.bool), args.L)
    opt = GridsOptimizer([sel], prob, n_candidates=32, tol=-np.inf)
    t = time.perf_counter()
    for _ in range(args.steps):
        opt.step()
    step = (time.perf_counter() - t) / args.steps
    n_threads = torch.get_num_threads()
    print(f"{args.cells} cells x {args.peaks} peaks, nnz {x.nnz}, threads {n_threads}")
    print(f"setup {setup:.2f} s; one step {step * 1e3:.0f} ms; 500 steps {500 * step:.0f} s")


if __name__ == "__main__":
    main()
