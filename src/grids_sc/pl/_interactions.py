"""``grids.pl.interactions``: each selected peak's effect alone vs the effect lost without it."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from mudata import MuData

from .._engine import DIRECTION as _SIGN
from ._style import method_color, method_label
from ._utils import (
    as_str_array,
    axes_list,
    finish,
    get_records,
    group_text,
    percent_formatter,
    record_method,
    record_name,
)

LABELS = ("rank", "peak", None)


def interactions(
    mdata: MuData,
    key: str,
    *,
    label: str | None = "rank",
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> Axes | None:
    """How the selected peaks combine: each peak's effect alone vs its loss of effect.

    From the record's ``per_peak`` (search cells): *alone* is the change of mean predicted
    expression when only that peak is perturbed, *loss when restored* is how much of the
    whole selection's effect is lost when only that peak is left unperturbed, both as a
    fraction of mean expression and signed so that positive is the wanted direction. Peaks
    that act independently lie on the diagonal. Above it are **redundant** (OR-like) peaks:
    little effect alone, because a partner compensates, yet restoring them alone undoes much
    of the effect. Below it are **cooperative** (AND-like) peaks: each alone already has
    the effect, and restoring one alone recovers little while its partner stays perturbed.

    Parameters
    ----------
    mdata
        The data holding the result.
    key
        A result key (``explain`` or ``attribute``).
    label
        Label points by ``"rank"``, by ``"peak"`` name, or not (``None``).
    ax, show, save
        As in scanpy (see :func:`grids_sc.pl.track`).

    Returns
    -------
    The axes, unless shown.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {list(LABELS)}, got {label!r}")
    ((_, record),) = get_records(mdata, [key])
    per_peak = record.per_peak
    if "alone" not in per_peak or "restored" not in per_peak:
        raise KeyError(f"result {key!r} has no per_peak 'alone'/'restored' effects")
    sign = _SIGN[record.direction]
    alone = -sign * np.asarray(per_peak["alone"], dtype=np.float64)
    lost = sign * np.asarray(per_peak["restored"], dtype=np.float64)
    peaks = as_str_array(per_peak["peak"])
    ranks = np.asarray(per_peak.get("rank", np.arange(1, len(peaks) + 1))).astype(int)

    fig, (a,) = axes_list(ax, 1, width=4.6, height=4.4)
    method = record_method(record)
    color = method_color(method)
    lo = min(0.0, float(np.nanmin(np.r_[alone, lost])))
    hi = max(float(np.nanmax(np.r_[alone, lost])), 1e-6)
    pad = 0.08 * (hi - lo)
    lim = (lo - pad, hi + pad)
    a.fill_between(lim, lim, lim[1], color="#0072B2", alpha=0.06, lw=0, zorder=0)
    a.fill_between(lim, lim[0], lim, color="#E69F00", alpha=0.08, lw=0, zorder=0)
    a.plot(lim, lim, color="#555555", lw=0.8, ls="--", zorder=1, label="independent (y = x)")
    a.scatter(alone, lost, s=36, color=color, edgecolor="black", lw=0.5, zorder=3,
              label=f"{len(peaks)} selected peaks")  # fmt: skip
    if label is not None:
        texts = [str(r) for r in ranks] if label == "rank" else list(peaks)
        for x, y, t in zip(alone, lost, texts):
            a.annotate(t, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7,
                       color="#222222", zorder=4)  # fmt: skip
    a.text(0.03, 0.97, "redundant (OR-like)", transform=a.transAxes, ha="left", va="top",
           fontsize=8, color="#0072B2")  # fmt: skip
    a.text(0.97, 0.03, "cooperative (AND-like)", transform=a.transAxes, ha="right",
           va="bottom", fontsize=8, color="#B07A00")  # fmt: skip
    a.set_xlim(lim)
    a.set_ylim(lim)
    a.set_aspect("equal", adjustable="box")
    percent_formatter(a, "x")
    percent_formatter(a, "y")
    a.set_xlabel("effect of the peak alone\n(% of mean expression)")
    a.set_ylabel("effect lost when only it is restored\n(% of mean expression)")
    group = record.group
    a.set_title(f"{method_label(method)}: {record_name(record)}, {group_text(group)}", fontsize=10)
    a.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(0.0, 0.78))
    for sp in ("top", "right"):
        a.spines[sp].set_visible(False)
    return finish(fig, "interactions", show, save, ax, a)
