"""``grids.pl.link_heatmap``: significant peak–gene links × groups (ArchR's peak-to-gene map)."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from mudata import MuData

from .._records import read_links
from ._utils import axes_list, finish


def link_heatmap(
    mdata: MuData,
    key: str = "links",
    *,
    value: str = "effect",
    max_links: int = 60,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> Axes | None:
    """Heatmap of the links significant in at least one group: one row per (gene, peak),
    one column per group, coloured by ``value``; a dot marks where the link is significant.

    Parameters
    ----------
    mdata
        The data a :func:`grids_sc.tl.link_peaks` result is stored in.
    key
        The result's key in ``mdata.uns['grids']['links']``.
    value
        Column shown: ``"effect"`` (default), ``"qvalue"`` (as ``-log10``) or any numeric
        column of :func:`grids_sc.get.link_peaks_df`.
    max_links
        Most rows: the links with the smallest q-value in any group.
    ax, show, save
        As in scanpy.

    Returns
    -------
    Axes or None
        The axes unless shown.
    """
    rec = read_links(mdata, key)
    t = rec.table
    if value not in t.columns:
        raise KeyError(f"links {key!r} have no column {value!r}; they have {list(t.columns)}")
    t = t.assign(link=t["gene"] + " · " + t["peak"])
    sig = t[t["significant"].astype(bool)]
    if not len(sig):
        raise ValueError(f"links {key!r} has no significant link at FDR {rec.fdr}")
    best = sig.groupby("link")["qvalue"].min().sort_values(kind="stable")
    rows = best.index[: int(max_links)]
    sub = t[t["link"].isin(rows)]
    vals = sub.pivot_table(index="link", columns="group", values=value, aggfunc="first")
    marks = sub.pivot_table(index="link", columns="group", values="significant", aggfunc="first")
    order = sorted(rows, key=lambda r: (r.split(" · ")[0], r))
    vals, marks = vals.reindex(order), marks.reindex(index=order, columns=vals.columns)
    data = vals.to_numpy(dtype=np.float64)
    label = value
    if value == "qvalue":
        data, label = -np.log10(np.clip(data, 1e-300, 1.0)), "-log10 q"
    fig, (axis,) = axes_list(ax, 1, width=1.0 + 0.6 * data.shape[1], height=1.5 + 0.18 * len(order))
    lim = np.nanmax(np.abs(data)) if np.isfinite(data).any() else 1.0
    cmap, vmin = ("RdBu_r", -lim) if value != "qvalue" else ("viridis", 0.0)
    im = axis.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=lim, interpolation="nearest")
    yy, xx = np.nonzero(marks.fillna(False).to_numpy(dtype=bool))
    axis.scatter(xx, yy, s=6, c="k", marker="o")
    axis.set_xticks(range(data.shape[1]), [str(c) for c in vals.columns], rotation=45, ha="right")
    axis.set_yticks(range(len(order)), order, fontsize=6)
    axis.set_title(f"{rec.method} links ({key})")
    fig.colorbar(im, ax=axis, label=label, shrink=0.6)
    return finish(fig, "link_heatmap", show, save, ax, axis)
