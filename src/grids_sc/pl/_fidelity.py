"""``grids.pl.fidelity``: held-out accuracy of the surrogate against ridge regression."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from mudata import MuData

from .._records import read
from ._style import method_color
from ._utils import as_str_array, axes_list, finish, scalar

MAX_LABELS = 15  # label every gene up to this many
MIN_MEDIAN = 5  # mark the medians from this many genes


def fidelity(
    mdata: MuData,
    key: str = "surrogate",
    *,
    genes: str | Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> list[Axes] | None:
    """Held-out fidelity: per-gene Pearson r of the surrogate vs ridge, and per-cell predictions.

    Reads ``mdata.uns['grids']['fidelity'][key]`` written by
    :func:`grids_sc.tl.surrogate_fidelity`. The first panel has one point per gene (ridge r
    on x, surrogate r on y; above the diagonal the surrogate predicts the held-out cells
    better). Each further panel shows, for one gene, the observed expression of every
    held-out cell against the surrogate's and ridge's predictions.

    Parameters
    ----------
    mdata
        The data holding the fidelity results.
    key
        The surrogate whose fidelity to show.
    genes
        Genes to show per cell (their predictions must be stored, see ``predictions`` of
        :func:`~grids_sc.tl.surrogate_fidelity`). Default: the stored genes if at most 3,
        else the stored genes at the 90th, 50th and 10th percentile of the surrogate's r.
        An empty list: only the per-gene panel.
    ax
        One axes per panel (``1 + len(genes)``).
    show, save
        As in scanpy (see :func:`grids_sc.pl.track`).

    Returns
    -------
    The list of axes, unless shown.
    """
    entry = read(mdata, "fidelity", key)
    names = as_str_array(entry["gene"])
    preds = entry.get("predictions")
    stored = as_str_array(preds["gene"]) if isinstance(preds, dict) else np.array([], dtype=str)
    r_sur = np.asarray(entry["pearson_surrogate"], dtype=np.float64)
    chosen = _genes(genes, names, stored, r_sur, key)

    fig, axs = axes_list(ax, 1 + len(chosen), width=4.0, height=4.0)
    _per_gene(axs[0], names, r_sur, np.asarray(entry["pearson_ridge"], dtype=np.float64), chosen)
    col = {g: i for i, g in enumerate(stored)}
    r_of = dict(zip(names, r_sur))
    r_ridge = dict(zip(names, np.asarray(entry["pearson_ridge"], dtype=np.float64)))
    transform = str(scalar(preds.get("transform", ""))) if isinstance(preds, dict) else ""
    for a, g in zip(axs[1:], chosen):
        j = col[g]
        obs = np.asarray(preds["observed"])[:, j]
        sur = np.asarray(preds["surrogate"])[:, j]
        rid = np.asarray(preds["ridge"])[:, j]
        _per_cell(a, g, obs, sur, rid, r_of[g], r_ridge[g], transform)
    if ax is None:
        fig.tight_layout()
    return finish(fig, "fidelity", show, save, ax, axs)


def _genes(genes, names, stored, r_sur, key) -> list[str]:
    if genes is None:
        if len(stored) <= 3:
            return list(stored)
        r = dict(zip(names, r_sur))
        vals = np.array([r[g] for g in stored])
        ok = np.isfinite(vals)
        order = np.asarray(stored)[ok][np.argsort(vals[ok], kind="stable")]
        picks = [order[int(round(q * (len(order) - 1)))] for q in (0.9, 0.5, 0.1)]
        return list(dict.fromkeys(picks))
    genes = [genes] if isinstance(genes, str) else [str(g) for g in genes]
    unknown = [g for g in genes if g not in set(names)]
    if unknown:
        raise KeyError(f"genes {unknown[:5]} are not modelled by surrogate {key!r}")
    missing = [g for g in genes if g not in set(stored)]
    if missing:
        raise KeyError(
            f"held-out predictions of {missing[:5]} are not stored: run "
            f"grids.tl.surrogate_fidelity(mdata, key={key!r}, predictions=[...]) with them"
        )
    return genes


def _per_gene(a: Axes, names, r_sur, r_ridge, chosen) -> None:
    ok = np.isfinite(r_sur) & np.isfinite(r_ridge)
    better = int((r_sur[ok] > r_ridge[ok]).sum())
    a.scatter(r_ridge[ok], r_sur[ok], s=22 if ok.sum() < 200 else 6, color=method_color("grids"),
              alpha=0.8, lw=0, label=f"genes: surrogate better for {better} of {int(ok.sum())}",
              zorder=3, rasterized=ok.sum() > 2000)  # fmt: skip
    vals = np.r_[r_sur[ok], r_ridge[ok]]
    lo, hi = (float(vals.min()), float(vals.max())) if len(vals) else (0.0, 1.0)
    pad = max(0.05, 0.08 * (hi - lo))
    lim = (max(-1.0, lo - pad), min(1.0, hi + pad))
    a.plot(lim, lim, color="#555555", lw=0.8, ls="--", zorder=1, label="equal")
    if ok.sum() >= MIN_MEDIAN:
        med_s, med_r = float(np.median(r_sur[ok])), float(np.median(r_ridge[ok]))
        a.plot(med_r, med_s, marker="+", ms=12, mew=1.6, color="black", ls="none", zorder=4,
               label=f"median: surrogate {med_s:.2f}, ridge {med_r:.2f}")  # fmt: skip
    show_labels = set(chosen) | (set(names[ok]) if ok.sum() <= MAX_LABELS else set())
    labelled = [i for i, g in enumerate(names) if g in show_labels and ok[i]]
    for j, i in enumerate(sorted(labelled, key=lambda i: r_sur[i])):
        right = j % 2 == 0  # alternate sides so that close genes do not overprint
        a.annotate(names[i], (r_ridge[i], r_sur[i]), xytext=(5 if right else -5, 0),
                   textcoords="offset points", fontsize=7, style="italic", va="center",
                   ha="left" if right else "right")  # fmt: skip
    a.set_xlim(lim)
    a.set_ylim(lim)
    a.set_aspect("equal", adjustable="box")
    a.set_xlabel("ridge regression, held-out Pearson r")
    a.set_ylabel("surrogate, held-out Pearson r")
    a.set_title("Per-gene fidelity on held-out cells", fontsize=10)
    a.legend(fontsize=7, frameon=False, loc="lower right")
    for sp in ("top", "right"):
        a.spines[sp].set_visible(False)


def _per_cell(a: Axes, gene, obs, sur, rid, r_s, r_r, transform) -> None:
    n = len(obs)
    s = float(np.clip(6000 / max(n, 1), 3, 16))
    big = n > 2000
    a.scatter(obs, rid, s=s, color=method_color("ridge"), alpha=0.45, lw=0,
              label=f"ridge (r = {r_r:.2f})", rasterized=big)  # fmt: skip
    a.scatter(obs, sur, s=s, color=method_color("surrogate"), alpha=0.45, lw=0,
              label=f"surrogate (r = {r_s:.2f})", rasterized=big)  # fmt: skip
    vals = np.r_[obs, sur, rid]
    lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
    pad = 0.04 * (hi - lo if hi > lo else 1.0)
    lim = (lo - pad, hi + pad)
    a.plot(lim, lim, color="#555555", lw=0.8, ls="--", zorder=0)
    a.set_xlim(lim)
    a.set_ylim(lim)
    a.set_aspect("equal", adjustable="box")
    scale = " (log1p)" if transform == "log1p" else ""
    a.set_xlabel(f"observed{scale}")
    a.set_ylabel(f"predicted{scale}")
    a.set_title(f"{gene}: {n:,} held-out cells", fontsize=10, style="italic")
    leg = a.legend(fontsize=7, frameon=False, loc="upper left", markerscale=max(1.0, 12 / s))
    for h in leg.legend_handles:
        h.set_alpha(1.0)
    for sp in ("top", "right"):
        a.spines[sp].set_visible(False)
