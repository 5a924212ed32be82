"""The GRIDS subset search: a torch optimizer over an index set and the problems it solves."""

from ._dense import DenseModelProblem
from ._optimizer import GridsOptimizer, greedy_selection, initial_selection
from ._problem import EmbeddingSumProblem, SubsetProblem
from ._run import SearchResult, run_search

__all__ = [
    "DenseModelProblem",
    "EmbeddingSumProblem",
    "GridsOptimizer",
    "SearchResult",
    "SubsetProblem",
    "greedy_selection",
    "initial_selection",
    "run_search",
]
