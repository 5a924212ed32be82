"""The (gene, peak) windows of the cis surrogate, screened on the training cells."""

from __future__ import annotations

import numpy as np
from anndata import AnnData

from .._genome import peak_coordinates, window_pairs
from ..model._screen import screen_pairs

__all__ = ["cis_windows", "screen_pairs"]


def cis_windows(
    a_rna: AnnData,
    a_atac: AnnData,
    *,
    window: int,
    max_peaks: int | None,
    rna: str,
    atac: str,
    model: str = "cis",
) -> tuple[np.ndarray, np.ndarray]:
    """All (gene, peak) pairs with the peak within ``window`` bp of the gene body, sorted by
    gene; checks the settings and coordinates first.
    """
    if not {"chrom", "start", "end"} <= set(a_rna.var.columns):
        raise ValueError(
            f"model={model!r} needs gene coordinates: RNA modality {rna!r} has no "
            "var chrom/start/end; add them with grids.pp.annotate_genes() (same genome "
            "build as the peaks), or fit the paper's architecture with model='grids'"
        )
    if window < 0:
        raise ValueError(f"cis_window must be at least 0, got {window}")
    if max_peaks is not None and max_peaks < 1:
        raise ValueError(f"cis_peaks must be at least 1 or None, got {max_peaks}")
    pg, pp = window_pairs(peak_coordinates(a_atac, atac), a_rna.var, int(window))
    if not len(pg):
        raise ValueError(
            f"no peak of {atac!r} lies within {window} bp of any gene of {rna!r}: check that "
            "both use the same chromosome names and genome build"
        )
    return pg, pp
