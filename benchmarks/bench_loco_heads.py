"""Which LOCO heads to keep on A549 (issue #21): the heads against the state alone, per gene.

    python benchmarks/bench_loco_heads.py fit --seed 0 --out loco_heads_s0.npz
        --rule validation --margin 0 [--sparsity 0.01] [--data a549]
    python benchmarks/bench_loco_heads.py rules loco_heads_s0.npz [loco_heads_s1.npz ...]

``fit`` runs ``fit_surrogate(model="loco", groupby="dex_time", seed=...)`` on the sci-CAR A549
data (``bench_fidelity.py``'s loading; the seed also draws the split) with the heads' keep
rule ``--rule`` and margin ``--margin`` (``--rule validation --margin 0``: every head that
beats the silent start on the validation cells is kept whole, which the rules below need)
and saves, for the validation and held-out cells, the observed expression, the full
surrogate's prediction, the state's prediction alone (the silent head: the state plus each
gene's mean training residual) and the predictions of the heads each validation half picks
(early stopping on that half alone), with the halves, each head's best epoch, its
cross-fitted gain and the ridge baseline's per-gene held-out r of ``surrogate_fidelity``.

``rules`` reads such files and prints, for rules that keep, scale or silence a gene's head
from the validation cells alone, the median held-out per-gene r of the surrogate so chosen
and how many heads each keeps: a relative validation-loss improvement of at least ``m``
(``keep_rule="validation"``, ``keep_margin``); a paired test over the validation cells (the
per-cell difference of squared errors, state alone minus head, its mean at least ``t``
standard errors above 0); the cross-fitted gain (each half's pick scored on the other half,
``keep_rule="crossfit"``) above a margin, or one half's alone; and ``keep_rule="shrink"``
(whole above the margin, else the head times its cross-fitted scale, at least a floor), and
every head times its scale. The figures of the rules are what a fit with that rule gives (the
choice is made after training, from the same heads).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch

import grids_sc as grids
from grids_sc._inputs import atac_binary, rna_values
from grids_sc.model._batch import make_batch
from grids_sc.tl._ridge import pearson_per_column


def _predict(module, x, pc, n_chrom, idx, silent_bias):
    """Unclamped full and state-alone predictions of the cells ``idx``."""
    enc = module.atac_encoder
    full, state = [], []
    with torch.no_grad():
        for s in range(0, len(idx), 512):
            b = make_batch(x[idx[s : s + 512]], pc, n_chrom)
            full.append(module(b, clamp=False))
            zc = module.chrom_latents(enc.chrom_layer(enc.pool(b)))
            state.append(module.state_from_chrom(zc) + silent_bias)
    return torch.cat(full).numpy(), torch.cat(state).numpy()


def fit(args) -> None:
    from bench_fidelity import load, set_loco_keep

    import grids_sc.tl._surrogate as fit_module

    m, groupby = load(args.data)
    t = time.perf_counter()
    set_loco_keep(args.margin, args.rule, args.floor)
    if args.sparsity is not None:  # the heads' group-lasso weight (a variant)
        import functools

        from grids_sc.model import CisTrainConfig

        fit_module.CisTrainConfig = functools.partial(CisTrainConfig, sparsity=args.sparsity)
    halves_out: dict = {}
    real_fit = fit_module.fit_cis_heads

    def fit_heads(*a, **kw):  # keeps each validation half's best heads for the rules
        return real_fit(*a, **kw, halves_out=halves_out)

    fit_module.fit_cis_heads = fit_heads
    grids.tl.fit_surrogate(m, model="loco", groupby=groupby, seed=args.seed, progress=False)
    fit_module.fit_cis_heads = real_fit
    fit_s = time.perf_counter() - t
    f = grids.tl.get_surrogate(m)
    module = f.module.eval()
    x = sp.csr_matrix(atac_binary(m["atac"], None, "atac"), dtype=np.float32)
    y, _ = rna_values(m["rna"], None, "auto", "rna")
    y = np.asarray(y, dtype=np.float32)
    obs = m.obs_names.to_numpy().astype(str)
    pos = {o: i for i, o in enumerate(obs)}
    tr, va, te = (np.array([pos[o] for o in f.split[k]]) for k in ("train", "validation", "test"))
    enc = module.atac_encoder
    pc, n_chrom = enc.peak_chrom.numpy(), enc.n_chrom
    # the silent head's constant: each gene's mean training residual of the state
    _, r_tr = _predict(module, x, pc, n_chrom, tr, 0.0)
    bias = torch.from_numpy((y[tr] - r_tr).mean(0))
    out = {"fit_s": fit_s, "seed": args.seed, "data": args.data}
    for name, idx in (("val", va), ("test", te)):
        full, state = _predict(module, x, pc, n_chrom, idx, bias)
        out.update({f"y_{name}": y[idx], f"full_{name}": full, f"state_{name}": state})
    # each validation half's best heads (early stopping on that half alone)
    out["val_halves"] = np.asarray(halves_out["val_halves"])
    kept = {k: v.clone() for k, v in module.cis.state_dict().items()}
    for h, params in enumerate(halves_out["states"]):
        module.cis.load_state_dict(params, strict=False)
        for name, idx in (("val", va), ("test", te)):
            out[f"half{h}_{name}"] = _predict(module, x, pc, n_chrom, idx, bias)[0]
    module.cis.load_state_dict(kept)
    hist = m.uns["grids"]["surrogates"]["surrogate"]["history"]["cis"]
    for k in ("best_epoch", "best_val", "silent_val", "crossfit_gain", "half_gain",
              "crossfit_alpha", "head_scale"):  # fmt: skip
        if k in hist:
            out[k] = np.asarray(hist[k])
    df = grids.tl.surrogate_fidelity(m, predictions=False)
    out["ridge_r"] = df["pearson_ridge"].to_numpy()
    out["surrogate_r"] = df["pearson_surrogate"].to_numpy()
    np.savez_compressed(args.out, **out)
    print(
        f"seed {args.seed}: fit {fit_s:.0f} s, surrogate r {np.nanmedian(out['surrogate_r']):.4f}"
        f", ridge r {np.nanmedian(out['ridge_r']):.4f}, heads kept "
        f"{int((out['best_epoch'] >= 0).sum())} of {len(out['best_epoch'])}"
    )


def _median_r(pred, y) -> float:
    return float(np.nanmedian(pearson_per_column(np.maximum(pred, 0), y)))


def rules(args) -> None:
    for path in args.files:
        d = np.load(path)
        yv, fv, sv = d["y_val"], d["full_val"], d["state_val"]
        yt, ft, st = d["y_test"], d["full_test"], d["state_test"]
        ev_s, ev_h = (sv - yv) ** 2, (fv - yv) ** 2
        rel = (ev_s.mean(0) - ev_h.mean(0)) / ev_s.mean(0)
        diff = ev_s - ev_h
        tstat = diff.mean(0) / (diff.std(0, ddof=1) / np.sqrt(len(diff)) + 1e-12)
        name = str(d["data"]) if "data" in d else "a549"
        print(f"{path}: {name}, seed {int(d['seed'])}, ridge {np.nanmedian(d['ridge_r']):.4f}, "
              f"fit {float(d['fit_s']):.0f} s")  # fmt: skip
        if yt.shape[1] <= 20:  # per gene: validation gain, paired t, held-out r
            rs = pearson_per_column(np.maximum(st, 0), yt)
            rh = pearson_per_column(np.maximum(ft, 0), yt)
            for g in range(yt.shape[1]):
                print(f"    gene {g}: relative gain {rel[g]:.4f}, t {tstat[g]:.2f}, held-out r "
                      f"state {rs[g]:.3f}, with head {rh[g]:.3f}, "
                      f"ridge {d['ridge_r'][g]:.3f}")  # fmt: skip
        print(f"  state alone: {_median_r(st, yt):.4f}; every head kept: {_median_r(ft, yt):.4f}")
        print(f"  relative validation improvement, quantiles 10/50/90/99%: "
              f"{np.round(np.quantile(rel, [0.1, 0.5, 0.9, 0.99]), 4)}")  # fmt: skip
        rules_ = [
            *[(f"relative improvement >= {mm:g}", rel >= mm) for mm in args.margins],
            *[(f"paired t >= {tt:g}", tstat >= tt) for tt in args.t],
        ]
        scales = [(name, keep.astype(float)) for name, keep in rules_]
        if "crossfit_gain" in d:  # the cross-fitted rules (gain on the half that did not choose)
            cg, hg = d["crossfit_gain"], d["half_gain"]
            alpha = _crossfit_alpha(d)
            if yt.shape[1] <= 20:
                print(f"    cross-fitted gain per gene: {np.round(cg, 4)}")
                print(f"    half 0 -> 1: {np.round(hg[0], 4)}; 1 -> 0: {np.round(hg[1], 4)}")
                print(f"    cross-fitted scale per gene: {np.round(alpha, 3)}")
            print(f"  cross-fitted gain, quantiles 10/50/90/99%: "
                  f"{np.round(np.quantile(cg, [0.1, 0.5, 0.9, 0.99]), 4)}")  # fmt: skip
            print(f"  cross-fitted scale, quantiles 10/50/90/99%: "
                  f"{np.round(np.quantile(alpha, [0.1, 0.5, 0.9, 0.99]), 3)}")  # fmt: skip
            scales += [(f"cross-fitted gain > {mm:g}", (cg > mm).astype(float))
                       for mm in args.crossfit]  # fmt: skip
            scales += [(f"one half (0 -> 1) gain > {mm:g}", (hg[0] > mm).astype(float))
                       for mm in args.crossfit]  # fmt: skip
            a = np.clip(alpha, 0.0, 1.0)
            for floor in args.floors:  # keep_rule="shrink" (floor 0) and floored variants
                shrunk = np.where(cg > 0, 1.0, np.maximum(a, floor))
                scales.append((f"shrink (gain > 0: whole head; else scale, floor {floor:g})",
                               shrunk))  # fmt: skip
                scales.append((f"every head times its scale, floor {floor:g}",
                               np.maximum(a, floor)))  # fmt: skip
        for name, scale in scales:
            pred = st + scale[None, :] * (ft - st)
            print(f"  {name}: r {_median_r(pred, yt):.4f}, heads kept {int((scale > 0).sum())}"
                  f", at full size {int((scale == 1).sum())}")  # fmt: skip


def _crossfit_alpha(d) -> np.ndarray:
    """Each head's least-squares scale on the validation half that did not pick its epoch
    (``CisTrainConfig.keep_rule``; from the halves' heads when the file predates it).
    """
    if "crossfit_alpha" in d:
        return d["crossfit_alpha"]
    half = d["val_halves"].astype(bool)
    r = d["y_val"] - d["state_val"]
    num = den = 0.0
    for h, cells in ((0, half), (1, ~half)):  # half h's heads scored on the other half
        dh = (d[f"half{h}_val"] - d["state_val"])[cells]
        num = num + (r[cells] * dh).sum(0)
        den = den + (dh**2).sum(0)
    return np.where(den > 0, num / np.maximum(den, 1e-30), 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("fit")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--data", default="a549", help="a data set of bench_fidelity.load")
    a.add_argument("--out", required=True)
    a.add_argument("--margin", type=float, help="the heads' keep margin (default: the package's)")
    a.add_argument("--sparsity", type=float, help="the heads' group-lasso weight (default 3e-3)")
    a.add_argument("--rule", choices=["validation", "crossfit", "shrink"], help="the keep rule")
    a.add_argument("--floor", type=float, help="the keep rule 'shrink''s floor")
    b = sub.add_parser("rules")
    b.add_argument("files", nargs="+")
    b.add_argument("--margins", type=float, nargs="+", default=[0, 0.005, 0.01, 0.02, 0.03, 0.05])
    b.add_argument("--t", type=float, nargs="+", default=[1, 2, 3, 4])
    b.add_argument("--crossfit", type=float, nargs="+", default=[-0.005, 0, 0.0025, 0.005, 0.01])
    b.add_argument("--floors", type=float, nargs="+", default=[0, 0.05, 0.1, 0.2])
    args = ap.parse_args()
    torch.set_num_threads(1)
    fit(args) if args.cmd == "fit" else rules(args)


if __name__ == "__main__":
    main()
