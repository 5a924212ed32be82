"""``grids.tl.evaluate_crispr`` and ``grids.tl.crispr_pairs``: enhancer–gene predictions scored
against CRISPRi screens (the conventions live in :mod:`grids_sc._crispr`).
"""

from .._crispr import crispr_pairs, evaluate_crispr

__all__ = ["crispr_pairs", "evaluate_crispr"]
