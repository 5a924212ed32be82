"""Plots of explanations, baselines and surrogate fidelity (matplotlib, scanpy conventions).

Every function reads results stored by :mod:`grids_sc.tl` (``mdata.uns['grids']`` and the
ATAC ``var`` columns) and runs no model. As in scanpy, each takes ``ax=`` (draw into given
axes), ``show=`` (default: show unless ``ax`` is given or the backend cannot show) and
``save=`` (``True``, a file-name suffix, or a path), and returns the axes unless shown.

- :func:`track`: genome-browser view of a gene's window: the gene with its strand, PCHi-C
  support, and every result's peak scores with the selected peaks marked.
- :func:`delta`: each cell's predicted expression before vs after the perturbation, on the
  search and held-out cells.
- :func:`trace`: the objective over the search steps, restarts faint.
- :func:`compare`: methods side by side from :func:`grids_sc.tl.evaluate`.
- :func:`interactions`: each selected peak's effect alone vs its loss of effect when
  restored (redundant and cooperative peaks).
- :func:`fidelity`: held-out fidelity of the surrogate vs ridge, per gene and per cell.
- :func:`mask`: a selection of image pixels (the MNIST sanity check).
- :func:`link_heatmap`: significant peak–gene links × groups from
  :func:`grids_sc.tl.link_peaks`.
- :func:`pr_curve`: precision–recall on CRISPRi ground truth vs the distance baseline (from
  :func:`grids_sc.tl.crispr_pairs`).

Methods have the same colours in every plot (``METHOD_COLORS``).
"""

from ._compare import compare
from ._delta import delta
from ._fidelity import fidelity
from ._interactions import interactions
from ._link_heatmap import link_heatmap
from ._mask import mask
from ._pr_curve import pr_curve
from ._style import METHOD_COLORS
from ._trace import trace
from ._track import track

__all__ = [
    "METHOD_COLORS",
    "compare",
    "delta",
    "fidelity",
    "interactions",
    "link_heatmap",
    "mask",
    "pr_curve",
    "trace",
    "track",
]
