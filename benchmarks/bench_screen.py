"""Issue #23: the cis screen alone, planted peaks kept per gene (redundant regime).

    python benchmarks/bench_screen.py [--seeds 1 2 3 4] [--cells 3000] [--cache DIR]

For each data seed, the redundant regime of ``bench_methods.py redundant`` (3 OR pairs open
in 65-75% of cells and 3 decoys open in 90% per gene; 12 genes, 1,500 peaks); the shared
part of the default cis surrogate is fit once (``fit_surrogate(seed=0)`` up to its screen:
the screen's inputs are captured and the heads are not fit), then every screen variant runs
on the same training cells and latent. Per variant and seed: the planted OR peaks (of 72)
and decoys (of 36) kept in the heads, the unplanted window peaks kept per gene, the mean head
size, the ceiling (the best true effect of closing 8 of the gene's planted peaks that the
heads keep, as a fraction of the enumerated true optimum over all 9; mean over genes: what a
perfect search on heads that learnt the truth could reach), and the seconds of the screen.
``--cache`` keeps each seed's screen inputs (``screen{seed}.npz``) for later runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

import grids_sc as grids
from grids_sc.model._screen import screen_pairs
from grids_sc.tl import _surrogate

VARIANTS = {
    "marginal 16 (default)": {"max_peaks": 16},
    "marginal 20": {"max_peaks": 20},
    "marginal 24": {"max_peaks": 24},
    "marginal 32": {"max_peaks": 32},
    "marginal 32, z >= 3": {"max_peaks": 32, "min_z": 3.0},
    "marginal all (None)": {"max_peaks": None},
    "stepwise 16": {"max_peaks": 16, "method": "stepwise"},
    "stepwise 24": {"max_peaks": 24, "method": "stepwise"},
    "stepwise 16, z >= 2": {"max_peaks": 16, "min_z": 2.0, "method": "stepwise"},
    "stepwise 16, z >= 3": {"max_peaks": 16, "min_z": 3.0, "method": "stepwise"},
    "stepwise 24, z >= 2": {"max_peaks": 24, "min_z": 2.0, "method": "stepwise"},
    "stepwise 24, z >= 3": {"max_peaks": 24, "min_z": 3.0, "method": "stepwise"},
    "stepwise 32, z >= 3": {"max_peaks": 32, "min_z": 3.0, "method": "stepwise"},
    "stepwise all, z >= 3": {"max_peaks": None, "min_z": 3.0, "method": "stepwise"},
    "stepwise all, z >= 4": {"max_peaks": None, "min_z": 4.0, "method": "stepwise"},
}


class _Captured(Exception):
    pass


def regime(seed: int, cells: int = 3000):
    """The redundant regime's data set of ``bench_methods.py redundant``."""
    return grids.datasets.synthetic_multiome(
        n_cells=cells, n_peaks=1500, n_genes=12, seed=seed, n_single=0, n_or=3, n_and=0,
        n_decoys=3, cre_open=(0.65, 0.75), cre_off=0,
    )  # fmt: skip


def planted(m) -> tuple[dict, dict]:
    """Per gene, the column indices of its planted OR peaks and decoys."""
    units = m.uns["simulation"]["units"]
    col = {p: i for i, p in enumerate(m["atac"].var_names)}
    ug, logic = (np.asarray(units[k]).astype(str) for k in ("gene", "logic"))
    pa, pb = (np.asarray(units[k]).astype(str) for k in ("peak_a", "peak_b"))
    genes = list(m["rna"].var_names)
    ors = {g: {col[p] for p in np.r_[pa, pb][np.r_[ug, ug] == g] if p} for g in genes}
    decoys = {g: {col[p] for p in pa[(ug == g) & (logic == "decoy")]} for g in genes}
    ors = {g: ors[g] - decoys[g] for g in genes}
    return ors, decoys


def capture(m, **fit) -> dict:
    """The inputs of the default fit's screen (windows, training cells, latent)."""
    got = {}

    def spy(pg, pp, x, y, max_peaks, covariates=None, **kw):
        got.update(pg=pg, pp=pp, x=sp.csr_matrix(x), y=np.asarray(y), z=covariates)
        raise _Captured

    orig = _surrogate.screen_pairs
    _surrogate.screen_pairs = spy
    try:
        grids.tl.fit_surrogate(m, seed=0, progress=False, **fit)
    except _Captured:
        pass
    finally:
        _surrogate.screen_pairs = orig
    return got


class Ceiling:
    """The best true relative effect of closing 8 of a set of a gene's planted peaks."""

    def __init__(self, m) -> None:
        self.m, self.names, self.cache = m, m["atac"].var_names, {}
        self.base = {
            g: grids.datasets.true_expression(m, genes=[g])[:, 0].mean() for g in m["rna"].var_names
        }

    def rel(self, gene: str, peaks: frozenset) -> float:
        if (gene, peaks) not in self.cache:
            close = [self.names[i] for i in sorted(peaks)]
            after = grids.datasets.true_expression(self.m, genes=[gene], close=close)[:, 0].mean()
            self.cache[gene, peaks] = (after - self.base[gene]) / self.base[gene]
        return self.cache[gene, peaks]

    def best(self, gene: str, peaks: set) -> float:
        if len(peaks) <= 8:
            return self.rel(gene, frozenset(peaks))
        return min(self.rel(gene, frozenset(c)) for c in itertools.combinations(peaks, 8))


def score(got: dict, ors: dict, decoys: dict, genes: list, ceiling: Ceiling, **kw) -> dict:
    t = time.perf_counter()
    pg, pp = screen_pairs(got["pg"], got["pp"], got["x"], got["y"], covariates=got["z"], **kw)
    sec = time.perf_counter() - t
    n_or = n_dec = n_other = 0
    frac = []
    for g, name in enumerate(genes):
        kept = set(pp[pg == g].tolist())
        n_or += len(kept & ors[name])
        n_dec += len(kept & decoys[name])
        n_other += len(kept - ors[name] - decoys[name])
        both = ors[name] | decoys[name]
        frac.append(ceiling.best(name, kept & both) / ceiling.best(name, both))
    return {"or": n_or, "decoys": n_dec, "unplanted_per_gene": n_other / len(genes),
            "head_size": len(pg) / len(genes), "ceiling": np.mean(frac),
            "seconds": sec}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--cells", type=int, default=3000)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        m = regime(seed, args.cells)
        path = os.path.join(args.cache, f"screen{seed}.npz") if args.cache else None
        if path and os.path.exists(path):
            f = np.load(path)
            got = {k: f[k] for k in ("pg", "pp", "y", "z")}
            got["x"] = sp.csr_matrix(
                (f["x_data"], f["x_indices"], f["x_indptr"]), shape=tuple(f["x_shape"])
            )
        else:
            t = time.perf_counter()
            got = capture(m)
            print(f"seed {seed}: shared fit {time.perf_counter() - t:.0f} s", flush=True)
            if path:
                x = got["x"]
                np.savez(path, pg=got["pg"], pp=got["pp"], y=got["y"], z=got["z"],
                         x_data=x.data, x_indices=x.indices, x_indptr=x.indptr,
                         x_shape=np.asarray(x.shape))  # fmt: skip
        ors, decoys = planted(m)
        genes = list(m["rna"].var_names)
        window = np.bincount(got["pg"], minlength=len(genes)).mean()
        print(f"seed {seed}: {window:.1f} window peaks per gene", flush=True)
        ceiling = Ceiling(m)
        for name, kw in VARIANTS.items():
            rows.append(
                {"seed": seed, "variant": name, **score(got, ors, decoys, genes, ceiling, **kw)}
            )
    res = pd.DataFrame(rows)
    wide = res.pivot_table(index="variant", columns="seed", values=["or", "decoys", "ceiling"])
    per = res.groupby("variant")[["unplanted_per_gene", "head_size", "seconds"]].mean()
    table = pd.concat([wide, per.set_axis([(c, "mean") for c in per.columns], axis=1)], axis=1)
    print("\nplanted peaks kept: OR peaks of 72 and decoys of 36 per seed; per gene means")
    print(table.loc[list(VARIANTS)].to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
