"""``grids.pl.track``: a genome-browser view of a gene's window and the peaks each method chose."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.gridspec import GridSpec
from matplotlib.ticker import FuncFormatter, MaxNLocator
from mudata import MuData

from .._genome import gene_anchors, gene_coordinates, peak_coordinates
from .._records import peak_columns, read, read_links
from ._style import LOGIC_COLORS, PCHIC_COLOR, SCORE_CMAP, method_color, method_label
from ._utils import (
    finish,
    get_records,
    group_text,
    modalities,
    record_genes,
    record_method,
    scalar,
)

MIN_BAR_FRACTION = 1 / 700  # thinnest drawn bar, as a fraction of the region's width
SELECTED_BAR_FRACTION = 1 / 300  # thinnest selected bar
CMAP_FLOOR = 0.3  # the lightest colour of the score map, so that small scores stay visible
MIN_CHEVRON_FRACTION = 0.03  # strand chevrons only on genes at least this wide (of the view)
GENE_COLOR = "#222222"
LINK_COLOR = "#B2182B"
OTHER_GENE_COLOR = "#9A9A9A"


def track(
    mdata: MuData,
    keys: str | Sequence[str],
    *,
    gene: str | None = None,
    window: int | None = None,
    pchic: pd.DataFrame | None = None,
    links: str | None = None,
    atac: str | None = None,
    rna: str | None = None,
    truth: bool | None = None,
    label_ranks: int = 10,
    cmap: str = SCORE_CMAP,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> list[Axes] | None:
    """Genome-browser view of a gene's window: the gene, PCHi-C support and each result's peaks.

    One row per result (GRIDS from :func:`grids_sc.tl.explain` and baselines from
    :func:`grids_sc.tl.attribute`, stacked in the order of ``keys``): every candidate peak
    is a bar at its position whose height and colour are its score (``{key}_score`` in the
    ATAC ``var``); the selected peaks (``{key}_rank > 0``) are outlined and marked with
    their rank above. A result of a genome-wide call written without ``.var`` columns
    (``var_columns=False``) shows the peaks its record keeps: the 100 best-scored and the
    selected ones.

    Parameters
    ----------
    mdata
        The data the results were computed on.
    keys
        Result key(s) under ``mdata.uns['grids']['explain']``, all for the same gene.
    gene
        The gene whose window to draw; default the results' gene (for a gene set, the set's
        genes). Must be explained by every result.
    window
        Bases drawn on either side of the gene body; default the ``window`` the results were
        searched in (else the span of their candidate peaks).
    pchic
        Promoter-capture Hi-C support such as :func:`grids_sc.datasets.pchic_support`
        (columns ``tile``, ``gene``, ``celltype``, ``pchic_significant``; ``chrom``/``start``/
        ``end`` or tiles named like the ATAC peaks). The rows for the gene and each
        result's group are drawn in a row of their own: significant tiles as full bars,
        tested tiles without a significant interaction as short grey ticks.
    links
        Key of a :func:`grids_sc.tl.link_peaks` result: for each result's group, a row of the
        gene's tested peaks drawn as bars of ``-log10 q`` (significant links coloured, the
        call's FDR as a dashed line).
    atac, rna
        Modality names (default: those of the results' surrogate).
    truth
        Draw the planted CREs of simulated data (ATAC ``var['cre_gene']`` and
        ``['cre_logic']`` from :func:`grids_sc.datasets.synthetic_multiome`) in a row
        coloured by their logic; default when those columns exist.
    label_ranks
        Write the ranks of the first this many selected peaks (0: none).
    cmap
        Colour map of the scores (each row scaled to its largest absolute score).
    figsize
        Figure size when a new figure is made.
    ax
        Draw into the area of this axes (split into the rows) instead of a new figure.
    show
        Show the figure (default: unless ``ax`` is given or the backend cannot show).
    save
        ``True``, a file suffix (``"_cd14.pdf"``, as in scanpy) or a path to save the figure.

    Returns
    -------
    The row axes from top to bottom (genes, planted CREs, PCHi-C rows, link rows, one per
    result),
    unless shown.
    """
    records = get_records(mdata, keys)
    genes = _track_genes(records, gene)
    rna, atac = modalities(mdata, records[0][1], rna, atac)
    a_rna, a_atac = mdata.mod[rna], mdata.mod[atac]
    coords = gene_coordinates(a_rna, genes, rna)
    chroms = coords["chrom"].astype(str).unique()
    if len(chroms) > 1:
        raise ValueError(f"genes {genes} lie on several chromosomes; pass one with gene=")
    chrom = str(chroms[0])
    columns = {}
    for key, _ in records:
        columns[key] = peak_columns(a_atac, key, read(mdata, "selection", key))
        if columns[key] is None:
            raise KeyError(
                f"ATAC var has no column {key + '_score'!r} and the result keeps no peak "
                "scores: the result's peak columns are missing (were they dropped, or is "
                "this another modality?)"
            )
    peaks = peak_coordinates(a_atac, atac)
    p_chrom = peaks["chrom"].astype(str).to_numpy()
    p_start = peaks["start"].to_numpy(dtype=np.float64)
    p_end = peaks["end"].to_numpy(dtype=np.float64)
    lo, hi = _region(records, coords, window, columns, p_chrom == chrom, p_start, p_end)
    in_region = (p_chrom == chrom) & (p_end >= lo) & (p_start <= hi)

    groups = list(dict.fromkeys(r.group for _, r in records))
    pchic_rows = _pchic_rows(pchic, genes, groups, a_atac, atac, chrom, lo, hi)
    planted = _planted(a_atac.var, genes, in_region, truth)
    link_rows = _link_rows(mdata, links, genes, groups, chrom, lo, hi)
    n_top = 1 + (planted is not None) + len(pchic_rows) + len(link_rows)

    heights = [1.1] + [0.45] * (n_top - 1) + [1.25] * len(records)
    fig, row_axes, cax = _layout(ax, heights, n_top, figsize)
    for a in row_axes[1:]:
        a.sharex(row_axes[0])
    row_axes[0].set_xlim(lo, hi)
    span = hi - lo

    _draw_genes(row_axes[0], a_rna, chrom, lo, hi, genes)
    if planted is not None:
        _draw_planted(row_axes[1], planted, p_start, p_end, span)
    first_pchic = 1 + (planted is not None)
    for a, (group, tiles) in zip(row_axes[first_pchic:n_top], pchic_rows):
        _draw_pchic(a, tiles, group, span)
    for a, (group, table, fdr) in zip(row_axes[first_pchic + len(pchic_rows) : n_top], link_rows):
        _draw_links(a, table, group, fdr, span)

    norm = Normalize(0.0, 1.0)
    colormap = ListedColormap(colormaps[cmap](np.linspace(CMAP_FLOOR, 1.0, 256)))
    supported = {g: set(t.index[t["significant"].to_numpy(dtype=bool)]) for g, t in pchic_rows}
    for a, (key, record) in zip(row_axes[n_top:], records):
        group = record.group
        _draw_result(
            a, key, record, columns[key], in_region, p_start, p_end, span, norm, colormap,
            label_ranks, supported.get(group),
        )  # fmt: skip

    for a in row_axes[:-1]:
        a.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    bottom = row_axes[-1]
    bottom.xaxis.set_major_locator(MaxNLocator(7))
    bottom.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:,.2f}"))
    bottom.set_xlabel(f"{chrom} position (Mb)")

    sm = ScalarMappable(norm=norm, cmap=colormap)
    cbar = fig.colorbar(sm, cax=cax)
    cbar.set_label("|peak score|\n(fraction of the row's largest)", fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    name = ", ".join(genes)
    row_axes[0].set_title(f"{name}: candidate peaks and selections", loc="left", fontsize=11)
    row_axes[0].set_title(
        f"{chrom}:{int(lo):,}-{int(hi):,}", loc="right", fontsize=8, color="#555555"
    )
    return finish(fig, "track", show, save, ax, row_axes)


# ---------------------------------------------------------------------------- inputs


def _track_genes(records, gene) -> list[str]:
    gene_sets = [record_genes(r) for _, r in records]
    if gene is not None:
        missing = [k for (k, _), gs in zip(records, gene_sets) if str(gene) not in gs]
        if missing:
            raise ValueError(f"gene {gene!r} is not explained by results {missing[:5]}")
        return [str(gene)]
    first = gene_sets[0]
    for (k, _), gs in zip(records, gene_sets):
        if sorted(gs) != sorted(first):
            raise ValueError(
                f"results explain different genes ({records[0][0]!r}: {first}, {k!r}: {gs}); "
                "a track shows one gene's window: pass results for one gene, or gene="
            )
    return first


def _region(records, coords, window, columns, on_chrom, p_start, p_end) -> tuple[float, float]:
    g_lo, g_hi = float(coords["start"].min()), float(coords["end"].max())
    if window is None:
        searched = [r.window for _, r in records if r.window is not None and r.window > 0]
        window = max(searched) if searched else None
    if window is not None:
        if window < 0:
            raise ValueError(f"window must be non-negative, got {window}")
        return g_lo - window, g_hi + window
    # the span of the candidate peaks of all results on the gene's chromosome
    cand = on_chrom.copy()
    scored = np.zeros_like(cand)
    for key, _ in records:
        scored |= np.isfinite(columns[key]["score"])
    cand &= scored
    if not cand.any():
        return g_lo - 50_000, g_hi + 50_000
    lo, hi = min(g_lo, p_start[cand].min()), max(g_hi, p_end[cand].max())
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


def _pchic_rows(
    pchic, genes, groups, a_atac, atac, chrom, lo, hi
) -> list[tuple[str, pd.DataFrame]]:
    """Per group: the PCHi-C-tested tiles in the region (``start``, ``end``, ``significant``)."""
    if pchic is None:
        return []
    need = {"tile", "gene", "celltype", "pchic_significant"}
    if not need <= set(pchic.columns):
        raise ValueError(f"pchic needs columns {sorted(need)}; it has {list(pchic.columns)}")
    sub = pchic[pchic["gene"].astype(str).isin(genes)]
    if {"chrom", "start", "end"} <= set(sub.columns):
        pos = sub[["chrom", "start", "end"]].astype({"chrom": str})
    else:  # coordinates of the tiles from the ATAC peaks of the same names
        pc = peak_coordinates(a_atac, atac)
        pos = pc.reindex(sub["tile"].astype(str).to_numpy())
        pos.index = sub.index
    sub = sub.assign(chrom_=pos["chrom"].astype(str), start_=pos["start"], end_=pos["end"])
    sub = sub[(sub["chrom_"] == chrom) & (sub["end_"] >= lo) & (sub["start_"] <= hi)]
    rows = []
    for group in groups:
        g = sub[sub["celltype"].astype(str) == group]
        if g.empty:
            continue
        tiles = g.groupby(g["tile"].astype(str)).agg(
            start=("start_", "first"),
            end=("end_", "first"),
            significant=("pchic_significant", "any"),
        )
        rows.append((group, tiles))
    if not rows:
        import warnings

        warnings.warn(
            f"pchic has no rows for {genes} in the results' groups {groups} within the window; "
            "no PCHi-C row drawn",
            stacklevel=3,
        )
    return rows


def _link_rows(mdata, links, genes, groups, chrom, lo, hi) -> list[tuple[str, pd.DataFrame, float]]:
    """Per group: the genes' tested peaks of a ``link_peaks`` result in the region."""
    if links is None:
        return []
    from ..get import link_peaks_df

    table = link_peaks_df(mdata, links)
    fdr = float(read_links(mdata, links).fdr)
    table = table[table["gene"].astype(str).isin(genes) & (table["chrom"].astype(str) == chrom)]
    table = table[(table["end"] >= lo) & (table["start"] <= hi)]
    rows = []
    for group in groups:
        g = table[table["group"].astype(str) == str(group)]
        if not g.empty:
            rows.append((group, g, fdr))
    if not rows:
        raise ValueError(
            f"link result {links!r} tested no peak of {genes} in the results' groups {groups} "
            "within the window; call link_peaks for this gene and group, or leave links=None"
        )
    return rows


def _planted(var: pd.DataFrame, genes, in_region, truth) -> np.ndarray | None:
    """Positions and logics of the genes' planted CREs in view, or ``None`` for no row."""
    has = {"cre_gene", "cre_logic"} <= set(var.columns)
    if truth is None:
        truth = has
    if not truth:
        return None
    if not has:
        raise ValueError("truth=True needs ATAC var columns 'cre_gene' and 'cre_logic'")
    mine = var["cre_gene"].astype(str).isin(genes).to_numpy() & in_region
    return np.flatnonzero(mine), var["cre_logic"].astype(str).to_numpy()[mine]


# ---------------------------------------------------------------------------- layout and rows


def _layout(ax, heights, first_result, figsize):
    n = len(heights)
    if ax is None:
        fig = plt.figure(figsize=figsize or (10.0, 0.5 + 0.85 * sum(heights)))
        gs = GridSpec(n, 2, figure=fig, height_ratios=heights, width_ratios=[1, 0.018],
                      hspace=0.38, wspace=0.02, left=0.13, right=0.93)  # fmt: skip
    else:
        fig = ax.figure
        spec = ax.get_subplotspec()
        if spec is None:
            raise ValueError("ax= must be a subplot (e.g. from plt.subplots) to split into rows")
        gs = spec.subgridspec(n, 2, height_ratios=heights, width_ratios=[1, 0.018],
                              hspace=0.38, wspace=0.02)  # fmt: skip
        ax.remove()
    row_axes = [fig.add_subplot(gs[i, 0]) for i in range(n)]
    cax = fig.add_subplot(gs[first_result:, 1])
    return fig, row_axes, cax


def _draw_genes(a: Axes, a_rna, chrom, lo, hi, targets) -> None:
    var = a_rna.var
    span = hi - lo
    on = var[var["chrom"].astype(str) == chrom] if "chrom" in var else var.iloc[:0]
    on = on[pd.to_numeric(on["end"], errors="coerce") >= lo]
    on = on[pd.to_numeric(on["start"], errors="coerce") <= hi]
    others = [g for g in on.index.astype(str) if g not in targets]
    order = others + list(targets)  # targets drawn last, on top
    anchors = gene_anchors(var, order)
    for i, g in enumerate(order):
        row = var.loc[g]
        start, end = float(row["start"]), float(row["end"])
        target = g in targets
        color = GENE_COLOR if target else OTHER_GENE_COLOR
        y = 0.0 if target else (0.0 if len(others) < 2 else -0.35 * (i % 2))
        a.add_patch(
            plt.Rectangle(
                (start, y - 0.12), end - start, 0.24, color=color, lw=0, zorder=3, gid=f"gene:{g}"
            )  # fmt: skip
        )
        strand = str(row["strand"]) if "strand" in var.columns else ""
        if strand in ("+", "-") and end - start >= MIN_CHEVRON_FRACTION * span:
            n_chev = max(1, int((end - start) / (span / 45)))
            xs = np.linspace(start, end, n_chev + 2)[1:-1]
            a.plot(xs, np.full(len(xs), y), ls="none", marker=">" if strand == "+" else "<",
                   ms=4, color="white", zorder=4)  # fmt: skip
        if strand in ("+", "-"):
            tss = float(anchors["tss"].iloc[i])
            sign = 1 if strand == "+" else -1
            a.plot([tss, tss], [y + 0.12, y + 0.55], color=color, lw=1.2, zorder=3)
            a.annotate("", xy=(tss + sign * span / 35, y + 0.55), xytext=(tss, y + 0.55),
                       arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.2,
                                   "shrinkA": 0, "shrinkB": 0}, zorder=3)  # fmt: skip
        label = f"{g} ({strand})" if strand in ("+", "-") and target else g
        centre = min(max((start + end) / 2, lo + 0.04 * span), hi - 0.04 * span)
        a.text(centre, y - 0.22, label, ha="center", va="top", fontsize=9 if target else 7,
               style="italic", color=color, fontweight="bold" if target else "normal")  # fmt: skip
    a.set_ylim(-1.0, 0.9)
    a.set_yticks([])
    a.set_ylabel("genes", rotation=0, ha="right", va="center", fontsize=9)
    for s in ("top", "right", "left", "bottom"):
        a.spines[s].set_visible(False)
    a.axhline(0, color="#CCCCCC", lw=0.6, zorder=1)


def _draw_planted(a: Axes, planted, p_start, p_end, span) -> None:
    idx, logic = planted
    x = (p_start[idx] + p_end[idx]) / 2
    width = np.maximum(p_end[idx] - p_start[idx], span * SELECTED_BAR_FRACTION)
    for lg, color in LOGIC_COLORS.items():
        m = logic == lg
        if m.any():
            a.bar(x[m], 1.0, width=width[m], color=color, lw=0, label=f"{lg} ({int(m.sum())})")
    a.set_ylim(0, 1.05)
    a.set_yticks([])
    a.set_ylabel("planted\nCREs", rotation=0, ha="right", va="center", fontsize=8)
    for s in ("top", "right", "left"):
        a.spines[s].set_visible(False)
    if len(idx):
        a.legend(loc="upper left", bbox_to_anchor=(1.0, 1.25), fontsize=6.5, frameon=False,
                 handlelength=0.8, borderaxespad=0.2)  # fmt: skip


def _draw_pchic(a: Axes, tiles: pd.DataFrame, group: str, span: float) -> None:
    width = np.maximum(tiles["end"] - tiles["start"], span * MIN_BAR_FRACTION).to_numpy()
    x = ((tiles["start"] + tiles["end"]) / 2).to_numpy()
    sig = tiles["significant"].to_numpy(dtype=bool)
    a.bar(x[~sig], 0.35, width=width[~sig], color="#BBBBBB", lw=0, label="tested")
    a.bar(x[sig], 1.0, width=width[sig], color=PCHIC_COLOR, lw=0, label="significant")
    a.set_ylim(0, 1.05)
    a.set_yticks([])
    a.set_ylabel(f"PCHi-C\n{group}", rotation=0, ha="right", va="center", fontsize=8)
    for s in ("top", "right", "left"):
        a.spines[s].set_visible(False)
    a.text(1.0, 1.0, f"{int(sig.sum())} significant of {len(sig)} tested tiles",
           transform=a.transAxes, ha="right", va="bottom", fontsize=7, color="#444444")  # fmt: skip


def _draw_links(a: Axes, table: pd.DataFrame, group: str, fdr: float, span: float) -> None:
    x = ((table["start"] + table["end"]) / 2).to_numpy(dtype=np.float64)
    width = np.maximum((table["end"] - table["start"]).to_numpy(dtype=np.float64),
                       span * MIN_BAR_FRACTION)  # fmt: skip
    q = np.clip(table["qvalue"].to_numpy(dtype=np.float64), 1e-300, 1.0)
    height = -np.log10(q)
    sig = table["significant"].to_numpy(dtype=bool)
    a.bar(x[~sig], height[~sig], width=width[~sig], color="#BBBBBB", lw=0, label="tested")
    a.bar(x[sig], height[sig], width=width[sig], color=LINK_COLOR, lw=0, label="significant")
    line = -np.log10(fdr)
    a.axhline(line, ls="--", lw=0.7, color="#777777")
    a.set_ylim(0, 1.1 * max(line, float(height.max()) if len(height) else line))
    a.set_ylabel(f"links\n{group}\n-log10 q", rotation=0, ha="right", va="center", fontsize=8)
    a.tick_params(axis="y", labelsize=7)
    for side in ("top", "right"):
        a.spines[side].set_visible(False)
    a.text(1.0, 1.0, f"{int(sig.sum())} significant of {len(sig)} tested (FDR {fdr:g})",
           transform=a.transAxes, ha="right", va="bottom", fontsize=7, color="#444444")  # fmt: skip


def _draw_result(
    a, key, record, var: dict, in_region, p_start, p_end, span, norm, cmap, label_ranks, supported
):
    score, rank = var["score"], var["rank"]
    draw = in_region & np.isfinite(score)
    sel = draw & (rank > 0)
    x = (p_start + p_end) / 2
    width = np.maximum(p_end - p_start, span * MIN_BAR_FRACTION)
    top = float(np.nanmax(np.abs(score[draw]))) if draw.any() else 1.0
    top = top if top > 0 else 1.0
    colors = cmap(norm(np.abs(score) / top))
    rest = draw & ~sel
    a.bar(x[rest], score[rest], width=width[rest], color=colors[rest], lw=0, label="peaks")
    method = record_method(record)
    mcolor = method_color(method)
    order = np.flatnonzero(sel)[np.argsort(rank[sel])]
    sel_width = np.maximum(width[order], span * SELECTED_BAR_FRACTION)
    a.bar(x[order], score[order], width=sel_width, color=mcolor, edgecolor="black", lw=0.3,
          zorder=3, label="selected")  # fmt: skip
    ymax = max(float(np.nanmax(score[draw])) if draw.any() else 1.0, 0.0) or 1.0
    ymin = min(float(np.nanmin(score[draw])) if draw.any() else 0.0, 0.0)
    pad = 0.32 * (ymax - ymin)
    a.set_ylim(ymin - 0.04 * (ymax - ymin), ymax + pad)
    mark_y = ymax + 0.1 * (ymax - ymin)
    a.scatter(x[order], np.full(len(order), mark_y), marker="v", s=28, color=mcolor,
              edgecolor="black", lw=0.5, zorder=4, label="selected peak")  # fmt: skip
    last = -np.inf
    labelled = sorted(order[:label_ranks], key=lambda j: x[j])
    for j in labelled:
        if x[j] - last < span / 60:
            continue
        a.text(x[j], mark_y + 0.05 * (ymax - ymin), str(rank[j]), ha="center", va="bottom",
               fontsize=7, color="#222222")  # fmt: skip
        last = x[j]
    a.axhline(0, color="#888888", lw=0.5, zorder=1)
    a.yaxis.set_major_locator(MaxNLocator(3))
    a.tick_params(axis="y", labelsize=7)
    for s in ("top", "right"):
        a.spines[s].set_visible(False)
    label = method_label(method)
    a.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9, color=mcolor,
                 fontweight="bold", labelpad=8)  # fmt: skip
    group = record.group
    delta = record.delta
    rel = scalar(delta.get("rel_of_means_test", np.nan))
    outside = int((rank > 0).sum() - sel.sum())
    info = (
        f"{group_text(group)}: {int((rank > 0).sum())} peaks selected, held-out change of mean "
        f"expression {rel:+.1%}"
    )
    if supported is not None:
        names = var["peak"][rank > 0]
        info += f"; {sum(n in supported for n in names)} in significant PCHi-C tiles"
    if outside:
        info += f" ({outside} selected outside the view)"
    a.text(0.0, 1.02, info, transform=a.transAxes, ha="left", va="bottom", fontsize=7.5,
           color="#333333")  # fmt: skip
