"""Held-out Rel Δ of GRIDS vs saliency, first-order and random peak sets on the PBMC tiles.

    python benchmarks/bench_pbmc_explain.py [--surrogate fit.h5mu] [--model cis]
        [--L 10 128] [--genes CCR7 ZEB2] [--types "B cells" NK] [--min-cells 100]
        [--split-seeds 2023 2024 2025] [--restarts 1]

Measures the bar "for each of the 3 genes in each cell type with at least 100 cells, GRIDS's
held-out Rel Δ at L=10 and L=128 beats random and saliency selections of the same size".

One surrogate is fit on ``grids.datasets.pbmc10k_tiles()`` (ATAC binarised as in the
quickstart, ``groupby='celltype'``, seed 0; read from ``--surrogate`` when that file exists,
else written to it) and its held-out fidelity is printed. For every (gene, cell type, L,
split seed), ``grids.tl.explain`` runs with the paper's settings (250 kb window, 32
candidate swaps, 500 steps, closing peaks to move expression down) and its held-out test
Rel Δ is read from the result. The baselines use the same cells, reproducing explain's
70/10/20 split of the cell type (``split_seed``) with its own helpers:

- saliency: the top-L window peaks by the gradient of the objective with respect to each
  peak's accessibility on the search (train) cells (``attribute(method="saliency")``,
  the saliency map as Captum's ``Saliency`` computes it);
- first order: the top-L window peaks by the first-order change ``d_j`` of closing each peak
  alone (gradient times change, ``attribute(method="first_order")``): the start of GRIDS's
  search, so the baseline that shows what the search itself adds;
- random: the mean Rel Δ of 5 seeded random L-subsets of the window peaks.

All three are scored identically: ``EmbeddingSumProblem.per_cell`` on the test cells and
explain's Rel Δ (mean over cells of (after - before) / before). More negative is better;
"wins" means GRIDS's Rel Δ is below saliency's and random's (the bar); GRIDS against the first
order set is counted apart (better / tie / worse). ``--genes``/``--types`` limit the run.

With several ``--split-seeds`` each split draws other search and test cells, and the script
also prints, per (gene, cell type, L), the mean over splits of GRIDS's Rel Δ minus the
first-order set's with its standard error, and how many rows GRIDS leads on that mean and by
more than two standard errors (and trails by more than two): one split's 20% test cells (20
to a few hundred per type) decide close rows by chance.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from _common import pbmc_fitted

import grids_sc as grids
from grids_sc._device import resolve_device
from grids_sc._engine import DIRECTION, PERTURB, delta_stats, group_cells
from grids_sc._genome import gene_coordinates, peak_coordinates, window_mask
from grids_sc._inputs import atac_binary, split_cells
from grids_sc.attribution import saliency_scores
from grids_sc.search import EmbeddingSumProblem
from grids_sc.search._optimizer import initial_selection
from grids_sc.tl._surrogate import get_surrogate

WINDOW = 250_000
SPLIT_SEED = 2023
GROUPBY = "celltype"


def test_rel(problem: EmbeddingSumProblem, selection: np.ndarray) -> float:
    """Explain's Rel Δ of closing ``selection`` on the cells of ``problem``."""
    before, after = problem.per_cell(torch.as_tensor(selection, dtype=torch.long))
    return delta_stats(before, after)["rel"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=60, help="max_epochs of fit_surrogate")
    ap.add_argument("--model", default="cis", help="passed to fit_surrogate(model=)")
    ap.add_argument("--surrogate", help="h5mu to read the fit from (or write it to)")
    ap.add_argument("--split-seeds", type=int, nargs="+", default=[SPLIT_SEED])
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--moves", default=None, help="explain(moves=) if given, else its default")
    ap.add_argument("--n-candidates", type=int, default=32)
    ap.add_argument("--n-steps", type=int, default=500)
    ap.add_argument("--n-random", type=int, default=5, help="random subsets per setting")
    ap.add_argument("--L", type=int, nargs="+", default=[10, 128])
    ap.add_argument("--genes", nargs="+", default=None, help="default: all RNA genes")
    ap.add_argument("--types", nargs="+", default=None, help="default: all with >= min-cells")
    ap.add_argument("--min-cells", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    mdata = pbmc_fitted(
        args.surrogate, model=args.model, max_epochs=args.epochs, seed=args.seed, device=args.device
    )
    print("held-out per-gene Pearson r:")
    print(grids.tl.surrogate_fidelity(mdata, device=args.device).round(3).to_string())

    fitted = get_surrogate(mdata, check_genes=False)
    dev = resolve_device(args.device)
    x_all = atac_binary(mdata.mod["atac"], None, "atac")
    peaks = peak_coordinates(mdata.mod["atac"], "atac")
    gene_pos = {g: i for i, g in enumerate(fitted.genes)}
    p, sign = PERTURB["close"], DIRECTION["down"]

    genes = args.genes or list(mdata.mod["rna"].var_names)
    counts = mdata.obs[GROUPBY].astype(str).value_counts()
    types = args.types or sorted(counts.index[counts >= args.min_cells])
    print(
        f"\n{len(genes)} genes x {len(types)} cell types x L in {args.L} x split seeds "
        f"{args.split_seeds}"
    )

    rows = []
    for gi, gene in enumerate(genes):
        mask = window_mask(peaks, gene_coordinates(mdata.mod["rna"], [gene], "rna"), WINDOW)
        window_idx = np.flatnonzero(mask)
        cand = torch.from_numpy(mask)
        for ti, ctype in enumerate(types):
            ((_, cells),) = group_cells(mdata, GROUPBY, ctype, ("rna", "atac"))
            for split_seed in args.split_seeds:
                split = split_cells(len(cells), None, split_seed)
                train_cells, test_cells = cells[split == 0], cells[split == 2]
                gidx = np.array([gene_pos[gene]])
                train = EmbeddingSumProblem(fitted.module, x_all[train_cells], gidx, p, sign, dev)
                test = EmbeddingSumProblem(fitted.module, x_all[test_cells], gidx, p, sign, dev)
                d0 = train.first_order(torch.empty(0, dtype=torch.long)).cpu()
                by_saliency = window_idx[
                    np.argsort(-saliency_scores(train, window_idx), kind="stable")
                ]
                for L in args.L:
                    if L > len(window_idx):
                        print(f"skip {gene} / {ctype} / L={L}: only {len(window_idx)} window peaks")
                        continue
                    t = time.perf_counter()
                    rec = _explain(mdata, gene, ctype, L, split_seed, args)
                    rel_grids, sel = rec["delta"]["rel_test"], np.asarray(rec["selected_index"])
                    # the baselines' evaluation must reproduce explain's number for its selection
                    check = test_rel(test, sel)
                    if not np.isclose(check, rel_grids, rtol=1e-4, atol=1e-6):
                        raise RuntimeError(f"evaluation mismatch: {check} vs explain's {rel_grids}")
                    rel_first = test_rel(test, initial_selection(d0, cand, L).numpy())
                    rel_sal = test_rel(test, by_saliency[:L])
                    rng = np.random.default_rng([args.seed, gi, ti, L, split_seed])
                    rel_rand = float(
                        np.mean(
                            [
                                test_rel(test, rng.choice(window_idx, L, replace=False))
                                for _ in range(args.n_random)
                            ]
                        )
                    )
                    rows.append(
                        {
                            "gene": gene,
                            "cell type": ctype,
                            "n cells": len(cells),
                            "L": L,
                            "split": split_seed,
                            "grids %": 100 * rel_grids,
                            "saliency %": 100 * rel_sal,
                            "first order %": 100 * rel_first,
                            "random %": 100 * rel_rand,
                            "wins": bool(rel_grids < rel_sal and rel_grids < rel_rand),
                            "vs first order": "tie"
                            if np.isclose(rel_grids, rel_first, rtol=0, atol=1e-6)
                            else ("better" if rel_grids < rel_first else "worse"),
                            "steps": len(rec["trace"]) - 1,
                            "s": time.perf_counter() - t,
                        }
                    )
                    r = rows[-1]
                    print(
                        f"  {gene:<9} {ctype:<16} L={L:<4} split {split_seed}  grids "
                        f"{r['grids %']:+7.2f}%  saliency {r['saliency %']:+7.2f}%  first order "
                        f"{r['first order %']:+7.2f}%  random {r['random %']:+7.2f}%  "
                        f"({r['steps']} steps, {r['s']:.1f} s)",
                        flush=True,
                    )

    if not rows:
        print("nothing to run")
        return
    settings = rec["settings"]
    print("\nexplain settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "L"))
    _report(pd.DataFrame(rows))
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


def _explain(mdata, gene, ctype, L, split_seed, args) -> dict:
    """explain's record for one setting (taken out of ``mdata`` again)."""
    key = f"bench_{gene}_{ctype}_L{L}_{split_seed}".replace("/", "_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grids.tl.explain(
            mdata,
            gene,
            L=L,
            groupby=GROUPBY,
            groups=ctype,
            window=WINDOW,
            n_candidates=args.n_candidates,
            n_steps=args.n_steps,
            restarts=args.restarts,
            **({} if args.moves is None else {"moves": args.moves}),
            split_seed=split_seed,
            device=args.device,
            seed=args.seed,
            key_added=key,
            progress=False,
        )
    return mdata.uns["grids"]["explain"].pop(key)


def _report(df: pd.DataFrame) -> None:
    """Per-split table and wins; with several splits, the mean GRIDS - first order gap per row."""
    cols = ["grids %", "saliency %", "first order %", "random %"]
    print("\nheld-out test Rel Δ (closing the selected peaks; more negative is better)")
    print(
        df.drop(columns=["steps", "s"]).to_string(index=False, float_format=lambda v: f"{v:+.2f}")
    )
    print("\nmean per L and split (wins: GRIDS below saliency and random; GRIDS vs first order):")
    vs = pd.crosstab([df["L"], df["split"]], df["vs first order"])
    summary = df.groupby(["L", "split"]).agg(
        **{c: (c, "mean") for c in cols}, wins=("wins", "sum"), runs=("wins", "size")
    )
    print(summary.join(vs).to_string(float_format=lambda v: f"{v:+.2f}"))
    print(f"\nGRIDS beats both baselines in {int(df['wins'].sum())}/{len(df)} settings")
    n_splits = df["split"].nunique()
    if n_splits < 2:
        return
    gap = df.assign(gap=df["grids %"] - df["first order %"])
    per_row = gap.groupby(["L", "gene", "cell type"])["gap"].agg(["mean", "std", "size"])
    per_row["se"] = per_row["std"] / np.sqrt(per_row["size"])
    print(f"\nGRIDS - first order Rel Δ (points), mean over {n_splits} splits per row:")
    print(per_row[["mean", "se"]].to_string(float_format=lambda v: f"{v:+.2f}"))
    counts = per_row.groupby("L").apply(
        lambda t: pd.Series(
            {
                "rows": len(t),
                "GRIDS ahead": int((t["mean"] < 0).sum()),
                "ahead by > 2 SE": int((t["mean"] < -2 * t["se"]).sum()),
                "behind by > 2 SE": int((t["mean"] > 2 * t["se"]).sum()),
                "mean gap": t["mean"].mean(),
            }
        )
    )
    ints = ["rows", "GRIDS ahead", "ahead by > 2 SE", "behind by > 2 SE"]
    counts = counts.astype(dict.fromkeys(ints, int))
    print(counts.to_string(float_format=lambda v: f"{v:+.2f}"))


if __name__ == "__main__":
    main()
