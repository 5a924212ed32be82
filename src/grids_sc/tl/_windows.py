"""Genomic windows: which peaks lie near a gene."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData


def peak_coordinates(atac: AnnData, name: str) -> pd.DataFrame:
    """``chrom``/``start``/``end`` of every peak, from ``var`` or parsed from the names."""
    if {"chrom", "start", "end"} <= set(atac.var.columns):
        return atac.var[["chrom", "start", "end"]]
    from ..pp import parse_peaks

    try:
        return parse_peaks(atac, copy=True).var[["chrom", "start", "end"]]
    except ValueError as err:
        raise ValueError(
            f"ATAC modality {name!r} needs peak coordinates (var chrom/start/end or names like "
            f"chr1:100-200) to use a window: {err}"
        ) from err


def gene_coordinates(rna: AnnData, genes: list[str], name: str) -> pd.DataFrame:
    """``chrom``/``start``/``end`` of genes from the RNA ``var`` (see grids.pp.annotate_genes)."""
    if not {"chrom", "start", "end"} <= set(rna.var.columns):
        raise ValueError(
            f"window= needs gene coordinates: RNA modality {name!r} has no var chrom/start/end; "
            "add them with grids.pp.annotate_genes()"
        )
    coords = rna.var.loc[genes, ["chrom", "start", "end"]]
    missing = coords.index[coords.isna().any(axis=1)].tolist()
    if missing:
        raise ValueError(
            f"window= needs coordinates, but genes {missing[:5]} have none in {name!r}"
        )
    return coords


def window_mask(peaks: pd.DataFrame, genes: pd.DataFrame, window: int) -> np.ndarray:
    """Peaks on a gene's chromosome overlapping ``[start - window, end + window]`` of any gene."""
    chrom = peaks["chrom"].astype(str).to_numpy()
    start = peaks["start"].to_numpy(dtype=np.int64)
    end = peaks["end"].to_numpy(dtype=np.int64)
    mask = np.zeros(len(peaks), dtype=bool)
    for _, g in genes.iterrows():
        lo, hi = int(g["start"]) - window, int(g["end"]) + window
        mask |= (chrom == str(g["chrom"])) & (end >= lo) & (start <= hi)
    return mask


def distance_to_gene(peaks: pd.DataFrame, gene: pd.Series) -> np.ndarray:
    """Distance in bp from each peak to a gene body (0 if overlapping, inf off its chromosome)."""
    start = peaks["start"].to_numpy(dtype=np.float64)
    end = peaks["end"].to_numpy(dtype=np.float64)
    d = np.maximum(0.0, np.maximum(float(gene["start"]) - end, start - float(gene["end"])))
    d[peaks["chrom"].astype(str).to_numpy() != str(gene["chrom"])] = np.inf
    return d
