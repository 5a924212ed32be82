"""Bit-identity check for refactors of the search: dump every output, compare two dumps.

Not a benchmark. Fits small surrogates of both kinds once (simulated data and 2,500 cells of
the PBMC tiles), then dumps, for both kinds, both move kinds, closing and opening: the stored
``explain`` and ``attribute`` records (selections, traces, deltas, per-cell and per-peak
values, scores), the ATAC ``var`` columns, and problem-level values (objective, first-order
scores, input gradients, swap/pair/add values, pair effects, per-cell predictions, the
sparse path of large selections, the attribution window function)::

    python benchmarks/check_identity.py fit DIR         # once, before the change
    python benchmarks/check_identity.py dump DIR before.npz
    # ... change the code ...
    python benchmarks/check_identity.py dump DIR after.npz
    python benchmarks/check_identity.py compare before.npz after.npz

``compare`` counts the arrays that are equal bit for bit (``np.array_equal``, NaN equal to
NaN). Issue #18's incremental-evaluation refactor: 5,671 of 5,671 against its base, and
5,663 of 5,663 against main after issue 17's merge.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mudata
import numpy as np
import torch

import grids_sc as grids
from grids_sc._inputs import atac_binary
from grids_sc.attribution import WindowObjective
from grids_sc.search import EmbeddingSumProblem

mudata.set_options(pull_on_update=False)
KINDS = ("grids", "cis")
METHODS = ("first_order", "saliency", "integrated_gradients", "smoothgrad", "fimap")


def fit(folder: Path) -> None:
    """Fit both surrogate kinds on the two data sets and write them to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sim = grids.datasets.synthetic_multiome(
        n_cells=800, n_peaks=500, n_genes=4, n_celltypes=2, seed=3
    )
    pbmc = grids.datasets.pbmc10k_tiles()
    keep = np.sort(np.random.default_rng(0).choice(pbmc.n_obs, 2500, replace=False))
    pbmc = pbmc[keep].copy()
    grids.pp.binarize(pbmc)
    for name, m, epochs in (("sim", sim, 6), ("pbmc", pbmc, 4)):
        for kind in KINDS:
            grids.tl.fit_surrogate(
                m,
                model=kind,
                groupby="celltype",
                max_epochs=epochs,
                cis_max_epochs=40,
                progress=False,
                seed=0,
                key_added=kind,
            )
        m.write(folder / f"{name}.h5mu")


def _walk(out: dict, prefix: str, obj) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in ("params", "format_version", "package_version", "version"):
                _walk(out, f"{prefix}/{k}", v)
        return
    a = np.asarray("None" if obj is None else obj)
    out[prefix] = a.astype(str) if a.dtype == object else a


def _problem_values(out: dict, pre: str, prob: EmbeddingSumProblem, rng) -> None:
    n = prob.n_features
    empty = torch.empty(0, dtype=torch.long)
    sel = torch.from_numpy(rng.choice(n, 6, replace=False))
    hint = prob.interacting_features()
    out[pre + "/interacting"] = hint.numpy()
    if len(hint) >= 6:
        sel = torch.cat([hint[:3], sel[:3]])
    out[pre + "/value0"] = np.float64(prob.value(empty))
    out[pre + "/value"] = np.float64(prob.value(sel))
    out[pre + "/first_order0"] = prob.first_order(empty).numpy()
    out[pre + "/first_order"] = prob.first_order(sel).numpy()
    out[pre + "/input_gradient"] = prob.input_gradient().numpy()
    ins = torch.from_numpy(rng.choice(n, 8, replace=False))
    out[pre + "/swap"] = prob.swap_values(sel, torch.tensor([0, 1, 2, 3, 4, 5, 0, 3]), ins).numpy()
    ins2 = torch.from_numpy(rng.choice(n, (5, 2), replace=False))
    outs2 = torch.tensor([[0, 1], [2, 3], [4, 5], [0, 5], [1, 3]])
    out[pre + "/pair"] = prob.move_values(sel, outs2, ins2).numpy()
    out[pre + "/add"] = prob.add_values(sel, ins).numpy()
    feats = torch.cat([hint[:8], ins[:4]]) if len(hint) else ins
    signs = torch.ones(len(feats))
    signs[::3] = -1
    out[pre + "/pair_effects"] = prob.pair_effects(sel, feats, signs).numpy()
    ones = torch.ones(len(feats))
    out[pre + "/pair_effects0"] = prob.pair_effects(empty, feats, ones).numpy()
    out[pre + "/per_cell_before"], out[pre + "/per_cell_after"] = prob.per_cell(sel)
    big = torch.from_numpy(rng.choice(n, min(n - 1, 600), replace=False))
    out[pre + "/value_big"] = np.float64(prob.value(big))
    out[pre + "/per_cell_big"] = prob.per_cell(big)[1]
    wf = np.arange(0, n, 9)
    fwd = WindowObjective(prob, wf)
    out[pre + "/window_x"] = fwd.x.numpy()
    u = torch.from_numpy(rng.random((20, len(wf))).astype(np.float32))
    cells = torch.from_numpy(rng.choice(prob.n_cells, 20))
    out[pre + "/window_fwd"] = fwd(u, cells).detach().numpy()
    out[pre + "/window_fwd_obs"] = fwd(fwd.x, fwd.all_cells()).detach().numpy()


def _dump_one(out: dict, name: str, path: Path, genes: list, groups: list) -> None:
    m = mudata.read_h5mu(path)
    common = dict(groupby="celltype", progress=False, device="cpu")
    for kind in KINDS:
        for moves in ("single", "pair"):
            for perturb in ("close", "open"):
                grids.tl.explain(
                    m,
                    genes,
                    L=4,
                    groups=groups,
                    key=kind,
                    perturb=perturb,
                    moves=moves,
                    restarts=2,
                    n_steps=12,
                    key_added=f"{kind}_{moves}_{perturb}",
                    **common,
                )
        grids.tl.explain(
            m,
            genes[0],
            L=4,
            groups=groups[0],
            key=kind,
            direction="up",
            init="greedy",
            n_steps=10,
            key_added=f"{kind}_up_greedy",
            **common,
        )
        grids.tl.explain(
            m,
            {"set": genes},
            L=3,
            groups=groups[0],
            key=kind,
            n_steps=10,
            key_added=f"{kind}_set",
            **common,
        )
        for method in METHODS:
            for perturb in ("close", "open"):
                grids.tl.attribute(
                    m,
                    genes[0],
                    method,
                    L=4,
                    groups=groups[0],
                    key=kind,
                    perturb=perturb,
                    key_added=f"{kind}_{method}_{perturb}",
                    **common,
                )
        f = grids.tl.get_surrogate(m, kind, check_genes=False)
        x = atac_binary(m["atac"], None, "atac")[:300]
        gidx = np.array([list(f.genes).index(g) for g in genes])
        rng = np.random.default_rng(0)
        for p in (0.0, 1.0):
            for sign in (1.0, -1.0):
                prob = EmbeddingSumProblem(f.module, x, gidx, p, sign)
                _problem_values(out, f"{name}/{kind}/prob_p{p}_s{sign}", prob, rng)
    _walk(out, f"{name}/uns", dict(m.uns["grids"]))
    for c in m["atac"].var.columns:
        out[f"{name}/var/{c}"] = np.asarray(m["atac"].var[c])


def dump(folder: Path, target: Path) -> None:
    """Run every configuration on the fitted files in ``folder``; save the arrays."""
    torch.manual_seed(0)
    out: dict = {}
    sim = mudata.read_h5mu(folder / "sim.h5mu")
    groups = list(sim.obs["celltype"].astype(str).unique()[:2])
    _dump_one(out, "sim", folder / "sim.h5mu", list(sim["rna"].var_names[:2]), groups)
    pbmc = mudata.read_h5mu(folder / "pbmc.h5mu")
    groups = pbmc.obs["celltype"].astype(str).value_counts().index[:2].tolist()
    _dump_one(out, "pbmc", folder / "pbmc.h5mu", ["CCR7", "ZEB2"], groups)
    np.savez(target, **{k.replace("/", "|"): v for k, v in out.items()})
    print(f"{len(out)} arrays written to {target}")


def compare(a_path: Path, b_path: Path) -> None:
    """Count the arrays of two dumps that are equal bit for bit."""
    a, b = np.load(a_path, allow_pickle=True), np.load(b_path, allow_pickle=True)
    common = sorted(set(a.files) & set(b.files))
    print("only in the first:", sorted(set(a.files) - set(b.files)))
    print("only in the second:", sorted(set(b.files) - set(a.files)))
    same = 0
    for k in common:
        x, y = a[k], b[k]
        nan = x.dtype.kind in "fc"
        if x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=nan):
            same += 1
        else:
            print("differs:", k.replace("|", "/"))
    print(f"{same} of {len(common)} arrays identical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fit").add_argument("folder", type=Path)
    d = sub.add_parser("dump")
    d.add_argument("folder", type=Path)
    d.add_argument("target", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.cmd == "fit":
        fit(args.folder)
    elif args.cmd == "dump":
        dump(args.folder, args.target)
    else:
        compare(args.a, args.b)


if __name__ == "__main__":
    main()
