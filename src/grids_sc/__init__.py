"""grids-sc: find the cis-regulatory elements a gene depends on in single-cell multiome data.

GRIDS (gradient-based subset search) fits a surrogate that maps a cell's chromatin
accessibility to its gene expression, then searches for the set of peaks whose joint
perturbation moves a gene's predicted expression the most across a group of cells.

Namespaces follow scanpy: :mod:`grids_sc.pp` (preprocessing), :mod:`grids_sc.tl` (tools),
:mod:`grids_sc.pl` (plots), :mod:`grids_sc.get` (tidy tables of results), :mod:`grids_sc.io`
(browser exports) and :mod:`grids_sc.datasets` (example data and a simulator).
"""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, get, io, pl, pp, tl
from ._logging import set_verbosity

try:
    __version__ = version("grids-sc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["datasets", "get", "io", "pl", "pp", "set_verbosity", "tl", "__version__"]
