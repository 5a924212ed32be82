"""What every plot shares: axes creation, scanpy-style ``show``/``save``, reading stored results."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._records import SelectionRecord, modalities_of, read_selections

NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
FIGURE_EXTENSIONS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps")


# ---------------------------------------------------------------------------- show and save


def interactive_backend() -> bool:
    """Whether ``plt.show()`` would display anything (False for Agg, PDF, SVG, ...)."""
    return matplotlib.get_backend().lower() not in NON_INTERACTIVE


def resolve_show(show: bool | None, ax) -> bool:
    """Scanpy's rule: show unless told not to, an ``ax`` was given, or nothing can be shown."""
    if show is not None:
        return bool(show)
    return ax is None and interactive_backend()


def save_path(save: bool | str | os.PathLike | None, name: str) -> Path | None:
    """Where ``save`` asks the figure to go, or ``None``.

    ``True``: ``{scanpy.settings.figdir}/{name}.{scanpy.settings.file_format_figs}``. A
    ``Path`` or a string with a directory part: that file. Another string is a suffix as in
    scanpy: ``save="_cd14.pdf"`` writes ``{figdir}/{name}_cd14.pdf`` (format from the suffix,
    else the default).
    """
    if save is None or save is False:
        return None
    if isinstance(save, os.PathLike) or (isinstance(save, str) and os.path.dirname(save)):
        return Path(save)
    if save is not True and not isinstance(save, str):
        raise TypeError(f"save must be a bool, a file suffix or a path, got {type(save).__name__}")
    import scanpy as sc

    suffix = "" if save is True else save
    ext = next((e for e in FIGURE_EXTENSIONS if suffix.lower().endswith(e)), None)
    if ext is None:
        ext = "." + str(sc.settings.file_format_figs).lstrip(".")
    else:
        suffix = suffix[: -len(ext)]
    return Path(sc.settings.figdir) / f"{name}{suffix}{ext}"


def finish(fig: Figure, name: str, show: bool | None, save, ax, result):
    """Save and/or show the figure as scanpy does; return ``result`` unless it was shown.

    A figure this package created is closed after saving (as in scanpy); one holding an
    ``ax`` the caller passed is left open.
    """
    shown = resolve_show(show, ax)
    path = save_path(save, name)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    if shown:
        plt.show()
    if path is not None and ax is None and not shown:
        plt.close(fig)
    return None if shown else result


def axes_list(ax, n: int, *, width: float = 4.2, height: float = 3.8) -> tuple[Figure, list[Axes]]:
    """``n`` side-by-side axes: new ones, the one ``ax`` given (``n == 1``) or ``ax``'s list."""
    if ax is None:
        fig, axs = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
        return fig, list(axs[0])
    axs = [ax] if isinstance(ax, Axes) else list(np.ravel(ax))
    if len(axs) != n:
        raise ValueError(f"this plot draws {n} panel(s); ax= holds {len(axs)} axes")
    return axs[0].figure, axs


# ---------------------------------------------------------------------------- stored results


def scalar(value):
    """A stored scalar as a Python value (``.uns`` read from h5mu holds 0-d arrays)."""
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.size == 1:
        out = arr.reshape(()).item()
        return out.decode() if isinstance(out, bytes) else out
    return value


def as_str_array(value) -> np.ndarray:
    """A stored array of names as ``str``."""
    return np.atleast_1d(np.asarray(value)).astype(str)


def result_keys(keys: str | Sequence[str]) -> list[str]:
    """``keys`` as a non-empty list of result keys."""
    out = [keys] if isinstance(keys, str) else list(keys)
    if not out:
        raise ValueError("no result keys given")
    return [str(k) for k in out]


def get_records(mdata, keys: str | Sequence[str]) -> list[tuple[str, SelectionRecord]]:
    """``[(key, record)]`` of stored selections, with a clear error."""
    return [(r.key, r) for r in read_selections(mdata, result_keys(keys))]


def record_method(record: SelectionRecord) -> str:
    """The method that produced a record (``"grids"`` for explain)."""
    return record.method


def record_genes(record: SelectionRecord) -> list[str]:
    """The gene(s) a record explains."""
    return record.genes


def record_name(record: SelectionRecord) -> str:
    """The gene or gene-set name of a record."""
    return record.name


def group_text(group: str) -> str:
    """A group's name in a title (``"all"``, explain's group without ``groupby``: all cells)."""
    return "all cells" if group == "all" else group


def modalities(
    mdata, record: SelectionRecord, rna: str | None, atac: str | None
) -> tuple[str, str]:
    """RNA and ATAC modality names: given, else those the record's surrogate was fit on."""
    fit_rna, fit_atac = modalities_of(mdata, record.surrogate)
    rna, atac = rna or fit_rna, atac or fit_atac
    for name in (rna, atac):
        if name not in mdata.mod:
            raise KeyError(f"modality {name!r} not in mdata (it has {list(mdata.mod)})")
    return rna, atac


def percent_formatter(ax: Axes, axis: str = "y", decimals: int | None = None) -> None:
    """Label an axis of fractions as percentages (decimals from the axis range by default:
    call after the limits are set).
    """
    from matplotlib.ticker import PercentFormatter

    if decimals is None:
        lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
        width = abs(hi - lo)
        decimals = 0 if width >= 0.05 else 1 if width >= 0.005 else 2
    fmt = PercentFormatter(1.0, decimals=decimals)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)
