"""Chromosome names in one style: UCSC ``chr`` names (``1`` -> ``chr1``, ``MT`` -> ``chrM``)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Ensembl/NCBI-style names of primary chromosomes (autosomes such as "1" or "2L", sex
# chromosomes, mitochondrion) that UCSC writes with a "chr" prefix. Other contigs
# (e.g. "GL000194.1", "KI270706.1") are left as they are: their UCSC names differ in more
# than a prefix, and guessing would be wrong.
_BARE = re.compile(r"^(?:\d+[A-Za-z]?|[XYZW]|MT?)$")


def _normalize_one(name: str) -> str:
    if name in ("MT", "chrMT"):
        return "chrM"
    if _BARE.match(name):
        return "chr" + name
    return name


def normalize_chrom(chrom: pd.Series | np.ndarray) -> np.ndarray:
    """Return chromosome names with the UCSC ``chr`` prefix where it is missing.

    ``1`` -> ``chr1``, ``X`` -> ``chrX``, ``MT``/``chrMT`` -> ``chrM``; names that already
    start with ``chr`` and other contigs are kept. Missing values stay missing. Works on the
    unique names only, so it is fast on long inputs.

    Parameters
    ----------
    chrom
        Chromosome names (strings; missing values allowed).

    Returns
    -------
    numpy.ndarray
        Object array of the normalised names.
    """
    values = pd.Series(np.asarray(chrom, dtype=object))
    present = values.notna()
    mapping = {c: _normalize_one(str(c)) for c in pd.unique(values[present])}
    out = values.astype(object).copy()
    out[present] = values[present].map(mapping)
    return out.to_numpy(dtype=object)
