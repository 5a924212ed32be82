"""GRIDS against the baselines of ``grids.tl.attribute``: the paper's comparison, in parts.

    python benchmarks/bench_methods.py pbmc [--methods ...] [--L 10 128] [--genes ...]
        [--split-seeds 2023 2024 2025 2026] [--out rows.csv]
    python benchmarks/bench_methods.py sim
    python benchmarks/bench_methods.py redundant [--seeds 1 2 3] [--cells 3000]
        [--fit k=v ...] [--screen stepwise] [--min-z Z] [--head-sparsity S] [--out rows.csv]
    python benchmarks/bench_methods.py a549
    python benchmarks/bench_methods.py mnist

- ``pbmc``: the shipped PBMC tiles; one surrogate (``groupby='celltype'``, seed 0); for each
  gene x cell type with at least ``--min-cells`` cells and each L: GRIDS (``explain``) and
  every method, all within 250 kb of the gene, scored by ``grids.tl.evaluate`` (held-out Avg Δ
  and Rel Δ, HR/SHR, PCHi-C enrichment where SCARlink's table covers the gene and cell type).
  Prints the per-(gene, cell type) Rel Δ table, the mean row per L, and the PCHi-C table;
  with several ``--split-seeds``, per split and then over the splits: each method's mean,
  and the rows where GRIDS is behind a method by more than two standard errors.
- ``sim``: ``synthetic_multiome`` with single, OR, AND and decoy units (3,000 cells, 1,500
  peaks, 12 genes, seed 1); L = the gene's planted peaks; precision and recall of the planted
  CREs by logic, the share of planted units switched off (an OR pair needs both peaks closed,
  an AND pair either) and the true relative effect (simulator truth) per method.
- ``redundant``: the redundant regime (3 OR pairs open in 65-75% of cells and 3 decoys open
  in 90%, with small effects, per gene; 12 genes, 1,500 peaks, ``--cells`` cells, one data set
  and cis surrogate per ``--seeds`` seed); L = 8; for ``explain``'s defaults and every method,
  the true relative effect of the selection as a fraction of the best of every 8 of the gene's
  9 planted peaks (enumerated on the simulator's truth), the OR pairs switched off, and the
  seconds per gene. ``--fit`` passes options to ``fit_surrogate`` (e.g. ``cis_peaks=24``;
  also for ``sim`` and ``pbmc``, where a ``--surrogate`` file already written is read as it is);
  ``--screen``, ``--min-z`` (the cis screen's ``method`` and ``min_z``) and
  ``--head-sparsity`` (the heads' group-lasso weight) are put in place by this script only.
- ``a549``: sci-CAR A549 (``../shared/data``), genome-wide peaks, the paper's architecture
  (``model='grids'``), L=10 over all peaks, for a
  panel of dexamethasone-responsive genes, the 5 genes the surrogate predicts best, and the
  gene set of the 100 most variable genes. SmoothGrad and integrated gradients take dense
  ``[cells, 52,761]`` inputs, so they run with 4 noise samples and 8 path steps here; SAGE's
  permutation estimator needs one evaluation per peak per permutation (52,761), so it is
  left out of this part (``--methods`` without ``sage``).
- ``mnist``: 5,000 digits from ``../shared/data``; a logistic classifier of 8 vs 3 on binarised
  pixels; L=64 pixels to blank that flip held-out 8s to 3s: GRIDS (the same
  ``GridsOptimizer`` over :class:`grids_sc.search.DenseModelProblem`) vs saliency (the mean
  input gradient), the first-order ranking and SAGE.

Everything is seeded. Expensive methods (``lime``, ``sage``, ``fimap``) can be left out with
``--methods`` to split a long run into parts.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from _common import fit_options, pbmc_fitted

import grids_sc as grids
from grids_sc.attribution import METHODS

FAST = {"lime": {"n_samples": 500}, "sage": {"n_permutations": 512}}
# genome-wide (52,761 candidate peaks): the dense-input gradient methods cost O(cells x peaks)
# per pass, so fewer noise samples and path steps
GENOME_WIDE = {**FAST, "smoothgrad": {"nt_samples": 4}, "integrated_gradients": {"n_steps": 8}}
COLS = ["avg_delta", "rel_delta"]
TIE = 1e-4  # percentage points: closer than this counts as a tie


def _run_methods(
    m, gene, methods, L, window, groupby=None, groups=None, settings=FAST, split_seed=2023,
    **explain_kw,
) -> list:  # fmt: skip
    keys = []
    t = time.perf_counter()
    key = f"grids_L{L}"
    grids.tl.explain(
        m, gene, L=L, groupby=groupby, groups=groups, window=window, key_added=key,
        progress=False, split_seed=split_seed, **explain_kw,
    )  # fmt: skip
    keys.append((key, "grids", time.perf_counter() - t))
    for method in methods:
        t = time.perf_counter()
        key = f"{method}_L{L}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grids.tl.attribute(
                m, gene, method, L=L, groupby=groupby, groups=groups, window=window,
                key_added=key, progress=False, split_seed=split_seed,
                **settings.get(method, {}),
            )  # fmt: skip
        keys.append((key, method, time.perf_counter() - t))
    return keys


def pbmc(args) -> None:
    m = pbmc_fitted(args.surrogate, **fit_options(args.fit))
    pchic = grids.datasets.pchic_support()
    counts = m.obs["celltype"].astype(str).value_counts()
    types = args.types or sorted(counts.index[counts >= args.min_cells])
    genes = args.genes or list(m["rna"].var_names)
    rows = []
    for split in args.split_seeds:
        for gene in genes:
            for ctype in types:
                for L in args.L:
                    keys = _run_methods(
                        m, gene, args.methods, L, 250_000, "celltype", ctype, split_seed=split
                    )
                    full = [k for k, _, _ in keys]
                    df = grids.tl.evaluate(m, full, pchic=pchic)
                    df["seconds"] = [s for _, _, s in keys]
                    df["L"], df["split"] = L, split
                    rows.append(df)
                    rel = "  ".join(
                        f"{r.method} {100 * r.rel_delta:+.1f}%" for r in df.itertuples()
                    )
                    print(f"{split} {gene:<9} {ctype:<18} L={L:<4} {rel}", flush=True)
                    for k in full:  # keep the object small
                        del m.uns["grids"]["explain"][k]
                    if args.out:  # every row so far, so a cut-off run keeps what it measured
                        pd.concat(rows, ignore_index=True).to_csv(args.out, index=False)
        if len(args.split_seeds) > 1:
            print(f"\n== split seed {split}")
        _report(pd.concat(rows, ignore_index=True).query("split == @split"), ["gene", "group"])
    res = pd.concat(rows, ignore_index=True)
    if len(args.split_seeds) > 1:
        _over_splits(res)
    sub = res[res["pchic_window_tested"] > 0]
    if len(sub):
        print("\nPCHi-C: significant tiles among the selected (tested) tiles, enrichment, p")
        print(
            sub.pivot_table(
                index=["gene", "group", "L"],
                columns="method",
                values=["pchic_enrichment", "pchic_pvalue"],
            ).to_string(float_format=lambda v: f"{v:.3g}")
        )


def _report(res: pd.DataFrame, index: list[str]) -> None:
    for L, part in res.groupby("L"):
        for col, what in (("rel_delta", "Rel Δ: mean over cells of (after - before) / before"),
                          ("rel_of_means", "relative change of the mean")):  # fmt: skip
            table = part.pivot_table(index=index, columns="method", values=col) * 100
            # ties (the same selection, equal up to float rounding) are not wins
            others = table.drop(columns="grids")
            wins = (table["grids"].to_numpy()[:, None] < others - TIE).mean()
            table.loc[_row("mean", index), :] = table.mean()
            table.loc[_row("median", index), :] = table.iloc[:-1].median()
            print(f"\nheld-out {what} (%) at L={L} (more negative is better)")
            print(table.to_string(float_format=lambda v: f"{v:+.2f}"))
            print("share of rows where GRIDS is strictly better: " + ", ".join(
                f"{k} {v:.2f}" for k, v in wins.items()))  # fmt: skip
        avg = part.pivot_table(index=index, columns="method", values="avg_delta")
        print(f"mean Avg Δ at L={L}:\n{avg.mean().to_string(float_format=lambda v: f'{v:+.4f}')}")
        hr = part.groupby("method")[["hr", "shr", "hr_fraction", "shr_fraction"]].mean()
        print(f"HR/SHR at L={L}:\n{hr.to_string(float_format=lambda v: f'{v:.2f}')}")
        sec = part.groupby("method")["seconds"].mean()
        print(f"mean seconds per run:\n{sec.to_string(float_format=lambda v: f'{v:.1f}')}")


def _over_splits(res: pd.DataFrame) -> None:
    """Held-out Rel Δ over split seeds: the mean per method, and per (gene, group) row the
    difference GRIDS - method with its standard error over the splits (negative: GRIDS
    ahead); rows where GRIDS is behind by more than two standard errors are listed.
    """
    for L, part in res.groupby("L"):
        table = part.pivot_table(index=["gene", "group", "split"], columns="method",
                                 values="rel_delta") * 100  # fmt: skip
        per_split = table.groupby(level="split").mean()
        print(f"\nover {len(per_split)} splits, L={L}: mean held-out Rel Δ (%) per split")
        print(per_split.to_string(float_format=lambda v: f"{v:+.2f}"))
        print("mean over splits: " + ", ".join(
            f"{k} {v:+.2f}" for k, v in per_split.mean().sort_values().items()))  # fmt: skip
        diff = table.drop(columns="grids").rsub(table["grids"], axis=0)
        by_row = diff.groupby(level=["gene", "group"])
        mean, se = by_row.mean(), by_row.std(ddof=1) / np.sqrt(by_row.size().to_numpy()[:, None])
        for method in mean.columns:
            ahead = int((mean[method] < -TIE).sum())
            behind = mean[method] > 2 * se[method] + TIE
            names = ", ".join(f"{g} {t} ({mean[method][g, t]:+.2f})" for g, t in
                              mean.index[behind.to_numpy()])  # fmt: skip
            print(f"  vs {method:<22} GRIDS ahead in {ahead}/{len(mean)} rows (mean over "
                  f"splits); behind by > 2 SE in {int(behind.sum())}" +
                  (f": {names}" if names else ""))  # fmt: skip


def _row(name: str, index: list[str]):
    """A summary row label for a table indexed by ``index`` (one or more levels)."""
    return name if len(index) == 1 else (name,) + ("",) * (len(index) - 1)


def sim(args) -> None:
    m = grids.datasets.synthetic_multiome(
        3000, 1500, 12, seed=1, n_single=2, n_or=1, n_and=1, n_decoys=2
    )
    grids.tl.fit_surrogate(m, seed=0, progress=False, **fit_options(args.fit))
    var = m["atac"].var
    rows = []
    for gene in m["rna"].var_names:
        L = int((var["cre_gene"].astype(str) == gene).sum())
        keys = _run_methods(m, gene, args.methods, L, 250_000)
        df = grids.tl.evaluate(m, [k for k, _, _ in keys])
        df["seconds"] = [s for _, _, s in keys]
        rows.append(df)
        print(f"{gene}: " + "  ".join(f"{r.method} {r.recall:.2f}" for r in df.itertuples()),
              flush=True)  # fmt: skip
    res = pd.concat(rows, ignore_index=True)
    cols = ["precision", "recall", "recall_single", "recall_or", "recall_and", "recall_decoy",
            "units", "units_or", "units_and", "true_rel_delta", "rel_delta", "seconds"]  # fmt: skip
    print("\nsimulator (mean over 12 genes; L = planted peaks; decoys count as planted)")
    print(res.groupby("method")[cols].mean().to_string(float_format=lambda v: f"{v:.3f}"))


def _true_rel(m, gene: str, peaks, base: float) -> float:
    after = grids.datasets.true_expression(m, genes=[gene], close=list(peaks))[:, 0].mean()
    return (after - base) / base


def _variant(args):
    """The cis screen and head settings of ``--screen``, ``--min-z`` and ``--head-sparsity``
    put in place of the defaults (a context manager)."""
    import contextlib
    import dataclasses
    import functools

    from grids_sc.tl import _surrogate

    @contextlib.contextmanager
    def patched():
        screen, cfg = _surrogate.screen_pairs, _surrogate.CisTrainConfig
        kw = {"method": args.screen} if args.screen else {}
        if args.min_z is not None:
            kw["min_z"] = args.min_z
        _surrogate.screen_pairs = functools.partial(screen, **kw)
        if args.head_sparsity is not None:
            _surrogate.CisTrainConfig = lambda **k: dataclasses.replace(
                cfg(**k), sparsity=args.head_sparsity
            )
        try:
            yield
        finally:
            _surrogate.screen_pairs, _surrogate.CisTrainConfig = screen, cfg

    return patched()


def redundant(args) -> None:
    import itertools

    warnings.filterwarnings("ignore", message="replaced the earlier")
    fit = fit_options(args.fit)

    rows = []
    for seed in args.seeds:
        m = grids.datasets.synthetic_multiome(
            n_cells=args.cells, n_peaks=1500, n_genes=12, seed=seed, n_single=0, n_or=3,
            n_and=0, n_decoys=3, cre_open=(0.65, 0.75), cre_off=0,
        )  # fmt: skip
        t = time.perf_counter()
        with _variant(args):
            grids.tl.fit_surrogate(m, seed=0, progress=False, **fit)
        print(f"seed {seed}: surrogate fit in {time.perf_counter() - t:.0f} s", flush=True)
        units = m.uns["simulation"]["units"]
        ug = np.asarray(units["gene"]).astype(str)
        pa, pb = (np.asarray(units[k]).astype(str) for k in ("peak_a", "peak_b"))
        for gene in m["rna"].var_names:
            base = grids.datasets.true_expression(m, genes=[gene])[:, 0].mean()
            planted = sorted((set(pa[ug == gene]) | set(pb[ug == gene])) - {""})
            best = min(_true_rel(m, gene, c, base) for c in itertools.combinations(planted, 8))
            keys = _run_methods(m, gene, args.methods, 8, 250_000)
            units_or = grids.tl.evaluate(m, [k for k, _, _ in keys])["units_or"].to_numpy()
            for (key, method, sec), uor in zip(keys, units_or):
                rec = m.uns["grids"]["explain"][key]
                rows.append({"seed": seed, "gene": gene, "method": method, "seconds": sec,
                             "fraction": _true_rel(m, gene, rec["selected"], base) / best,
                             "units_or": uor,
                             "surrogate_search": rec["delta"]["rel_of_means_train"],
                             "surrogate_test": rec["delta"]["rel_of_means_test"]})  # fmt: skip
            if args.out:
                pd.DataFrame(rows).to_csv(args.out, index=False)
        done = pd.DataFrame(rows)
        print(done[done.seed == seed].groupby("method")["fraction"].mean().round(3).to_string(),
              flush=True)  # fmt: skip
    res = pd.DataFrame(rows)
    by_seed = res.pivot_table(index="method", columns="seed", values="fraction", aggfunc="mean")
    # the surrogate's own verdict: how often a method's selection moves the group's mean
    # predicted expression at least as far as explain's (search and held-out test cells)
    ref = res[res.method == "grids"].set_index(["seed", "gene"])
    res = res.join(
        ref[["surrogate_search", "surrogate_test"]], on=["seed", "gene"], rsuffix="_grids"
    )
    res["grids_ahead_search"] = res.surrogate_search_grids <= res.surrogate_search + 1e-6
    res["grids_ahead_test"] = res.surrogate_test_grids <= res.surrogate_test + 1e-6
    by = res.groupby("method")
    table = by_seed.assign(
        mean=by["fraction"].mean(),
        units_or=by["units_or"].mean(),
        surrogate_search=by["surrogate_search"].mean(),
        surrogate_test=by["surrogate_test"].mean(),
        grids_ahead_search=by["grids_ahead_search"].mean(),
        grids_ahead_test=by["grids_ahead_test"].mean(),
        s_per_gene=by["seconds"].mean(),
    ).sort_values("mean", ascending=False)
    print(
        "\nredundant regime: fraction of the enumerated true optimum (mean over 12 genes), L = 8;"
    )
    print("surrogate_*: predicted relative change of the group mean on search / test cells;")
    print("grids_ahead_*: share of genes where explain's prediction is at least the method's")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


def a549(args) -> None:
    m = grids.datasets.a549_scicar()
    grids.pp.binarize(m)
    grids.tl.fit_surrogate(m, model="grids", seed=0, progress=False)
    fid = grids.tl.surrogate_fidelity(m)
    genes = ["PER1", "NFKBIA", "CEBPD", "ERRFI1", "TSC22D3", "KLF9", "ZFP36", "CKB"]
    genes = [g for g in genes if g in m["rna"].var_names]
    top = fid.sort_values("pearson_surrogate", ascending=False).index[:5].tolist()
    xr = m["rna"].X
    xr = xr.toarray() if hasattr(xr, "toarray") else np.asarray(xr)
    var_top = m["rna"].var_names[np.argsort(-xr.var(0))[:100]]
    panel = [*genes, *[g for g in top if g not in genes], {"top100_variable": list(var_top)}]
    if args.genes:  # a part of the panel, in the order given
        named = {g if isinstance(g, str) else next(iter(g)): g for g in panel}
        panel = [named[g] for g in args.genes if g in named]
    rows = []
    for gene in panel:
        keys = _run_methods(m, gene, args.methods, 10, None, settings=GENOME_WIDE)
        name = gene if isinstance(gene, str) else next(iter(gene))
        df = grids.tl.evaluate(m, [k for k, _, _ in keys])
        df["seconds"] = [s for _, _, s in keys]
        df["L"] = 10
        rows.append(df)
        print(f"{name}: " + "  ".join(f"{r.method} {100 * r.rel_delta:+.2f}%"
                                      for r in df.itertuples()), flush=True)  # fmt: skip
    _report(pd.concat(rows, ignore_index=True), ["gene"])


def mnist(args) -> None:
    from grids_sc.search import DenseModelProblem, run_search

    x, y = grids.datasets.mnist()
    keep = np.isin(y, [3, 8])
    x = (x[keep].reshape(-1, 784) > 127).astype(np.float32)
    y = (y[keep] == 8).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    n_tr = int(0.7 * len(y))
    tr, te = order[:n_tr], order[n_tr:]
    torch.manual_seed(0)
    clf = torch.nn.Sequential(
        torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(300):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(clf(xt[tr]).squeeze(1), yt[tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    with torch.no_grad():
        acc = float(((clf(xt[te]).squeeze(1) > 0) == (yt[te] > 0.5)).float().mean())
    print(f"8 vs 3 MLP classifier (784-64-64-1) on binarised pixels: held-out accuracy {acc:.3f}")
    eights_tr = tr[y[tr] == 1]
    eights_te = te[y[te] == 1]

    def logit(v):
        return clf(v).squeeze(-1)

    prob = DenseModelProblem(clf, xt[eights_tr], logit, perturb_value=0.0)
    test = DenseModelProblem(clf, xt[eights_te], logit, perturb_value=0.0)

    def flip_rate(sel) -> float:
        xs = xt[eights_te].clone()
        xs[:, torch.as_tensor(sel)] = 0.0
        with torch.no_grad():
            return float((logit(xs) < 0).float().mean())

    import sage

    imputer = sage.DefaultImputer(lambda v: logit(torch.as_tensor(v, dtype=torch.float32))
                                  .detach().numpy(), np.zeros(784))  # fmt: skip
    est = sage.PermutationEstimator(imputer, "mse", random_state=0)
    t = time.perf_counter()
    expl = est(x[eights_tr[:256]], np.zeros(256), batch_size=128, n_permutations=256, bar=False)
    t_s = time.perf_counter() - t
    # loss = 8-logit squared: the pixels whose presence raises it most (most negative SAGE)
    sage_rank = np.argsort(np.asarray(expl.values))
    d0 = prob.first_order(torch.empty(0, dtype=torch.long))
    # vanilla saliency: the mean gradient of the 8-logit over the training 8s (blanking a
    # pixel with a large positive gradient lowers the logit most, to first order)
    inputs = xt[eights_tr].clone().requires_grad_(True)
    logit(inputs).sum().backward()
    saliency_rank = torch.argsort(-inputs.grad.mean(0)).numpy()
    base = test.value(torch.empty(0, dtype=torch.long))
    print(f"held-out 8s ({len(eights_te)}), mean 8-logit {base:+.2f}: flip rate to 3 (logit after)")
    for L in args.mnist_L:
        t = time.perf_counter()
        res = run_search(prob, L, n_candidates=32, n_steps=500)
        t_g = time.perf_counter() - t
        sels = {"grids": res.selection, "saliency": saliency_rank[:L],
                "first_order": torch.argsort(d0)[:L].numpy(), "sage": sage_rank[:L]}  # fmt: skip
        line = "  ".join(
            f"{k} {flip_rate(v):.3f} ({test.value(torch.as_tensor(v)):+.2f})"
            for k, v in sels.items()
        )
        print(f"  L={L:<3} {line}   [grids {t_g:.0f} s, {len(res.traces[0]) - 1} steps; "
              f"sage {t_s:.0f} s]")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["pbmc", "sim", "redundant", "a549", "mnist"])
    ap.add_argument("--methods", nargs="+", default=[m for m in METHODS])
    ap.add_argument("--L", type=int, nargs="+", default=[10, 128])
    ap.add_argument("--genes", nargs="+", default=None, help="pbmc genes; a549: part of the panel")
    ap.add_argument("--types", nargs="+", default=None)
    ap.add_argument("--min-cells", type=int, default=100)
    ap.add_argument("--surrogate", help="pbmc: h5mu to read the fit from (or write it to)")
    ap.add_argument("--split-seeds", type=int, nargs="+", default=[2023],
                    help="pbmc: seeds of the 70/10/20 split of each cell type")  # fmt: skip
    ap.add_argument("--out", help="pbmc: CSV of every (split, gene, group, L, method) row")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="redundant")
    ap.add_argument("--cells", type=int, default=3000, help="redundant: cells per data set")
    ap.add_argument("--fit", nargs="*", default=[], help="sim, redundant, pbmc: fit_surrogate k=v")
    ap.add_argument("--screen", default=None, help="redundant: the cis screen's method")
    ap.add_argument("--min-z", type=float, default=None, help="redundant: the screen's min_z")
    ap.add_argument("--head-sparsity", type=float, default=None, help="redundant: heads' lasso")
    ap.add_argument("--mnist-L", type=int, nargs="+", default=[8, 16, 32, 64])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    parts = {"pbmc": pbmc, "sim": sim, "redundant": redundant, "a549": a549, "mnist": mnist}
    parts[args.part](args)
    print(f"\ntotal {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
