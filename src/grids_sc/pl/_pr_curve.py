"""``grids.pl.pr_curve``: precision–recall curves on CRISPRi ground truth, with the baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._crispr import (
    BASELINE,
    MIN_RECALL,
    PAIR_COLUMNS,
    auprc_from_points,
    pr_points,
    precision_at_recall,
)
from ._style import method_color, method_label
from ._utils import axes_list, finish

BASELINE_COLOR = "#777777"


def _predictor_columns(pairs: Sequence[pd.DataFrame]) -> dict[str, np.ndarray]:
    first = pairs[0]
    ident = ["chrom", "chromStart", "chromEnd", "measuredGeneSymbol", "CellType"]
    scores: dict[str, np.ndarray] = {}
    for table in pairs:
        missing = [c for c in PAIR_COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(
                f"a pair table lacks columns {missing}: pass tables grids.tl.crispr_pairs returned"
            )
        if len(table) != len(first) or not table[ident].reset_index(drop=True).equals(
            first[ident].reset_index(drop=True)
        ):
            raise ValueError(
                "the pair tables hold different pairs: make them from the same CRISPR table "
                "(and cell_type=, genes=) so the curves compare like with like"
            )
        for col in table.columns:
            if col not in PAIR_COLUMNS:
                if col in scores:
                    raise ValueError(f"predictor {col!r} is in more than one pair table")
                scores[col] = table[col].to_numpy(dtype=np.float64)
    return scores


def pr_curve(
    pairs: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    predictors: Sequence[str] | None = None,
    baseline: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> Axes | None:
    """Precision–recall curves of predictors on CRISPRi pairs, with the distance baseline.

    Each curve joins the points of the distinct score thresholds, highest first, without
    the point of the lowest score (where the unpredicted, filled pairs enter), so the area
    under it is the AUPRC of :func:`grids_sc.tl.evaluate_crispr`, given in the legend. A dot
    marks the precision at 70% recall; the dashed line is the share of positive pairs.

    Parameters
    ----------
    pairs
        A table :func:`grids_sc.tl.crispr_pairs` returned, or several made from the same
        CRISPR table (one predictor each).
    predictors
        The predictor columns to draw (default: all).
    baseline
        Also draw the distance-to-TSS baseline (grey).
    ax
        Axes to draw into.
    show, save
        As in scanpy (see :func:`grids_sc.pl.track`).

    Returns
    -------
    The axes, unless shown.
    """
    tables = [pairs] if isinstance(pairs, pd.DataFrame) else list(pairs)
    if not tables:
        raise ValueError("no pair table given")
    scores = _predictor_columns(tables)
    if predictors is not None:
        unknown = [p for p in predictors if p not in scores]
        if unknown:
            raise KeyError(f"predictors {unknown} not in the pair tables; they hold {list(scores)}")
        scores = {p: scores[p] for p in predictors}
    first = tables[0]
    label = first["Regulated"].to_numpy(dtype=bool)
    if label.all() or not label.any():
        raise ValueError("the pairs must hold both positives and negatives")
    if baseline:
        dist = first["distance"].to_numpy(dtype=np.float64)
        scores[BASELINE] = np.where(np.isfinite(dist), -dist, -np.inf)
    fig, (a,) = axes_list(ax, 1, width=4.6, height=4.2)
    for i, (name, s) in enumerate(scores.items()):
        _, p, r = pr_points(s, label)
        area = auprc_from_points(p, r)
        at = precision_at_recall(p, r, MIN_RECALL)  # the first threshold reaching 70%
        is_base = name == BASELINE
        color = BASELINE_COLOR if is_base else method_color(name, i)
        text = "Distance to TSS" if is_base else method_label(name)
        a.plot(r[:-1], p[:-1], color=color, lw=1.6, ls="--" if is_base else "-",
               label=f"{text} (AUPRC {area:.2f})")  # fmt: skip
        reach = np.flatnonzero(r >= MIN_RECALL)
        if len(reach):
            a.plot([r[reach[0]]], [at], "o", color=color, ms=5)
    share = label.mean()
    a.axhline(share, color="#333333", lw=0.8, ls=":", label=f"positives ({share:.1%})")
    a.axvline(MIN_RECALL, color="#BBBBBB", lw=0.6, zorder=0)
    a.set_xlim(0, 1)
    a.set_ylim(0, 1.02)
    a.set_xlabel("Recall")
    a.set_ylabel("Precision")
    n_pos = int(label.sum())
    a.set_title(f"CRISPRi pairs: {len(label):,} ({n_pos} positive)", fontsize=9, loc="left")
    a.legend(fontsize=7, frameon=False, loc="upper right")
    for sp in ("top", "right"):
        a.spines[sp].set_visible(False)
    if ax is None:
        fig.tight_layout()
    return finish(fig, "pr_curve", show, save, ax, a)
