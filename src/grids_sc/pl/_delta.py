"""``grids.pl.delta``: each cell's predicted expression before and after the perturbation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from mudata import MuData

from .._records import SelectionRecord
from ._style import SEARCH_COLOR, method_color, method_label
from ._utils import (
    as_str_array,
    axes_list,
    finish,
    get_records,
    group_text,
    record_method,
    record_name,
)

SPLIT_LABELS = {"train": "search cells", "test": "held-out cells"}


def delta(
    mdata: MuData,
    key: str | Sequence[str],
    *,
    splits: Sequence[str] = ("train", "test"),
    size: float | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> Axes | list[Axes] | None:
    """Predicted expression of each cell before vs after perturbing the selected peaks.

    Reads the record's ``per_cell`` predictions (search and held-out test cells of the
    group, see :func:`grids_sc.tl.explain`); points below the diagonal are cells whose
    predicted expression the perturbation lowered. The legend gives each split's relative
    change of mean expression.

    Parameters
    ----------
    mdata
        The data holding the results.
    key
        A result key, or several (one panel each, e.g. one per group or method).
    splits
        Which cells to draw: ``"train"`` (search cells) and/or ``"test"`` (held out).
    size
        Marker size (default from the number of cells).
    ax
        An axes (one key) or one axes per key.
    show, save
        As in scanpy (see :func:`grids_sc.pl.track`).

    Returns
    -------
    The axes (a list with several keys), unless shown.
    """
    records = get_records(mdata, key)
    bad = [s for s in splits if s not in SPLIT_LABELS]
    if bad or not splits:
        raise ValueError(f"splits must be among {list(SPLIT_LABELS)}, got {list(splits)}")
    fig, axs = axes_list(ax, len(records), width=4.0, height=3.9)
    for a, (k, record) in zip(axs, records):
        _panel(a, k, record, splits, size)
    if ax is None:
        fig.tight_layout()
    result = axs[0] if isinstance(key, str) else axs
    return finish(fig, "delta", show, save, ax, result)


def _panel(a: Axes, key: str, record: SelectionRecord, splits, size) -> None:
    per_cell = record.per_cell
    if not per_cell:
        raise KeyError(f"result {key!r} has no per_cell predictions")
    split = as_str_array(per_cell["split"])
    before = np.asarray(per_cell["before"], dtype=np.float64)
    after = np.asarray(per_cell["after"], dtype=np.float64)
    if before.ndim > 1:  # a gene set: the mean over its genes
        before, after = before.mean(1), after.mean(1)
    method = record_method(record)
    colors = {"train": SEARCH_COLOR, "test": method_color(method)}
    n_total = int(np.isin(split, list(splits)).sum())
    s = size if size is not None else float(np.clip(8000 / max(n_total, 1), 3, 20))
    for sp in splits:
        m = split == sp
        if not m.any():
            continue
        b, af = before[m], after[m]
        rel = (af.mean() - b.mean()) / b.mean() if b.mean() != 0 else np.nan
        a.scatter(b, af, s=s, color=colors[sp], alpha=0.55 if sp == "train" else 0.8, lw=0,
                  label=f"{SPLIT_LABELS[sp]} (n={m.sum():,}): {rel:+.1%}",
                  rasterized=m.sum() > 2000)  # fmt: skip
    both = np.concatenate([before, after])
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    pad = 0.04 * (hi - lo if hi > lo else 1.0)
    lim = (lo - pad, hi + pad)
    a.plot(lim, lim, color="#555555", lw=0.8, ls="--", zorder=0, label="no change")
    a.set_xlim(lim)
    a.set_ylim(lim)
    a.set_aspect("equal", adjustable="box")
    name = record_name(record)
    a.set_xlabel(f"predicted {name}, before")
    a.set_ylabel(f"predicted {name}, peaks {_perturbed(record)}")
    group = record.group
    n_peaks = len(record.selected)
    head = f"{method_label(method)}: {name}, {group_text(group)}"
    a.set_title(f"{head}\n{n_peaks} peaks {_perturbed(record)}", fontsize=10)
    leg = a.legend(fontsize=7, loc="upper left", frameon=False, title="change of mean",
                   title_fontsize=7, alignment="left", markerscale=max(1.0, 16 / s))  # fmt: skip
    for h in leg.legend_handles:
        h.set_alpha(1.0)
    for sp in ("top", "right"):
        a.spines[sp].set_visible(False)


def _perturbed(record: SelectionRecord) -> str:
    perturb = record.perturb
    return "closed" if perturb == "close" else "opened"
