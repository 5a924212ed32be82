"""Training steps per second: sparse embedding-sum ATAC encoder vs the dense form.

Both encoders compute the same function (two embeddings per peak, summed per chromosome, then
the same per-chromosome layers and latent); the dense one materialises every cell's embedding
of every peak, as a direct implementation of the paper's description would.

    python benchmarks/bench_encoder.py [--peaks 20000 100000] [--cells 64]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import chromosomes, random_atac, timeit

from grids_sc.model import SparseAtacEncoder, make_batch
from grids_sc.model._train import make_adamw


class DenseAtacEncoder(SparseAtacEncoder):
    """The same encoder with explicit per-peak E0/E1 and a dense per-cell embedding tensor."""

    def __init__(self, peak_chrom: torch.Tensor, n_chrom: int, **kw) -> None:
        super().__init__(peak_chrom, n_chrom, **kw)
        self.e0 = torch.nn.Parameter(torch.randn(self.n_peaks, self.emb_dim) * 0.05)
        self.e1 = torch.nn.Parameter(torch.randn(self.n_peaks, self.emb_dim) * 0.05)

    def pool_dense(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.e0 + x.unsqueeze(-1) * (self.e1 - self.e0)  # [cells, peaks, emb]
        out = torch.zeros(x.shape[0], self.n_chrom, self.emb_dim)
        return out.index_add(1, self.peak_chrom, emb)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peaks", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--cells", type=int, default=64)
    ap.add_argument("--density", type=float, default=0.03)
    ap.add_argument("--chrom", type=int, default=23)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(
        f"cells per step {args.cells}, density {args.density}, {args.chrom} chromosomes, "
        f"emb 32, threads {torch.get_num_threads()}"
    )
    print(f"{'peaks':>8} {'sparse steps/s':>15} {'dense steps/s':>14} {'ratio':>8}")
    for n_peaks in args.peaks:
        x = random_atac(args.cells, n_peaks, args.density)
        pc = chromosomes(n_peaks, args.chrom)
        target = torch.randn(args.cells, 32)
        sparse = SparseAtacEncoder(torch.from_numpy(pc), args.chrom)
        dense = DenseAtacEncoder(torch.from_numpy(pc), args.chrom)
        opt_s = make_adamw(sparse.parameters(), 1e-3)
        opt_d = make_adamw(dense.parameters(), 1e-3)
        xd = torch.from_numpy(x.toarray())

        def step_sparse():
            batch = make_batch(x, pc, args.chrom)
            loss = F.mse_loss(sparse(batch), target)
            opt_s.zero_grad()
            loss.backward()
            opt_s.step()

        def step_dense():
            loss = F.mse_loss(dense.head(dense.pool_dense(xd)), target)
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()

        ts = timeit(step_sparse, repeats=10)
        td = timeit(step_dense, repeats=3)
        print(f"{n_peaks:>8} {1 / ts:>15.1f} {1 / td:>14.2f} {td / ts:>7.0f}x")


if __name__ == "__main__":
    main()
