"""``grids.pl.mask``: a selection over image pixels (the MNIST sanity check)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.patches import Patch

from ._style import method_color
from ._utils import axes_list, finish


def mask(
    selection,
    shape: tuple[int, int] = (28, 28),
    *,
    image: np.ndarray | None = None,
    color: str | None = None,
    ranks: bool = False,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
) -> Axes | None:
    """Draw a selection of image pixels over an image (e.g. the mean digit).

    Parameters
    ----------
    selection
        Selected pixels: integer indices into the flattened image (as
        :func:`grids_sc.search.run_search` returns with a
        :class:`~grids_sc.search.DenseModelProblem`, in order of importance), a boolean
        mask (flat or of ``shape``), or a record dict with ``selected_index`` (or
        ``selection``), such as an ``explain``-like record.
    shape
        Image ``(height, width)``.
    image
        Background image with ``height * width`` values (e.g. the mean of the digits the
        search ran on), drawn in grey; default blank.
    color
        Colour of the selected pixels (default GRIDS's colour).
    ranks
        Colour the pixels by their rank (the order of ``selection``) with a colour bar.
    title
        Axes title (default: the number of selected pixels).
    ax, show, save
        As in scanpy (see :func:`grids_sc.pl.track`).

    Returns
    -------
    The axes, unless shown.
    """
    h, w = (int(s) for s in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be two positive sizes, got {shape}")
    index = _indices(selection, h * w)
    fig, (a,) = axes_list(ax, 1, width=3.6, height=3.6)
    if image is not None:
        img = np.asarray(image, dtype=np.float64)
        if img.size != h * w:
            raise ValueError(f"image has {img.size} values; shape {shape} needs {h * w}")
        a.imshow(img.reshape(h, w), cmap="Greys", interpolation="nearest")
    else:
        a.imshow(np.zeros((h, w)), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    overlay = np.zeros((h * w, 4))
    color = color or method_color("grids")
    if ranks and len(index):
        cmap = colormaps["plasma"]
        order = np.linspace(0, 1, len(index)) if len(index) > 1 else np.zeros(1)
        overlay[index] = cmap(order)
        overlay[index, 3] = 0.9
    else:
        overlay[index] = to_rgba(color, 0.85)
    a.imshow(overlay.reshape(h, w, 4), interpolation="nearest")
    if ranks and len(index):
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        sm = ScalarMappable(Normalize(1, max(len(index), 2)), colormaps["plasma"])
        cbar = fig.colorbar(sm, ax=a, fraction=0.046, pad=0.04)
        cbar.set_label("rank of pixel", fontsize=8)
    else:
        a.legend(handles=[Patch(color=color, alpha=0.85, label=f"selected ({len(index)})")],
                 loc="upper center", bbox_to_anchor=(0.5, -0.02), frameon=False,
                 fontsize=8)  # fmt: skip
    a.set_xticks([])
    a.set_yticks([])
    a.set_title(title if title is not None else f"{len(index)} selected pixels", fontsize=10)
    return finish(fig, "mask", show, save, ax, a)


def _indices(selection, n: int) -> np.ndarray:
    """Selected flat pixel indices, in the given order."""
    if isinstance(selection, Mapping):
        for k in ("selected_index", "selection"):
            if k in selection:
                selection = selection[k]
                break
        else:
            raise KeyError("a record passed as selection needs 'selected_index' or 'selection'")
    arr = np.asarray(selection)
    if arr.dtype == bool:
        if arr.size != n:
            raise ValueError(f"boolean mask has {arr.size} values; the image has {n} pixels")
        return np.flatnonzero(arr.ravel())
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(arr == np.round(arr)):
            raise TypeError("selection must be pixel indices (integers) or a boolean mask")
    idx = arr.astype(np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"pixel indices must lie in [0, {n}); got {idx.min()}..{idx.max()}")
    if len(np.unique(idx)) != len(idx):
        raise ValueError("selection has duplicate pixel indices")
    return idx
