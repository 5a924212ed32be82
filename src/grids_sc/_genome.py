"""Genomic windows: which peaks lie near a gene."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData


def peak_coordinates(atac: AnnData, name: str) -> pd.DataFrame:
    """``chrom``/``start``/``end`` of every peak, from ``var`` or parsed from the names."""
    if {"chrom", "start", "end"} <= set(atac.var.columns):
        return atac.var[["chrom", "start", "end"]]
    from .pp import parse_peaks

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


def window_pairs(
    peaks: pd.DataFrame, genes: pd.DataFrame, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """All (gene, peak) pairs with the peak within ``window`` bp of the gene body.

    Genes without coordinates get no pairs. Runs in O((genes + peaks) log peaks).

    Returns
    -------
    pair_gene, pair_peak
        Integer positions into ``genes`` and ``peaks``.
    """
    chrom = peaks["chrom"].astype(str).to_numpy()
    start = peaks["start"].to_numpy(dtype=np.int64)
    end = peaks["end"].to_numpy(dtype=np.int64)
    by_chrom = {}
    for c in np.unique(chrom):
        idx = np.flatnonzero(chrom == c)
        idx = idx[np.argsort(start[idx], kind="stable")]
        by_chrom[c] = (idx, start[idx], np.maximum.accumulate(end[idx]))
    g_chrom = genes["chrom"].astype(object).to_numpy()
    g_start = pd.to_numeric(genes["start"], errors="coerce").to_numpy(dtype=np.float64)
    g_end = pd.to_numeric(genes["end"], errors="coerce").to_numpy(dtype=np.float64)
    out_g, out_p = [], []
    for i in range(len(genes)):
        if pd.isna(g_chrom[i]) or np.isnan(g_start[i]) or np.isnan(g_end[i]):
            continue
        entry = by_chrom.get(str(g_chrom[i]))
        if entry is None:
            continue
        idx, st, cummax_end = entry
        lo, hi = int(g_start[i]) - window, int(g_end[i]) + window
        # peaks with start <= hi, and (end >= lo): end is not sorted, so test the candidates
        right = np.searchsorted(st, hi, side="right")
        left = np.searchsorted(cummax_end, lo, side="left")
        cand = idx[left:right]
        cand = np.sort(cand[end[cand] >= lo])
        out_g.append(np.full(len(cand), i, dtype=np.int64))
        out_p.append(cand.astype(np.int64))
    if not out_g:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_g), np.concatenate(out_p)
