"""Preprocessing: validate, parse peak coordinates, annotate genes, binarise, select features.

- :func:`check_multiome`: check that a MuData holds paired, usable RNA and ATAC data.
- :func:`parse_peaks`: ATAC peak names (``chr1:100-200``) to ``chrom``/``start``/``end``.
- :func:`annotate_genes`: RNA gene bounds, strand and TSS from a table, BED or GTF file.
- :func:`anchor_liftover`: move gene bounds to another genome build, with peaks called on
  each build as anchors, when no chain file is at hand.
- :func:`binarize`: ATAC accessibility to 0/1.
- :func:`select_features`: highly variable genes and accessible, variable peaks.
"""

from ._binarize import binarize
from ._check import check_multiome
from ._genes import annotate_genes
from ._liftover import anchor_liftover
from ._peaks import parse_peaks
from ._select import select_features

__all__ = [
    "anchor_liftover",
    "annotate_genes",
    "binarize",
    "check_multiome",
    "parse_peaks",
    "select_features",
]
