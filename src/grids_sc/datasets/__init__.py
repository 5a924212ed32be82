"""Example data shipped with grids-sc, loaders for larger shared data, and a simulator.

- :func:`pbmc10k_tiles` and :func:`pchic_support`: a real 10x PBMC multiome subset and its
  promoter-capture Hi-C support, shipped inside the package.
- :func:`read_shared` and the named loaders (:func:`a549_scicar`, :func:`h1_snareseq`,
  :func:`gene_bounds`, :func:`mnist`, :func:`crispr_benchmark`): larger files read from a
  local ``shared/data`` folder; nothing is ever downloaded.
- :func:`synthetic_multiome`: a seeded multiome simulator with planted cis-regulatory
  elements and their true knock-out effects (:func:`true_expression`).
"""

from ._pbmc import pbmc10k_tiles, pchic_support
from ._shared import (
    SharedDataNotFound,
    a549_scicar,
    crispr_benchmark,
    gene_bounds,
    h1_snareseq,
    mnist,
    read_shared,
    shared_data_dir,
)
from ._simulate import CONFOUNDED, NULL, REDUNDANT, synthetic_multiome, true_expression

__all__ = [
    "CONFOUNDED",
    "NULL",
    "REDUNDANT",
    "SharedDataNotFound",
    "a549_scicar",
    "crispr_benchmark",
    "gene_bounds",
    "h1_snareseq",
    "mnist",
    "pbmc10k_tiles",
    "pchic_support",
    "read_shared",
    "shared_data_dir",
    "synthetic_multiome",
    "true_expression",
]
