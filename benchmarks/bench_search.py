"""GRIDS search: one step of the sparse engine vs the dense reference step, and a full explain.

Part 1 times one search step (L peaks, 32 exact candidate swaps) on simulated cells at each
``--peaks`` size, two ways:

- sparse: :class:`~grids_sc.search.EmbeddingSumProblem` + :meth:`GridsOptimizer.step`
  (first-order scores of all peaks from the pooled per-chromosome sums in O(nnz), then the
  candidate swaps recomputing only the chromosomes they touch);
- dense: the paper's direct form, as a reference implementation computes it every step: a
  dense ``[cells, peaks, emb]`` tensor of per-peak embeddings ``E0 + x (E1 - E0)``, summed
  per chromosome, a full forward through the same module's per-chromosome layers, latent and
  RNA decoder, a full backward to the per-cell per-peak embeddings (first-order scores), and
  one full dense forward pass per candidate swap.

Both steps use the same untrained surrogate (timing does not depend on the weights) and the
same shortlist rule; the script checks that both give the same objective and scores. The
dense step processes cells in chunks so that one ``[chunk, peaks, emb]`` tensor stays under
``--dense-gb``.

Part 2 times one step with single swaps and with pair moves (``moves="pair"``) on an
untrained cis surrogate (``fit_surrogate(model="cis")`` architecture, 16 screened window peaks
per gene) at the largest ``--peaks``.

Part 3 times a full ``grids.tl.explain`` (L=10, 32 candidates, 500 steps at most, one
restart, all peaks) on ``--explain-cells`` x ``--explain-peaks`` simulated data, with a
surrogate fitted for one epoch per phase (search timing does not depend on training
quality). When the search converges early, it also times 500 forced steps (``tol=-inf``).

    python benchmarks/bench_search.py [--peaks 20000 100000] [--cells 256] [--steps 20]
        [--explain-cells 1000] [--explain-peaks 100000] [--skip-explain] [--threads 2]

On a machine whose cores are busy with other work, use ``--threads 1``: OpenMP regions of
two threads then wait for a descheduled thread on every small op (milliseconds each), which
slows the many small ops of the sparse step far more than the large dense ones.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import scipy.sparse as sp
import torch

import grids_sc as grids
from grids_sc.model import Surrogate, SurrogateConfig
from grids_sc.search import EmbeddingSumProblem, GridsOptimizer, initial_selection


def simulate(n_cells: int, n_peaks: int, n_genes: int, n_chrom: int, seed: int = 0):
    """Simulated multiome data and the chromosome code of every peak."""
    m = grids.datasets.synthetic_multiome(
        n_cells=n_cells, n_peaks=n_peaks, n_genes=n_genes, n_chromosomes=n_chrom, seed=seed
    )
    chrom = m["atac"].var["chrom"].astype("category").cat.codes.to_numpy().astype(np.int64)
    return m, chrom


class DenseReference:
    """The direct search step: dense per-cell per-peak embeddings and full passes.

    ``E0`` spreads each chromosome's offset evenly over its peaks and ``E1 = E0 + delta``, so
    the per-chromosome sums equal the sparse encoder's pooled sums exactly. The per-chromosome
    sum is a contiguous slice sum (peaks are held sorted by chromosome), and the candidates'
    forward passes write the embeddings into one reused buffer: the fastest dense form.
    """

    def __init__(self, module, x: sp.csr_matrix, genes, p: float, sign: float, chunk: int):
        enc = module.atac_encoder
        self.module, self.enc = module.eval(), enc
        self.p, self.sign, self.chunk = p, sign, chunk
        self.genes = torch.as_tensor(genes, dtype=torch.long)
        pc = enc.peak_chrom
        self.order = torch.argsort(pc, stable=True)  # peaks sorted by chromosome
        self.sizes = torch.bincount(pc, minlength=enc.n_chrom).tolist()
        with torch.no_grad():
            e0 = enc.offset[pc] / torch.tensor(self.sizes, dtype=torch.float32)[pc, None]
            self.e0 = e0[self.order].contiguous()
            self.e1 = (e0 + enc.delta)[self.order].contiguous()
            self.d = (self.e1 - self.e0).contiguous()
        self.x0 = torch.from_numpy(x.toarray())[:, self.order].contiguous()  # [n, P] sorted
        self.n = self.x0.shape[0]
        self._buf: torch.Tensor | None = None
        with torch.no_grad():
            self.base = self._expr_mean(self.x0).clamp(min=1e-6)

    def _pooled(self, emb: torch.Tensor) -> torch.Tensor:
        """Per-chromosome sums ``[m, K, e]`` of a dense ``[m, P, e]`` embedding tensor."""
        return torch.stack([s.sum(1) for s in torch.split(emb, self.sizes, dim=1)], dim=1)

    def _emb(self, xc: torch.Tensor) -> torch.Tensor:
        return self.e0 + xc.unsqueeze(-1) * (self.e1 - self.e0)  # [m, P, e]

    def _emb_buffer(self, xc: torch.Tensor) -> torch.Tensor:
        """``E0 + x (E1 - E0)`` written into one reused buffer (no allocation per pass)."""
        if self._buf is None:
            self._buf = torch.empty(min(self.chunk, self.n), *self.d.shape)
        emb = self._buf[: xc.shape[0]]
        torch.mul(xc.unsqueeze(-1), self.d, out=emb)
        return emb.add_(self.e0)

    def _obj_part(self, xc: torch.Tensor) -> torch.Tensor:
        y = self.module.expression_from_pooled(self._pooled(self._emb_buffer(xc)), self.genes)
        return self.sign * (y.sum(0) / self.n / self.base).mean()

    def _expr_mean(self, x: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for s in range(0, self.n, self.chunk):
            h = self._pooled(self._emb(x[s : s + self.chunk]))
            total = total + self.module.expression_from_pooled(h, self.genes).sum(0)
        return total / self.n

    @torch.no_grad()
    def value(self, x: torch.Tensor) -> float:
        """Objective of a dense state matrix, one full forward pass over all cells."""
        return float(
            sum(self._obj_part(x[s : s + self.chunk]) for s in range(0, self.n, self.chunk))
        )

    def first_order(self, x: torch.Tensor) -> torch.Tensor:
        """Full forward + backward to the ``[cells, peaks, emb]`` input, then ``d_j``."""
        d = torch.zeros(x.shape[1])
        for s in range(0, self.n, self.chunk):
            xc = x[s : s + self.chunk]
            emb = self._emb(xc).requires_grad_(True)
            y = self.module.expression_from_pooled(self._pooled(emb), self.genes)
            obj = self.sign * (y.sum(0) / self.n / self.base).mean()
            (g,) = torch.autograd.grad(obj, emb)  # [m, P, e]
            with torch.no_grad():
                d += ((self.p - self.x0[s : s + self.chunk]) * (g * self.d).sum(-1)).sum(0)
        return d

    def state(self, sel: torch.Tensor) -> torch.Tensor:
        """Dense states with the (sorted-order) peaks in ``sel`` perturbed."""
        x = self.x0.clone()
        x[:, sel] = self.p
        return x

    def step(self, sel: torch.Tensor, n_candidates: int) -> float:
        """One search step in sorted peak order; updates ``sel`` in place."""
        x = self.state(sel)
        d = self.first_order(x)
        free = torch.ones(len(d), dtype=torch.bool)
        free[sel] = False
        k = min(n_candidates, int(free.sum()))
        incoming = torch.topk(torch.where(free, d, math.inf), k, largest=False).indices
        trans = d[incoming][None, :] - d[sel][:, None]
        flat = torch.topk(trans.flatten(), min(k, trans.numel()), largest=False).indices
        out_pos, in_idx = flat // k, incoming[flat % k]
        vals = []
        for o, j in zip(out_pos.tolist(), in_idx.tolist()):
            out = int(sel[o])
            x[:, out] = self.x0[:, out]
            x[:, j] = self.p
            vals.append(self.value(x))  # full dense forward of every candidate
            x[:, j] = self.x0[:, j]
            x[:, out] = self.p
        best = int(np.argmin(vals))
        sel[int(out_pos[best])] = int(in_idx[best])
        return vals[best]


def chunk_size(n_cells: int, n_peaks: int, emb: int, gb: float) -> int:
    """Cells per dense chunk: equal chunks with one ``[chunk, P, emb]`` tensor under ``gb``."""
    most = max(1, int(gb * 1e9 // (n_peaks * emb * 4)))
    n_chunks = math.ceil(n_cells / most)
    return math.ceil(n_cells / n_chunks)


def step_comparison(args, n_peaks: int) -> tuple[float, float]:
    """Seconds of one sparse and one dense step at ``n_peaks`` peaks."""
    m, chrom = simulate(args.cells, n_peaks, args.genes, args.chrom)
    x = m["atac"].X.tocsr().astype(np.float32)
    torch.manual_seed(0)
    cfg = SurrogateConfig(n_peaks=n_peaks, n_genes=args.genes, n_chrom=int(chrom.max() + 1))
    module = Surrogate(cfg, torch.from_numpy(chrom)).eval()
    with torch.no_grad():  # a gene the untrained model predicts above zero
        probe = EmbeddingSumProblem(module, x, np.arange(args.genes))
        gene = np.array([int(torch.argmax(probe.base))])
    prob = EmbeddingSumProblem(module, x, gene)
    d0 = prob.first_order(torch.empty(0, dtype=torch.long))
    sel = initial_selection(d0, torch.ones(n_peaks, dtype=torch.bool), args.L)
    opt = GridsOptimizer([sel], prob, n_candidates=args.candidates, tol=-np.inf)
    for _ in range(2):
        opt.step()
    t = time.perf_counter()
    for _ in range(args.steps):
        opt.step()
    t_sparse = (time.perf_counter() - t) / args.steps

    chunk = chunk_size(args.cells, n_peaks, cfg.emb_dim, args.dense_gb)
    dense = DenseReference(module, x, gene, prob.p, prob.sign, chunk)
    rank = torch.empty(n_peaks, dtype=torch.long)
    rank[dense.order] = torch.arange(n_peaks)  # original peak index -> sorted position
    sel = opt.selection.clone()
    # the two engines compute the same objective and first-order scores
    v_s, v_d = prob.value(sel), dense.value(dense.state(rank[sel]))
    d_s = prob.first_order(sel)
    d_d = dense.first_order(dense.state(rank[sel]))[rank]
    err_d = float((d_s - d_d).abs().max() / d_s.abs().max().clamp(min=1e-12))
    sel_d = rank[sel]
    times = []
    for _ in range(args.dense_repeats):
        t = time.perf_counter()
        dense.step(sel_d, args.candidates)
        times.append(time.perf_counter() - t)
    t_dense = float(np.median(times))
    full_gb = args.cells * n_peaks * cfg.emb_dim * 4 / 1e9
    chunk_gb = chunk * n_peaks * cfg.emb_dim * 4 / 1e9
    how = (
        "all cells at once"
        if chunk >= args.cells
        else f"cells in chunks of {chunk} (all {args.cells} at once: {full_gb:.2f} GB per tensor)"
    )
    print(
        f"{n_peaks} peaks: nnz {x.nnz:,} (density {x.nnz / (args.cells * n_peaks):.3f}); "
        f"dense step: {how}, [{chunk}, {n_peaks}, {cfg.emb_dim}] float32 = "
        f"{chunk_gb:.2f} GB per tensor"
    )
    print(
        f"  check: objective sparse {v_s:.6f} dense {v_d:.6f}; "
        f"max |d_sparse - d_dense| / max |d| = {err_d:.1e}"
    )
    print(
        f"  sparse {t_sparse * 1e3:.1f} ms/step (mean of {args.steps}), "
        f"dense {t_dense:.2f} s/step (median of {args.dense_repeats})"
    )
    return t_sparse, t_dense


def pair_step_comparison(args, n_peaks: int) -> tuple[float, float]:
    """Seconds of one step with single swaps and with pair moves, cis surrogate."""
    from grids_sc._genome import peak_coordinates, window_pairs
    from grids_sc.model import CisConfig, CisSurrogate
    from grids_sc.tl._cis import screen_pairs

    m, chrom = simulate(args.cells, n_peaks, args.genes, args.chrom)
    x = m["atac"].X.tocsr().astype(np.float32)
    pg, pp = window_pairs(peak_coordinates(m["atac"], "atac"), m["rna"].var, 250_000)
    y = np.log1p(m["rna"].X.toarray() if hasattr(m["rna"].X, "toarray") else m["rna"].X)
    pg, pp = screen_pairs(pg, pp, x, y, 16)
    torch.manual_seed(0)
    cfg = SurrogateConfig(n_peaks=n_peaks, n_genes=args.genes, n_chrom=int(chrom.max() + 1))
    module = CisSurrogate(
        cfg, CisConfig(), torch.from_numpy(chrom), torch.from_numpy(pg), torch.from_numpy(pp)
    ).eval()
    with torch.no_grad():
        module.cis.b2.fill_(1.0)  # a positive prediction to move
    prob = EmbeddingSumProblem(module, x, np.array([0]))
    d0 = prob.first_order(torch.empty(0, dtype=torch.long))
    times = {}
    for moves in ("single", "pair"):
        sel = initial_selection(d0, torch.ones(n_peaks, dtype=torch.bool), args.L)
        opt = GridsOptimizer([sel], prob, n_candidates=args.candidates, tol=-np.inf, moves=moves)
        opt.step()
        t = time.perf_counter()
        for _ in range(args.steps):
            opt.step()
        times[moves] = (time.perf_counter() - t) / args.steps
    print(
        f"cis surrogate, {n_peaks} peaks, {args.cells} cells, {len(pp)} window pairs "
        f"({len(pp) / args.genes:.0f} per gene): single swaps {times['single'] * 1e3:.1f} "
        f"ms/step, pair moves {times['pair'] * 1e3:.1f} ms/step "
        f"(x{times['pair'] / times['single']:.2f})"
    )
    return times["single"], times["pair"]


def explain_timing(args) -> None:
    """Time ``grids.tl.explain`` on simulated genome-scale data, and 500 forced steps."""
    from grids_sc._inputs import atac_binary, split_cells

    t = time.perf_counter()
    m, _ = simulate(args.explain_cells, args.explain_peaks, args.explain_genes, args.chrom)
    t_sim = time.perf_counter() - t
    t = time.perf_counter()
    grids.tl.fit_surrogate(m, max_epochs=1, cis_max_epochs=1, progress=False, device="cpu")
    t_fit = time.perf_counter() - t
    gene = str(m["rna"].var_names[0])
    nnz = m["atac"].X.nnz
    print(
        f"\nexplain: {args.explain_cells} cells x {args.explain_peaks} peaks "
        f"(nnz {nnz:,}, density {nnz / (args.explain_cells * args.explain_peaks):.3f}), "
        f"gene {gene}; simulate {t_sim:.1f} s, fit_surrogate(max_epochs=1) {t_fit:.1f} s "
        "(1 epoch per phase: search timing does not depend on training quality)"
    )
    t = time.perf_counter()
    grids.tl.explain(
        m,
        gene,
        L=args.L,
        n_candidates=args.candidates,
        n_steps=500,
        restarts=1,
        window=None,
        device="cpu",
        progress=False,
        key_added="bench",
    )
    t_explain = time.perf_counter() - t
    record = m.uns["grids"]["explain"]["bench"]
    steps = len(record["trace"]) - 1
    # explain's move rule, when this version has one (forced steps use the same)
    moves = {"moves": str(record["settings"]["moves"])} if "moves" in record["settings"] else {}
    print(
        f"  grids.tl.explain(L={args.L}, n_candidates={args.candidates}, n_steps=500, "
        f"restarts=1, window=None{''.join(f', {k}={v!r}' for k, v in moves.items())}): "
        f"{t_explain:.1f} s wall, {steps} steps ran"
    )
    if steps >= 500:
        return
    # the search converged early: force 500 steps through the same backend on the same cells
    module = grids.tl.get_surrogate(m).module
    cells = np.flatnonzero(split_cells(m.n_obs, None, 2023) == 0)
    x = atac_binary(m["atac"], None, "atac")[cells]
    t = time.perf_counter()
    prob = EmbeddingSumProblem(module, x, np.array([0]))
    d0 = prob.first_order(torch.empty(0, dtype=torch.long))
    sel = initial_selection(d0, torch.ones(args.explain_peaks, dtype=torch.bool), args.L)
    t_setup = time.perf_counter() - t
    opt = GridsOptimizer([sel], prob, n_candidates=args.candidates, tol=-np.inf, **moves)
    t = time.perf_counter()
    for _ in range(500):
        opt.step()
    t_500 = time.perf_counter() - t
    per = t_500 / 500
    print(
        f"  forced 500 steps (GridsOptimizer tol=-inf, {len(cells)} search cells): setup "
        f"{t_setup:.1f} s, {per * 1e3:.0f} ms per step, {t_500:.1f} s for 500 steps; "
        f"explain with all 500 steps ~ {t_explain - steps * per + t_500:.1f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peaks", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--cells", type=int, default=256)
    ap.add_argument("--genes", type=int, default=20)
    ap.add_argument("--chrom", type=int, default=23)
    ap.add_argument("--steps", type=int, default=20, help="sparse steps timed (mean)")
    ap.add_argument("--dense-repeats", type=int, default=1, help="dense steps timed (median)")
    ap.add_argument("--dense-gb", type=float, default=1.0, help="max GB of one dense tensor")
    ap.add_argument("--L", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=32)
    ap.add_argument("--explain-cells", type=int, default=1000)
    ap.add_argument("--explain-peaks", type=int, default=100_000)
    ap.add_argument("--explain-genes", type=int, default=200)
    ap.add_argument("--skip-explain", action="store_true")
    ap.add_argument("--skip-pairs", action="store_true", help="skip pair vs single moves")
    ap.add_argument("--skip-dense", action="store_true", help="skip the sparse/dense steps")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"one search step: {args.cells} simulated cells, {args.chrom} chromosomes, "
        f"L={args.L}, {args.candidates} candidate swaps, emb 32, "
        f"threads {torch.get_num_threads()}, untrained surrogate"
    )
    rows = [] if args.skip_dense else [(n, *step_comparison(args, n)) for n in args.peaks]
    if rows:
        print(f"{'peaks':>8} {'sparse ms/step':>15} {'dense s/step':>13} {'dense/sparse':>13}")
    for n, ts, td in rows:
        print(f"{n:>8} {ts * 1e3:>15.1f} {td:>13.2f} {td / ts:>12.0f}x")
    if not args.skip_pairs:
        print()
        pair_step_comparison(args, max(args.peaks))
    if not args.skip_explain:
        explain_timing(args)


if __name__ == "__main__":
    main()
