"""A plot's drawn data as plain lists, to tell whether two package versions draw the same figure."""

import numpy as np


def summary(axes) -> list:
    """Per axes: lines' points, collections' offsets, patches' extents, texts and labels."""
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.text import Text

    out = []
    for ax in np.ravel(np.asarray(axes, dtype=object)):
        items = []
        for a in ax.get_children():
            if isinstance(a, Line2D):
                xy = np.asarray(a.get_xydata(), dtype=float)
                items.append(["line", np.round(xy, 6).tolist()])
            elif isinstance(a, Collection):
                off = np.asarray(a.get_offsets(), dtype=float)
                items.append(["coll", np.round(off, 6).tolist()])
            elif isinstance(a, Patch) and a is not ax.patch:
                items.append(["patch", np.round(a.get_extents().bounds, 3).tolist()])
            elif isinstance(a, Text) and a.get_text():
                items.append(["text", a.get_text()])
        items.append(["title", ax.get_title(), ax.get_xlabel(), ax.get_ylabel()])
        out.append(items)
    return out
