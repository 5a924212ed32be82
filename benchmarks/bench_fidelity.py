"""Held-out and interventional fidelity of both surrogate architectures, on every data set.

    python benchmarks/bench_fidelity.py [--data sim sim-redundant sim-confounded pbmc a549]
        [--models grids cis loco] [--epochs 60] [--threads 2] [--data-seeds 1 2]
        [--fit-seeds 0 1 2] [--explain] [--loco-keep-margin 0.01] [--loco-keep-rule shrink]
        [--loco-shrink-floor 0.1] [--fit cis_monotone=1 ...]
    python benchmarks/bench_fidelity.py --a549-study [--seeds 0 1 2] [--settings defaults]

``--explain`` adds, on ``sim-redundant``, the fraction of the enumerated true optimum that
``explain``'s defaults reach (mean over the 12 genes, L=8). ``--fit-seeds`` on ``a549`` draws
the split as well (the three splits of the A549 table are fit seeds 0, 1, 2).

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
- ``sim-confounded``: ``datasets.CONFOUNDED`` (a continuous cell state opens a module of 15%
  of the peaks, none causal, and drives 30% of the genes); also prints the confounding
  ratio (:func:`confounding_ratio`, the bar: at most 0.2);
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
from _common import fit_options

import grids_sc as grids

REDUNDANT = dict(n_single=0, n_or=3, n_and=0, n_decoys=3, cre_open=(0.65, 0.75), cre_off=0)


def load(name: str):
    """``(mdata, groupby)`` of a data set, or ``None`` when it is not at hand."""
    if name == "sim":
        return grids.datasets.synthetic_multiome(3000, 1500, 12, seed=1), None
    if name == "sim-redundant":
        return grids.datasets.synthetic_multiome(3000, 1500, 12, seed=1, **REDUNDANT), None
    if name == "sim-confounded":
        kw = grids.datasets.CONFOUNDED
        return grids.datasets.synthetic_multiome(3000, 1500, 12, seed=1, **kw), None
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


def confounding_ratio(m, window: int = 250_000) -> dict:
    """The confounded regime's bar: the mean absolute predicted effect (mean over all cells)
    of closing a state-module peak in the window of a state-driven gene, divided by that of
    closing one of the gene's true linear links (single units).
    """
    from grids_sc._genome import peak_coordinates, window_pairs
    from grids_sc._inputs import atac_binary

    f = grids.tl.get_surrogate(m)
    x = atac_binary(m["atac"], None, "atac")
    av, rv = m["atac"].var, m["rna"].var
    pg, pp = window_pairs(peak_coordinates(m["atac"], "atac"), rv, window)
    module = av["state_module"].to_numpy(bool)
    logic, cre_gene = av["cre_logic"].astype(str).to_numpy(), av["cre_gene"].astype(str).to_numpy()
    mod_eff, link_eff = [], []
    for g in np.flatnonzero(rv["state_effect"].to_numpy() != 0):
        inc = f.module.incremental(x, np.array([g]))
        base = float(inc.expression(inc.initial()).mean())

        def effect(j, inc=inc, base=base):
            state = inc.perturbed(torch.tensor([int(j)]))
            return abs(float(inc.expression(state).mean()) - base)

        mod_eff += [effect(j) for j in pp[pg == g] if module[j]]
        gene = rv.index[g]
        link_eff += [effect(j) for j in np.flatnonzero((cre_gene == gene) & (logic == "single"))]
    return {
        "module effect": float(np.mean(mod_eff)),
        "link effect": float(np.mean(link_eff)),
        "ratio": float(np.mean(mod_eff) / np.mean(link_eff)),
        "n module": len(mod_eff),
        "n links": len(link_eff),
    }


def redundant_fraction(m, L: int = 8) -> float:
    """Mean over genes of the fraction of the enumerated true optimum (closing the best L of
    the planted peaks) that ``explain``'s defaults reach (``tests/test_cis.py``'s measure).
    """
    import itertools

    units = m.uns["simulation"]["units"]
    ug = np.asarray(units["gene"]).astype(str)
    pa, pb = (np.asarray(units[k]).astype(str) for k in ("peak_a", "peak_b"))

    def rel(gene, peaks, base):
        after = grids.datasets.true_expression(m, genes=[gene], close=list(peaks))[:, 0].mean()
        return (after - base) / base

    fracs = []
    for g in m["rna"].var_names:
        base = grids.datasets.true_expression(m, genes=[g])[:, 0].mean()
        planted = sorted((set(pa[ug == g]) | set(pb[ug == g])) - {""})
        best = min(rel(g, c, base) for c in itertools.combinations(planted, L))
        grids.tl.explain(m, g, L=L, key_added="e", progress=False)
        fracs.append(rel(g, m.uns["grids"]["explain"]["e"]["selected"], base) / best)
    return float(np.mean(fracs))


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


def load_sim(name: str, seed: int):
    """A simulated data set of ``load`` with another simulator seed."""
    kw = {"sim": {}, "sim-redundant": REDUNDANT, "sim-confounded": grids.datasets.CONFOUNDED}
    return grids.datasets.synthetic_multiome(3000, 1500, 12, seed=seed, **kw[name]), None


def run_one(name: str, loaded, model: str, seed: int, args) -> dict:
    """Fit ``model`` on a data set and measure it."""
    m, groupby = loaded[0].copy(), loaded[1]
    t = time.perf_counter()
    grids.tl.fit_surrogate(
        m, model=model, groupby=groupby, max_epochs=args.epochs, seed=seed, progress=False,
        **fit_options(args.fit),
    )  # fmt: skip
    fit_s = time.perf_counter() - t
    df = grids.tl.surrogate_fidelity(m)
    row = {
        "data": name,
        "model": model,
        "fit seed": seed,
        "fit s": round(fit_s),
        "surrogate r": df["pearson_surrogate"].median(),
        "ridge r": df["pearson_ridge"].median(),
        "group mean r": df["pearson_group_mean"].median(),
    }
    if name == "pbmc":
        print(f"pbmc {model} per gene:\n{df.round(3).to_string()}")
        row["genes >= ridge"] = int((df["pearson_surrogate"] >= df["pearson_ridge"]).sum())
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
    if name == "sim-confounded":
        row["confounding ratio"] = confounding_ratio(m)["ratio"]
    if name == "sim-redundant" and args.explain:
        row["explain fraction"] = redundant_fraction(m)
    return row


def set_loco_keep(margin=None, rule=None, floor=None) -> None:
    """Put ``model="loco"``'s keep margin, rule and shrink floor in place for this process
    (``None``: the package's default, ``grids_sc.tl._surrogate.LOCO_KEEP_*``).
    """
    import grids_sc.tl._surrogate as fit_module

    if margin is not None:
        fit_module.LOCO_KEEP_MARGIN = margin
    if rule is not None:
        fit_module.LOCO_KEEP_RULE = rule
    if floor is not None:
        fit_module.LOCO_SHRINK_FLOOR = floor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["sim", "sim-redundant", "pbmc", "a549"])
    ap.add_argument("--models", nargs="+", default=["grids", "cis", "loco"])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--a549-study", action="store_true", help="the A549 settings study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--settings", nargs="+", help="study settings to run (default: all)")
    ap.add_argument("--data-seeds", type=int, nargs="+", default=[1], help="simulator seeds")
    ap.add_argument(
        "--fit-seeds", type=int, nargs="+", default=[0], help="fit seeds (a549: also the split)"
    )
    ap.add_argument(
        "--explain", action="store_true", help="sim-redundant: explain's fraction of the optimum"
    )
    ap.add_argument(
        "--loco-keep-margin", type=float, help="model='loco': the heads' keep margin (default: "
        "the package's, grids_sc.tl._surrogate.LOCO_KEEP_MARGIN)",
    )  # fmt: skip
    ap.add_argument("--fit", nargs="*", default=[], help="more fit_surrogate options, k=v")
    ap.add_argument("--loco-keep-rule", help="model='loco': the heads' keep rule")
    ap.add_argument("--loco-shrink-floor", type=float, help="model='loco': the shrink floor")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    set_loco_keep(args.loco_keep_margin, args.loco_keep_rule, args.loco_shrink_floor)
    if args.a549_study:
        a549_study(args.seeds, args.settings)
        return
    rows = []
    for name in args.data:
        for data_seed in args.data_seeds if name.startswith("sim") else [None]:
            loaded = load(name) if data_seed in (None, 1) else load_sim(name, data_seed)
            if loaded is None:
                print(f"{name}: shared data not found, skipped")
                continue
            for model in args.models:
                for fit_seed in args.fit_seeds:
                    row = run_one(name, loaded, model, fit_seed, args)
                    row["data seed"] = data_seed
                    rows.append(row)
                    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    print("\nmedian held-out per-gene Pearson r; knock-out slope and interaction ratios (sims)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
