"""Baseline peak rankings for the GRIDS objective (torch backend, no AnnData)."""

from ._correlation import correlation_z
from ._methods import (
    METHODS,
    SCORERS,
    fimap_scores,
    first_order_scores,
    integrated_gradients_scores,
    lime_scores,
    random_scores,
    sage_scores,
    saliency_scores,
    smoothgrad_scores,
)
from ._window import WindowObjective

__all__ = [
    "METHODS",
    "SCORERS",
    "WindowObjective",
    "correlation_z",
    "fimap_scores",
    "first_order_scores",
    "integrated_gradients_scores",
    "lime_scores",
    "random_scores",
    "sage_scores",
    "saliency_scores",
    "smoothgrad_scores",
]
