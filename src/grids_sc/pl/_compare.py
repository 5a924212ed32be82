"""``grids.pl.compare``: methods side by side from ``grids.tl.evaluate``'s table."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from mudata import MuData

from .._records import HEADER, read
from ._style import method_color, method_label
from ._utils import axes_list, finish, percent_formatter

DEFAULT_METRICS = ("rel_delta", "hr", "shr", "pchic_enrichment")

# metric: (axis label, shown as a percentage, reference line)
METRICS = {
    "rel_delta": ("Rel Δ, held-out cells", True, 0.0),
    "rel_of_means": ("change of mean expression,\nheld-out cells", True, 0.0),
    "avg_delta": ("Avg Δ, held-out cells\n(expression units)", False, 0.0),
    "rel_delta_train": ("Rel Δ, search cells", True, 0.0),
    "avg_delta_train": ("Avg Δ, search cells", False, 0.0),
    "hr": ("HR: results with a selected\npeak in the gene body", True, None),
    "shr": ("SHR: results with a selected\npeak near the gene", True, None),
    "hr_fraction": ("selected peaks\nin the gene body", True, None),
    "shr_fraction": ("selected peaks\nnear the gene", True, None),
    "pchic_enrichment": ("PCHi-C enrichment\n(fold over window)", False, 1.0),
    "precision": ("precision of planted CREs", True, None),
    "recall": ("recall of planted CREs", True, None),
    "true_rel_delta": ("true change of mean\nexpression (simulator)", True, 0.0),
}


def compare(
    df: pd.DataFrame | MuData,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    by: str = "method",
    key: str = "evaluation",
    order: Sequence[str] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> list[Axes] | None:
    """Methods side by side: one panel per metric, a bar per method (the mean over its rows,
    e.g. genes and groups) with each row as a point.

    Parameters
    ----------
    df
        The table :func:`grids_sc.tl.evaluate` returned, or the MuData it was stored in
        (``mdata.uns['grids']['evaluations'][key]``).
    metrics
        Columns to show. With the default, columns the table lacks (``pchic_enrichment``
        without ``pchic=``) are left out; named explicitly, a missing one is an error.
        ``hr``/``shr`` (booleans) are shown as the fraction of results with a hit.
    by
        Column whose values are the bars (``"method"``, or e.g. ``"key"``, ``"group"``).
    key
        Where the table is stored when ``df`` is a MuData.
    order
        Bar order (default: first appearance, GRIDS first).
    ax
        One axes per metric.
    show, save
        As in scanpy (see :func:`grids_sc.pl.track`).

    Returns
    -------
    The list of axes, unless shown.
    """
    table = _table(df, key)
    if by not in table.columns:
        raise KeyError(f"column {by!r} not in the evaluation table ({list(table.columns)})")
    metrics = _metrics(table, metrics)
    _check_like_with_like(table, by)
    labels = list(pd.unique(table[by].astype(str)))
    if order is not None:
        unknown = [o for o in order if o not in labels]
        if unknown:
            raise ValueError(f"order names {unknown} not found in column {by!r} ({labels})")
        labels = [str(o) for o in order]
    elif "grids" in labels:
        labels = ["grids"] + [m for m in labels if m != "grids"]
    if by == "method":
        colors = [method_color(m, i) for i, m in enumerate(labels)]
        names = [method_label(m) for m in labels]
    else:
        cmap = colormaps["tab10"]
        colors = [cmap(i % cmap.N) for i in range(len(labels))]
        names = labels
    fig, axs = axes_list(ax, len(metrics), width=max(2.6, 0.55 * len(labels) + 1.3), height=3.6)
    values = table[by].astype(str)
    rng = np.random.default_rng(0)
    for a, metric in zip(axs, metrics):
        text, percent, ref = METRICS.get(metric, (metric, False, None))
        col = table[metric].astype(np.float64)
        xs = np.arange(len(labels))
        means = np.array([np.nanmean(col[values == m]) if col[values == m].notna().any()
                          else np.nan for m in labels])  # fmt: skip
        a.bar(xs, np.nan_to_num(means), color=colors, width=0.7, edgecolor="none", zorder=2)
        for x, m in zip(xs, labels):
            v = col[values == m].dropna().to_numpy()
            if len(v) > 1:
                a.scatter(x + rng.uniform(-0.18, 0.18, len(v)), v, s=10, color="black",
                          alpha=0.6, lw=0, zorder=3)  # fmt: skip
        for x, m, v in zip(xs, labels, means):
            if np.isfinite(v):
                s = f"{v:.0%}" if percent else f"{v:.2g}"
                s = s.replace("-0%", "0%")
                p = _single_pvalue(table, values, m, metric)
                if p is not None:
                    s += f"\np = {p:.2g}"
                a.annotate(s, (x, v), xytext=(0, 2 if v >= 0 else -2), textcoords="offset points",
                           ha="center", va="bottom" if v >= 0 else "top", fontsize=7)  # fmt: skip
            else:
                a.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, color="#777777")
        if ref is not None:
            a.axhline(ref, color="#555555", lw=0.7, ls="--" if ref else "-", zorder=1)
        a.set_xticks(xs, names, rotation=45 if len(labels) > 3 else 0,
                     ha="right" if len(labels) > 3 else "center", fontsize=8)  # fmt: skip
        a.set_ylabel(text, fontsize=9)
        if percent:
            percent_formatter(a, "y")
        if metric in ("hr", "shr", "hr_fraction", "shr_fraction", "precision", "recall"):
            a.set_ylim(0, 1.1)
        else:
            lo, hi = a.get_ylim()
            a.set_ylim(lo - 0.06 * (hi - lo) if lo < 0 else lo, hi + 0.06 * (hi - lo))
        for sp in ("top", "right"):
            a.spines[sp].set_visible(False)
    counts = values.value_counts()
    if (counts > 1).any():
        axs[0].set_title("bars: mean over results, dots: each result", loc="left", fontsize=8,
                         color="#444444")  # fmt: skip
    if ax is None:
        fig.tight_layout()
    return finish(fig, "compare", show, save, ax, axs)


def _table(df, key: str) -> pd.DataFrame:
    if isinstance(df, pd.DataFrame):
        return df
    if isinstance(df, MuData):
        stored = read(df, "evaluation", key)
        return pd.DataFrame({c: np.asarray(v) for c, v in stored.items() if c not in HEADER})
    raise TypeError(f"df must be a DataFrame or a MuData, got {type(df).__name__}")


def _single_pvalue(table: pd.DataFrame, values: pd.Series, label: str, metric: str):
    """The enrichment p-value of a bar that holds one result (else ``None``)."""
    if metric != "pchic_enrichment" or "pchic_pvalue" not in table.columns:
        return None
    p = table.loc[(values == label).to_numpy(), "pchic_pvalue"].dropna()
    return float(p.iloc[0]) if len(p) == 1 else None


def _check_like_with_like(table: pd.DataFrame, by: str) -> None:
    """Warn when the bars summarise different (gene, group) sets."""
    if by != "method" or not {"gene", "group"} <= set(table.columns):
        return
    sets = {
        str(m): frozenset(zip(d["gene"].astype(str), d["group"].astype(str)))
        for m, d in table.groupby(table["method"].astype(str))
    }
    if len(set(sets.values())) > 1:
        counts = {m: len(v) for m, v in sets.items()}
        warnings.warn(
            "the methods were evaluated on different (gene, group) sets, so their bars average "
            f"different results ({counts} results each); evaluate the same genes and groups "
            "for every method to compare them",
            stacklevel=3,
        )


def _metrics(table: pd.DataFrame, metrics) -> list[str]:
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    default = tuple(metrics) == DEFAULT_METRICS
    present = [m for m in metrics if m in table.columns and table[m].notna().any()]
    missing = [m for m in metrics if m not in present]
    if missing and not default:
        raise KeyError(
            f"metrics {missing} are not in the evaluation table (or all NaN); it has "
            f"{list(table.columns)}"
        )
    if missing and "pchic_enrichment" in missing and len(missing) == 1:
        pass  # evaluated without pchic=: silently left out
    elif missing:
        warnings.warn(f"metrics {missing} not in the table; left out", stacklevel=3)
    if not present:
        raise ValueError("none of the metrics is in the evaluation table")
    return present
