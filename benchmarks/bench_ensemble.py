"""Issue #23: the search and every attribution on an ensemble of surrogates (redundant regime).

    python benchmarks/bench_ensemble.py [--seeds 1 2 3] [--members 5] [--sizes 1 3 5]
        [--full-sizes 1 5] [--methods ...] [--multistart] [--fit k=v ...] [--explain k=v ...]
        [--cache DIR] [--out rows.csv]

For each data seed, the redundant regime of ``bench_methods.py redundant`` (3 OR pairs open
in 65-75% of cells and 3 decoys open in 90% per gene; 12 genes, 1,500 peaks, 3,000 cells);
``--members`` cis surrogates fit with seeds 0, 1, ... (each its own train/validation split).
For each ensemble size ``k`` of ``--sizes``: the mean of the first ``k`` members' predictions
is the surrogate that ``explain`` searches (and, for the sizes of ``--full-sizes``, that every
method of ``--methods`` ranks on), the same cells and split; L = 8. Reported as in
``bench_methods.py redundant``: the fraction of the enumerated true optimum, the OR pairs
switched off, the predicted change of the group mean (search and test cells), seconds.
``--multistart`` adds ``grids_multistart``: the search (explain's settings) from every
method's selection on the search cells, the end with the best search objective kept.
``--fit`` passes options to ``fit_surrogate`` (e.g. ``cis_peaks=None``), ``--explain`` to
``explain``. ``--cache`` keeps each seed's fitted data set (``seed{s}.h5mu``) for later runs.
The ensemble (``model/_ensemble.py``) is put in place of the stored surrogate for
``tl.explain`` and ``tl.attribute`` by this script only; no public option fits one.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import time
import warnings

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from bench_methods import FAST

import grids_sc as grids
from grids_sc.attribution import METHODS
from grids_sc.model._ensemble import ensemble_of
from grids_sc.search import EmbeddingSumProblem, GridsOptimizer
from grids_sc.tl import _attribute, _explain, _surrogate


def _data(seed: int, members: int, cache: str | None, fit: dict):
    tag = "".join(f"_{k}{v}" for k, v in sorted(fit.items()))
    path = os.path.join(cache, f"seed{seed}{tag}.h5mu") if cache else None
    if path and os.path.exists(path):
        m = mudata.read_h5mu(path)
        have = set(m.uns["grids"]["surrogates"])
    else:
        m = grids.datasets.synthetic_multiome(
            n_cells=3000, n_peaks=1500, n_genes=12, seed=seed, n_single=0, n_or=3,
            n_and=0, n_decoys=3, cre_open=(0.65, 0.75), cre_off=0,
        )  # fmt: skip
        have = set()
    for k in range(members):
        key = _key(k)
        if key not in have:
            t = time.perf_counter()
            grids.tl.fit_surrogate(m, seed=k, progress=False, key_added=key, **fit)
            print(f"seed {seed}: member {k} fit in {time.perf_counter() - t:.0f} s", flush=True)
    if path:
        m.write(path)
    return m


def _key(k: int) -> str:
    return "surrogate" if k == 0 else f"surrogate_{k}"


class _Ensemble:
    """Make ``tl.explain``/``tl.attribute`` use the mean of the first ``k`` members."""

    def __init__(self, m, k: int) -> None:
        self.modules = [_surrogate.get_surrogate(m, _key(i), check_genes=False) for i in range(k)]
        self.k = k
        self.module = ensemble_of([f.module for f in self.modules])

    def __enter__(self):
        fitted = dataclasses.replace(self.modules[0], module=self.module)
        self._saved = (_explain.get_surrogate, _attribute.get_surrogate)
        _explain.get_surrogate = _attribute.get_surrogate = lambda *a, **kw: fitted
        return self

    def __exit__(self, *exc):
        _explain.get_surrogate, _attribute.get_surrogate = self._saved


def _multistart(m, module, gene: str, keys: list[str]) -> np.ndarray:
    """The GRIDS search (explain's settings) from each of the selections ``keys`` on the
    search cells of their split; the end with the best search objective.
    """
    rec = m.uns["grids"]["explain"][keys[0]]
    pc = rec["per_cell"]
    train = np.asarray(pc["cell"])[np.asarray(pc["split"]).astype(str) == "train"]
    x = sp.csr_matrix(m["atac"].X, dtype=np.float32)[train]
    cand = torch.from_numpy(np.isfinite(m["atac"].var[f"{keys[0]}_score"].to_numpy()))
    names = m["atac"].var_names
    prob = EmbeddingSumProblem(module, x, np.array([list(m["rna"].var_names).index(gene)]))
    best, best_sel = np.inf, None
    for key in keys:
        sel = torch.from_numpy(names.get_indexer(m.uns["grids"]["explain"][key]["selected"]))
        opt = GridsOptimizer([sel.clone()], prob, cand, n_candidates=32, moves="pair")
        for _ in range(500):
            opt.step()
            if opt.converged:
                break
        if opt.value < best - 1e-9:
            best, best_sel = opt.value, opt.selection.numpy().copy()
    return names[best_sel].to_numpy()


def _true_rel(m, gene: str, peaks, base: float) -> float:
    after = grids.datasets.true_expression(m, genes=[gene], close=list(peaks))[:, 0].mean()
    return (after - base) / base


def _value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return None if v == "None" else v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--full-sizes", type=int, nargs="+", default=[5])
    ap.add_argument("--methods", nargs="+", default=[m for m in METHODS if m != "random"])
    ap.add_argument("--explain", nargs="*", default=[], help="extra explain options k=v")
    ap.add_argument("--fit", nargs="*", default=[], help="fit_surrogate options k=v")
    ap.add_argument(
        "--multistart",
        action="store_true",
        help="also: the search from every method's selection, best end kept",
    )
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", default=None, help="csv of every row")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="replaced the earlier")
    extra = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.explain)}
    fit = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.fit)}
    t0 = time.perf_counter()
    rows = []
    for seed in args.seeds:
        m = _data(seed, max(args.sizes), args.cache, fit)
        units = m.uns["simulation"]["units"]
        ug = np.asarray(units["gene"]).astype(str)
        pa, pb = (np.asarray(units[k]).astype(str) for k in ("peak_a", "peak_b"))
        genes = list(m["rna"].var_names)
        best, base = {}, {}
        for gene in genes:
            base[gene] = grids.datasets.true_expression(m, genes=[gene])[:, 0].mean()
            planted = sorted((set(pa[ug == gene]) | set(pb[ug == gene])) - {""})
            best[gene] = min(
                _true_rel(m, gene, c, base[gene]) for c in itertools.combinations(planted, 8)
            )
        for k in args.sizes:
            methods = args.methods if k in args.full_sizes else []
            with _Ensemble(m, k) as ens:
                for gene in genes:
                    keys = []
                    t = time.perf_counter()
                    grids.tl.explain(m, gene, L=8, window=250_000, key_added="grids",
                                     progress=False, **extra)  # fmt: skip
                    keys.append(("grids", "grids", time.perf_counter() - t))
                    for method in methods:
                        t = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            grids.tl.attribute(
                                m, gene, method, L=8, window=250_000, key_added=method,
                                progress=False, **FAST.get(method, {}),
                            )  # fmt: skip
                        keys.append((method, method, time.perf_counter() - t))
                    ev = grids.tl.evaluate(m, [k_ for k_, _, _ in keys])
                    starts = [k_ for k_, _, _ in keys]
                    if args.multistart and len(starts) > 1:
                        t = time.perf_counter()
                        sel = _multistart(m, ens.module, gene, starts)
                        sec = time.perf_counter() - t + sum(s_ for _, _, s_ in keys)
                        rows.append({
                            "seed": seed, "k": k, "gene": gene, "method": "grids_multistart",
                            "seconds": sec, "units_or": np.nan,
                            "fraction": _true_rel(m, gene, sel, base[gene]) / best[gene],
                        })  # fmt: skip
                    for (key, method, sec), uor in zip(keys, ev["units_or"].to_numpy()):
                        rec = m.uns["grids"]["explain"][key]
                        rows.append({
                            "seed": seed, "k": k, "gene": gene, "method": method,
                            "seconds": sec, "units_or": uor,
                            "fraction": _true_rel(m, gene, rec["selected"], base[gene])
                            / best[gene],
                            "surrogate_search": rec["delta"]["rel_of_means_train"],
                            "surrogate_test": rec["delta"]["rel_of_means_test"],
                        })  # fmt: skip
            done = pd.DataFrame(rows)
            part = done[(done.seed == seed) & (done.k == k)]
            print(f"seed {seed}, {k} member(s): " + ", ".join(
                f"{a} {b:.3f}" for a, b in part.groupby("method")["fraction"].mean().items()
            ), flush=True)  # fmt: skip
    res = pd.DataFrame(rows)
    if args.out:
        res.to_csv(args.out, index=False)
    table = res.pivot_table(index=["k", "method"], columns="seed", values="fraction")
    by = res.groupby(["k", "method"])
    table = table.assign(
        mean=by["fraction"].mean(),
        units_or=by["units_or"].mean(),
        surrogate_search=by["surrogate_search"].mean(),
        surrogate_test=by["surrogate_test"].mean(),
        s_per_gene=by["seconds"].mean(),
    )
    print("\nfraction of the enumerated true optimum (mean over genes), by ensemble size k")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
