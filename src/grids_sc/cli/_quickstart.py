"""``grids quickstart``: fit and explain on the shipped PBMC data (the README's main job)."""

from __future__ import annotations

import time


def quickstart(gene: str, group: str, L: int, epochs: int, out: str | None) -> None:
    """Load PBMC tiles, binarise, fit the surrogate, report fidelity, explain a gene."""
    import grids_sc as grids
    from grids_sc._records import read_selection

    t0 = time.perf_counter()
    mdata = grids.datasets.pbmc10k_tiles()
    print(f"loaded PBMC 10k multiome tiles: {mdata.n_obs} cells, {mdata['atac'].n_vars} tiles")
    grids.pp.binarize(mdata)
    grids.tl.fit_surrogate(mdata, groupby="celltype", max_epochs=epochs, seed=0)
    print("\nheld-out per-gene Pearson r (surrogate vs baselines):")
    print(grids.tl.surrogate_fidelity(mdata).round(3).to_string())
    grids.tl.explain(mdata, gene, L=L, groupby="celltype", groups=group, window=250_000, restarts=3)
    key = f"grids_{gene}_{group}"
    rec = read_selection(mdata, key)
    d = rec.delta
    print(f"\nGRIDS: {L} tiles whose closing lowers {gene} most in {group}")
    print(f"held-out cells: Avg delta {d['avg_test']:+.3f}, Rel delta {100 * d['rel_test']:+.1f}%")
    pp = rec.per_peak
    for p, a, r, f in zip(pp["peak"], pp["alone"], pp["restored"], pp["frequency"]):
        print(f"  {p:<26} alone {100 * a:+6.2f}%  lost if restored {100 * r:+6.2f}%  freq {f:.2f}")
    if out:
        mdata.write(out)
        print(f"\nwrote {out}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")


def add_parser(sub, common) -> None:
    """``grids quickstart [--gene] [--group] [--L] [--epochs] [--out]``."""
    q = sub.add_parser(
        "quickstart",
        parents=[common],
        help="fit and explain on the shipped PBMC data",
        description="Fit the surrogate on the shipped PBMC 10k tiles, report its held-out "
        "fidelity and explain a gene in a cell type; results are printed to stdout.",
    )
    q.add_argument("--gene", default="HLA-DQB1")
    q.add_argument("--group", default="CD14+ Monocytes")
    q.add_argument("--L", type=int, default=10)
    q.add_argument("--epochs", type=int, default=20)
    q.add_argument("--out", default=None, help="write the result .h5mu here")
    q.set_defaults(run=_run)


def _run(args, say) -> None:
    quickstart(args.gene, args.group, args.L, args.epochs, args.out)
