"""Calibration of ``grids.tl.link_peaks`` against simulator truth, and PCHi-C on PBMC.

    python benchmarks/bench_links.py [--seeds 0 1 2 3 4] [--parts calibration pbmc timing]
        [--cells 1200] [--peaks 1500] [--genes 24] [--surrogate pbmc_fit.h5mu]

**Calibration.** For each regime and seed, ``synthetic_multiome`` draws a data set
(``--cells`` x ``--peaks`` x ``--genes``, 4 cell types):

- ``confounded``: ``datasets.CONFOUNDED``, a continuous cell state opening a module of 15% of
  the peaks (non-causal) and driving 30% of the genes, planted CREs kept, 30% of the single
  (linear) units repressive;
- ``null``: the same state with ``datasets.NULL`` (no planted peak at all).

A surrogate is fit with the package's defaults (``fit_surrogate(mdata)``, seed 0), then
``link_peaks(groupby="celltype")`` (cross-fitted, ``L=0``: the sets do not change p-values)
and ``link_peaks(method="correlation")`` run on it. Each call's BH q-values are cut at the
nominal FDR 0.05, 0.1 and 0.2 and scored with ``datasets.score_links``: false discovery
proportion (significant links that are not planted peaks of their gene), recall of the
non-decoy units in the cell types where they are active (by logic and by effect size,
below/above the median) and of single (linear) units in some group (by sign).

**Timing.** One ``link_peaks`` call with its defaults (sets of ``L=5``) for all genes and
groups of the first confounded data set.

**PBMC.** A surrogate fit on the shipped tiles (``pp.binarize``, ``groupby="celltype"``),
then both methods on the cell types with PCHi-C support (``resolution=1000`` for the
cross-fitted links: the tiles are contiguous 500-bp bins, and the two folds' heads may read
neighbouring tiles of one element). Per gene and cell type: tested
tiles with PCHi-C support, significant links at FDR 0.1, the share of them supported by
PCHi-C, the enrichment over the window's share and a hypergeometric p-value.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

import grids_sc as grids

D = grids.datasets
LEVELS = (0.05, 0.1, 0.2)
PCHIC_TYPES = ["B cells", "CD14+ Monocytes", "CD4 Naive", "CD8 Naive"]


def simulate(regime: str, seed: int, args) -> object:
    kw = dict(D.CONFOUNDED) if regime == "confounded" else {**D.CONFOUNDED, **D.NULL}
    return D.synthetic_multiome(args.cells, args.peaks, args.genes, n_celltypes=4, seed=seed, **kw)


def calibration(args) -> pd.DataFrame:
    rows = []
    for regime in ("confounded", "null"):
        for seed in args.seeds:
            m = simulate(regime, seed, args)
            t = time.perf_counter()
            grids.tl.fit_surrogate(m, progress=False)
            fit_s = time.perf_counter() - t
            timings = {}
            for method, key in (("grids", "links"), ("correlation", "corr")):
                t = time.perf_counter()
                grids.tl.link_peaks(
                    m, groupby="celltype", method=method, L=0, key_added=key, progress=False
                )
                timings[method] = time.perf_counter() - t
                df = grids.get.link_peaks_df(m, key)
                for level in LEVELS:
                    s = D.score_links(m, df.assign(significant=df["qvalue"] <= level))
                    rows.append({"regime": regime, "seed": seed, "method": method,
                                 "fdr": level, **s, "seconds": timings[method]})  # fmt: skip
            print(f"{regime} seed {seed}: fit {fit_s:.0f} s, links {timings['grids']:.0f} s, "
                  f"correlation {timings['correlation']:.1f} s", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def print_calibration(table: pd.DataFrame) -> None:
    cols = ["regime", "seed", "method", "fdr", "n_significant", "fdp", "unit_recall",
            "unit_recall_single", "unit_recall_or", "unit_recall_and", "unit_recall_small",
            "unit_recall_large", "linear_recall", "linear_recall_pos",
            "linear_recall_neg"]  # fmt: skip
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\nPer seed (FDP: share of significant links that are not planted peaks):")
        print(table[cols].round(3).to_string(index=False))
        summary = (
            table.groupby(["regime", "method", "fdr"])
            .agg(
                mean_fdp=("fdp", "mean"),
                max_fdp=("fdp", "max"),
                mean_significant=("n_significant", "mean"),
                unit_recall=("unit_recall", "mean"),
                recall_single=("unit_recall_single", "mean"),
                recall_or=("unit_recall_or", "mean"),
                recall_and=("unit_recall_and", "mean"),
                recall_small=("unit_recall_small", "mean"),
                recall_large=("unit_recall_large", "mean"),
                linear_recall=("linear_recall", "mean"),
                linear_pos=("linear_recall_pos", "mean"),
                linear_neg=("linear_recall_neg", "mean"),
            )
            .reset_index()
        )
        print("\nSummary over seeds (nominal FDR vs observed FDP, recall):")
        print(summary.round(3).to_string(index=False))


def timing(args) -> None:
    m = simulate("confounded", args.seeds[0], args)
    grids.tl.fit_surrogate(m, progress=False)
    t = time.perf_counter()
    grids.tl.link_peaks(m, groupby="celltype", progress=False)
    s = time.perf_counter() - t
    df = grids.get.link_peaks_df(m)
    n_pairs = df[["gene", "group"]].drop_duplicates().shape[0]
    print(f"\nTiming: link_peaks (defaults, L=5 sets) on {args.cells} cells x {args.peaks} "
          f"peaks x {args.genes} genes, 4 groups: {n_pairs} gene/group pairs, {len(df)} tested "
          f"links, {s:.1f} s")  # fmt: skip


def pbmc(args) -> None:
    from _common import pbmc_fitted

    m = pbmc_fitted(args.surrogate)
    pchic = D.pchic_support()
    for method, key in (("grids", "links"), ("correlation", "corr")):
        t = time.perf_counter()
        extra = {"resolution": 1000} if method == "grids" else {}  # contiguous 500-bp tiles
        grids.tl.link_peaks(m, groupby="celltype", groups=PCHIC_TYPES, method=method,
                            key_added=key, L=0, progress=False, **extra)  # fmt: skip
        print(f"PBMC link_peaks ({method}): {time.perf_counter() - t:.0f} s")
    rows = []
    for method, key in (("grids", "links"), ("correlation", "corr")):
        df = grids.get.link_peaks_df(m, key)
        for (gene, group), sub in df.groupby(["gene", "group"]):
            p = pchic[(pchic["gene"] == gene) & (pchic["celltype"] == group)]
            if not len(p):
                continue
            sup = p.set_index("tile")["pchic_significant"]
            tested = sub[sub["peak"].isin(sup.index)]
            is_sup = sup.reindex(tested["peak"]).to_numpy(dtype=bool)
            sig = tested["significant"].to_numpy(dtype=bool)
            n, k, n_sig, hit = (
                len(tested),
                int(is_sup.sum()),
                int(sig.sum()),
                int((sig & is_sup).sum()),
            )
            base = k / n if n else np.nan
            share = hit / n_sig if n_sig else np.nan
            rows.append({
                "gene": gene, "celltype": group, "method": method, "tested": n,
                "pchic_tiles": k, "significant": n_sig, "pchic_significant": hit,
                "share": share, "window_share": base,
                "enrichment": share / base if n_sig and base > 0 else np.nan,
                "pvalue": hypergeom.sf(hit - 1, n, k, n_sig) if n_sig else np.nan,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\nPBMC: PCHi-C support of the significant links (FDR 0.1), per gene and type:")
        print(table.round(3).to_string(index=False))
        tot = table.groupby("method")[["significant", "pchic_significant", "tested",
                                       "pchic_tiles"]].sum()  # fmt: skip
        tot["share"] = tot["pchic_significant"] / tot["significant"]
        tot["window_share"] = tot["pchic_tiles"] / tot["tested"]
        tot["enrichment"] = tot["share"] / tot["window_share"]
        print("\nPBMC pooled over genes and types:")
        print(tot.round(3).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--parts", nargs="+", default=["calibration", "timing", "pbmc"])
    ap.add_argument("--cells", type=int, default=1200)
    ap.add_argument("--peaks", type=int, default=1500)
    ap.add_argument("--genes", type=int, default=24)
    ap.add_argument("--surrogate", default=None, help="PBMC fit read from / written to here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if "calibration" in args.parts:
        print_calibration(calibration(args))
    if "timing" in args.parts:
        timing(args)
    if "pbmc" in args.parts:
        pbmc(args)


if __name__ == "__main__":
    main()
