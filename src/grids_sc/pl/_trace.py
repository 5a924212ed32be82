"""``grids.pl.trace``: the search objective over steps, restarts faint."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from mudata import MuData

from .._records import SelectionRecord
from ._style import method_label, series_colors
from ._utils import (
    axes_list,
    finish,
    get_records,
    group_text,
    percent_formatter,
    record_method,
    record_name,
    scalar,
)


def trace(
    mdata: MuData,
    keys: str | Sequence[str],
    *,
    restarts: bool = True,
    baselines: bool = True,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> Axes | None:
    """The GRIDS objective, the relative change of mean predicted expression, over search steps.

    Parameters
    ----------
    mdata
        The data holding the results.
    keys
        Result key(s). ``explain`` results are drawn as lines (the kept restart bold, the
        others faint); results without a trace (``attribute`` baselines) as dashed
        horizontal lines at their change on the same search cells.
    restarts
        Draw the restarts that were not kept (``restart_traces``).
    baselines
        Draw results without a trace as horizontal lines.
    ax, show, save
        As in scanpy (see :func:`grids_sc.pl.track`).

    Returns
    -------
    The axes, unless shown.
    """
    records = get_records(mdata, keys)
    if not any("trace" in r.extra for _, r in records):
        raise ValueError(
            "none of these results has a search trace (tl.attribute results have none); "
            "pass a tl.explain result"
        )
    fig, (a,) = axes_list(ax, 1, width=5.6, height=3.8)
    methods = [record_method(r) for _, r in records]
    colors = series_colors(methods, [k for k, _ in records])
    distinct_genes = len({record_name(r) for _, r in records}) > 1
    distinct_groups = len({r.group for _, r in records}) > 1
    n_steps = 1
    for (_k, record), method, color in zip(records, methods, colors):
        label = _label(record, method, distinct_genes, distinct_groups)
        if "trace" not in record.extra:
            if baselines:
                value = record.delta.get("rel_of_means_train", np.nan)
                a.axhline(value, color=color, ls="--", lw=1.2, label=f"{label} (no search)")
            continue
        main = np.asarray(record.extra["trace"], dtype=np.float64)
        n_steps = max(n_steps, len(main) - 1)
        if restarts and "restart_traces" in record.extra:
            all_traces = np.atleast_2d(np.asarray(record.extra["restart_traces"], dtype=np.float64))
            best = int(scalar(record.extra.get("best_restart", 0)))
            others = [t[np.isfinite(t)] for i, t in enumerate(all_traces) if i != best]
            for i, t in enumerate(others):
                a.plot(np.arange(len(t)), t, color=color, lw=0.9, alpha=0.3,
                       label=f"{label}: other restarts" if i == 0 else None)  # fmt: skip
                n_steps = max(n_steps, len(t) - 1)
        a.plot(np.arange(len(main)), main, color=color, lw=2.0, label=label)
        a.plot(len(main) - 1, main[-1], "o", color=color, ms=5)
    a.axhline(0, color="#888888", lw=0.6)
    a.set_xlim(0, n_steps * 1.02 if n_steps else 1)
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_xlabel("search step")
    a.set_ylabel("change of mean predicted expression\n(search cells)")
    percent_formatter(a, "y")
    first = records[0][1]
    title = f"Search trace: {record_name(first)}"
    if not distinct_groups:
        title += f", {group_text(first.group)}"
    a.set_title(title, fontsize=10)
    a.legend(fontsize=7, frameon=False, loc="best")
    for sp in ("top", "right"):
        a.spines[sp].set_visible(False)
    return finish(fig, "trace", show, save, ax, a)


def _label(record: SelectionRecord, method: str, genes: bool, groups: bool) -> str:
    parts = [method_label(method)]
    if genes:
        parts.append(record_name(record))
    if groups:
        parts.append(record.group)
    return ", ".join(parts)
