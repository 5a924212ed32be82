"""Held-out and interventional fidelity of both surrogate architectures, on every data set.

    python benchmarks/bench_fidelity.py [--data sim sim-redundant pbmc a549]
        [--models grids cis] [--epochs 60] [--threads 2]
    python benchmarks/bench_fidelity.py --a549-study [--seeds 0 1 2] [--settings defaults]

For each data set and ``fit_surrogate(model=...)`` it prints the median held-out per-gene
Pearson r of the surrogate and, on the same split, of ridge regression from ATAC and of the
group mean (``grids.tl.surrogate_fidelity``); on simulated data also the interventional
fidelity against the simulator's truth (``grids.tl.interventional_fidelity``: slope of
predicted on true knock-out effects, median OR and AND interaction ratios, true and
predicted). Data sets:

- ``sim``: ``synthetic_multiome(3000 cells, 1500 peaks, 12 genes, seed 1)`` with the default
  units (2 single peaks, an OR pair and an AND pair per gene);
- ``sim-redundant``: issue #8's regime (3 OR pairs open in ~70% of cells and 3 decoys open in
  ~90% per gene, ``cre_off=0``);
- ``pbmc``: the shipped PBMC tiles (3 genes, binarised tiles, ``groupby='celltype'``);
- ``a549``: sci-CAR A549 from ``../shared/data`` (1,185 genes, 52,761 genome-wide peaks,
  binarised, ``groupby='dex_time'``). Its peaks are hg19; the cis model gets hg19 gene
  coordinates from ``a549_scicar(gene_coordinates=True)`` (hg38 bounds moved by
  ``grids.pp.anchor_liftover``).

``--a549-study`` fits the paper's architecture on A549 under a list of settings (the
normalisation of the pooled sums, latent size, weight decay, dropout, embedding size, and
the translation phase's loss weights, which ``fit_surrogate`` does not expose and are set
through ``TrainConfig``'s defaults here), for each seed (which also draws the split), and
prints the surrogate's and ridge's median r.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

import grids_sc as grids

REDUNDANT = dict(n_single=0, n_or=3, n_and=0, n_decoys=3, cre_open=(0.65, 0.75), cre_off=0)


def load(name: str):
    """``(mdata, groupby)`` of a data set, or ``None`` when it is not at hand."""
    if name == "sim":
        return grids.datasets.synthetic_multiome(3000, 1500, 12, seed=1), None
    if name == "sim-redundant":
        return grids.datasets.synthetic_multiome(3000, 1500, 12, seed=1, **REDUNDANT), None
    if name == "pbmc":
        m = grids.datasets.pbmc10k_tiles()
        grids.pp.binarize(m)
        return m, "celltype"
    if name == "a549":
        try:
            m = grids.datasets.a549_scicar(gene_coordinates=True)
        except grids.datasets.SharedDataNotFound:
            return None
        grids.pp.binarize(m)
        m.obs["dex_time"] = m.obs["dex_time"].astype(str)
        return m, "dex_time"
    raise ValueError(name)


STUDY = {
    "defaults": {},
    "paper's layer normalisation": {"chrom_norm": "layer"},
    "n_latent=16": {"n_latent": 16},
    "n_latent=16, weight decay 1e-3": {"n_latent": 16, "weight_decay": 1e-3},
    "n_latent=8": {"n_latent": 8},
    "weight decay 1e-2": {"weight_decay": 1e-2},
    "dropout 0.3": {"dropout": 0.3},
    "emb_dim=16": {"emb_dim": 16},
    "ATAC reconstruction weight 0.01": {"lambda_atac": 0.01},
    "ATAC reconstruction weight 0": {"lambda_atac": 0.0},
    "latent and cycle weights 0.01": {"lambda_latent": 0.01, "lambda_cycle": 0.01},
    "no adversarial term": {"lambda_adv": 0.0},
}


def a549_study(seeds: list[int], settings: list[str] | None = None) -> None:
    """Median held-out r of the paper's architecture on A549 under each :data:`STUDY` setting
    (or those named in ``settings``).
    """
    import functools

    import grids_sc.tl._surrogate as fit_module
    from grids_sc.model import TrainConfig

    loaded = load("a549")
    if loaded is None:
        print("a549: shared data not found, skipped")
        return
    m0, groupby = loaded
    rows = []
    for name, kw in STUDY.items():
        if settings and name not in settings:
            continue
        kw = dict(kw)
        weights = {k: kw.pop(k) for k in list(kw) if k.startswith("lambda_")}
        fit_module.TrainConfig = functools.partial(TrainConfig, **weights)
        try:
            for seed in seeds:
                m = m0.copy()
                grids.tl.fit_surrogate(
                    m, model="grids", groupby=groupby, seed=seed, progress=False, **kw
                )
                df = grids.tl.surrogate_fidelity(m)
                rows.append({"setting": name, "seed": seed,
                             "surrogate r": df["pearson_surrogate"].median(),
                             "ridge r": df["pearson_ridge"].median()})  # fmt: skip
                print(rows[-1], flush=True)
        finally:
            fit_module.TrainConfig = TrainConfig
    table = pd.DataFrame(rows).pivot_table(index="setting", columns="seed")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["sim", "sim-redundant", "pbmc", "a549"])
    ap.add_argument("--models", nargs="+", default=["grids", "cis"])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--a549-study", action="store_true", help="the A549 settings study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--settings", nargs="+", help="study settings to run (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.a549_study:
        a549_study(args.seeds, args.settings)
        return
    rows = []
    for name in args.data:
        loaded = load(name)
        if loaded is None:
            print(f"{name}: shared data not found, skipped")
            continue
        for model in args.models:
            m, groupby = loaded[0].copy(), loaded[1]
            t = time.perf_counter()
            grids.tl.fit_surrogate(
                m, model=model, groupby=groupby, max_epochs=args.epochs, seed=0, progress=False
            )
            fit_s = time.perf_counter() - t
            df = grids.tl.surrogate_fidelity(m)
            row = {
                "data": name,
                "model": model,
                "fit s": round(fit_s),
                "surrogate r": df["pearson_surrogate"].median(),
                "ridge r": df["pearson_ridge"].median(),
                "group mean r": df["pearson_group_mean"].median(),
            }
            if name == "pbmc":
                print(f"pbmc {model} per gene:\n{df.round(3).to_string()}")
            if name.startswith("sim"):
                grids.tl.interventional_fidelity(m)
                s = m.uns["grids"]["interventional"]["surrogate"]["summary"]
                row.update(
                    slope=s["slope"],
                    or_true=s["true_ratio_or"],
                    or_pred=s["pred_ratio_or"],
                    and_true=s["true_ratio_and"],
                    and_pred=s["pred_ratio_and"],
                )
            rows.append(row)
            del m
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    print("\nmedian held-out per-gene Pearson r; knock-out slope and interaction ratios (sims)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
