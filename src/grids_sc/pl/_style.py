"""Colours and names of methods, the same in every plot (colour-blind safe, Okabe-Ito based)."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib import colormaps

METHOD_COLORS = {
    "grids": "#D55E00",
    "saliency": "#0072B2",
    "first_order": "#44AA99",
    "smoothgrad": "#56B4E9",
    "integrated_gradients": "#009E73",
    "lime": "#E69F00",
    "sage": "#CC79A7",
    "fimap": "#882255",
    "correlation": "#332288",
    "random": "#8C6D31",
    # fidelity baselines
    "surrogate": "#D55E00",
    "ridge": "#0072B2",
    "group_mean": "#999999",
}
"""One colour per method (GRIDS vermillion, baselines in the rest of the palette)."""

METHOD_LABELS = {
    "grids": "GRIDS",
    "saliency": "Saliency",
    "first_order": "First order",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated gradients",
    "lime": "LIME",
    "sage": "SAGE",
    "fimap": "FIMAP",
    "correlation": "Correlation",
    "random": "Random",
    "surrogate": "Surrogate",
    "ridge": "Ridge",
    "group_mean": "Group mean",
}

PCHIC_COLOR = "#009E73"
LOGIC_COLORS = {"single": "#444444", "or": "#0072B2", "and": "#E69F00", "decoy": "#BBBBBB"}
"""Planted CRE logics of the simulator (OR and AND as in :func:`grids_sc.pl.interactions`)."""
SEARCH_COLOR = "#9A9A9A"
SCORE_CMAP = "Greys"


def method_label(method: str) -> str:
    """A method's display name (unknown methods as given)."""
    return METHOD_LABELS.get(method, method)


def method_color(method: str, fallback: int = 0) -> str:
    """A method's colour; an unknown method gets a colour of ``tab10`` by ``fallback``."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    cmap = colormaps["tab10"]
    return cmap(fallback % cmap.N)


def series_colors(methods: Sequence[str], keys: Sequence[str]) -> list:
    """Colours for a list of results: by method when the methods differ, else per key."""
    if len(set(methods)) == len(methods):
        return [method_color(m, i) for i, m in enumerate(methods)]
    cmap = colormaps["tab10"]
    return [cmap(i % cmap.N) for i in range(len(keys))]
