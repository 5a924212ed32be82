"""Genome coordinates in one place: peaks (parsed from names or read from ``var``), genes,
windows around genes, distances, and transcription start sites.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

_GENE_COORDS = ("chrom", "start", "end")

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


# chrom, a separator (":", "-" or "_"), start, a separator ("-" or "_"), end. The chrom part
# is matched lazily, so contigs holding "_" or "-" (chr1_KI270706v1_random) keep them.
_PEAK_PATTERN = r"^(?P<chrom>[^\s:]+?)[:_-](?P<start>\d{1,18})[-_](?P<end>\d{1,18})$"


def parse_peak_names(names: pd.Index | np.ndarray | list[str]) -> pd.DataFrame:
    """Parse peak names into a DataFrame with ``chrom`` (str), ``start`` and ``end`` (int64).

    Parameters
    ----------
    names
        Peak names, e.g. ``chr1:100-200``, ``chr1-100-200``, ``1-100-200`` or
        ``chr1_100_200``.

    Returns
    -------
    DataFrame
        Indexed like ``names``; see :func:`parse_peaks` for the rules.

    Raises
    ------
    ValueError
        When a name cannot be parsed, or a peak has start > end.
    """
    index = pd.Index(names)
    parts = pd.Series(index.astype(str).to_numpy()).str.extract(_PEAK_PATTERN)
    bad = parts["chrom"].isna().to_numpy()
    if bad.any():
        shown = ", ".join(repr(str(n)) for n in index[bad][:5])
        raise ValueError(
            f"{int(bad.sum())} of {len(index)} ATAC var_names are not peak coordinates such as "
            f"'chr1:100-200', 'chr1-100-200' or 'chr1_100_200': {shown}"
            + (" ..." if bad.sum() > 5 else "")
        )
    start = parts["start"].to_numpy().astype(np.int64)
    end = parts["end"].to_numpy().astype(np.int64)
    flipped = start > end
    if flipped.any():
        shown = ", ".join(repr(str(n)) for n in index[flipped][:5])
        raise ValueError(
            f"{int(flipped.sum())} ATAC peaks have start > end: {shown}"
            + (" ..." if flipped.sum() > 5 else "")
        )
    return pd.DataFrame(
        {"chrom": normalize_chrom(parts["chrom"].to_numpy()), "start": start, "end": end},
        index=index,
    )


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
    return PeakIndex(peaks).window_mask(genes, window)


class PeakIndex:
    """Peaks sorted by start within each chromosome, for the windows of many genes: a gene's
    window mask costs O(log peaks + peaks in the window) instead of a pass over every peak.
    """

    def __init__(self, peaks: pd.DataFrame) -> None:
        chrom = peaks["chrom"].astype(str).to_numpy()
        start = peaks["start"].to_numpy(dtype=np.int64)
        end = peaks["end"].to_numpy(dtype=np.int64)
        self.n_peaks = len(peaks)
        self.by_chrom: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
        for c in np.unique(chrom):
            idx = np.flatnonzero(chrom == c)
            idx = idx[np.argsort(start[idx], kind="stable")]
            longest = int((end[idx] - start[idx]).max()) if len(idx) else 0
            self.by_chrom[c] = (idx, start[idx], end[idx], max(longest, 0))

    def window_mask(self, genes: pd.DataFrame, window: int) -> np.ndarray:
        """Peaks on a gene's chromosome overlapping ``[start - window, end + window]`` of any
        gene of ``genes`` (``chrom``/``start``/``end``).
        """
        mask = np.zeros(self.n_peaks, dtype=bool)
        for c, g_start, g_end in zip(genes["chrom"], genes["start"], genes["end"]):
            entry = self.by_chrom.get(str(c))
            if entry is None:
                continue
            idx, start, end, longest = entry
            lo, hi = int(g_start) - window, int(g_end) + window
            # a peak overlapping [lo, hi] starts in [lo - longest, hi]
            a = np.searchsorted(start, lo - longest, side="left")
            b = np.searchsorted(start, hi, side="right")
            mask[idx[a:b][end[a:b] >= lo]] = True
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


def gene_anchors(rna_var: pd.DataFrame, genes: Sequence[str]) -> pd.DataFrame | None:
    """``gene_chrom``, ``tss`` and ``gene_strand`` of ``genes``, or ``None`` without coordinates.

    The TSS is ``var['tss']`` where present (see :func:`grids_sc.pp.annotate_genes`), else
    ``start`` on the ``+`` strand and ``end`` on the ``-`` strand; NaN without a strand.
    """
    if not set(_GENE_COORDS) <= set(rna_var.columns):
        return None
    var = rna_var.reindex(list(genes))
    start = pd.to_numeric(var["start"], errors="coerce").to_numpy(dtype=np.float64)
    end = pd.to_numeric(var["end"], errors="coerce").to_numpy(dtype=np.float64)
    if "strand" in var.columns:
        strand = var["strand"].astype(object).where(var["strand"].notna(), None).to_numpy()
    else:
        strand = np.full(len(var), None, dtype=object)
    tss = np.where(strand == "+", start, np.where(strand == "-", end, np.nan))
    if "tss" in var.columns:
        given = pd.to_numeric(var["tss"], errors="coerce").to_numpy(dtype=np.float64)
        tss = np.where(np.isfinite(given), given, tss)
    chrom = var["chrom"].astype(object).where(var["chrom"].notna(), None).to_numpy()
    return pd.DataFrame(
        {
            "gene_chrom": pd.array([None if c is None else str(c) for c in chrom], dtype=object),
            "tss": tss,
            "gene_strand": pd.array([s if s in ("+", "-") else None for s in strand], dtype=object),
        },
        index=pd.Index(list(genes), name="gene"),
    )


def tss_distance(
    chrom: np.ndarray, start: np.ndarray, end: np.ndarray, anchors: pd.DataFrame
) -> np.ndarray:
    """Signed bp from the TSS to the nearest base of each peak, along the gene's strand.

    0 when the peak contains the TSS, positive downstream (into the gene body), negative
    upstream; measured on the genome's forward strand when the strand is unknown; NaN on
    another chromosome or without a TSS.
    """
    tss = anchors["tss"].to_numpy(dtype=np.float64)
    start = np.asarray(start, dtype=np.float64)
    last = np.asarray(end, dtype=np.float64) - 1.0  # half-open ends: the last base
    forward = np.where(tss < start, start - tss, np.where(tss > last, last - tss, 0.0))
    minus = anchors["gene_strand"].to_numpy(dtype=object) == "-"
    dist = np.where(minus, -forward, forward)
    same = np.asarray(chrom, dtype=object) == anchors["gene_chrom"].to_numpy(dtype=object)
    return np.where(same & np.isfinite(tss), dist, np.nan)


def add_tss_columns(table: pd.DataFrame, var: pd.DataFrame) -> None:
    """Add the genes' anchor columns (``tss``, ...) and ``tss_distance`` to a table of peaks
    (columns ``gene``, ``chrom``, ``start``, ``end``), in place; whole numbers as nullable
    ``Int64``. Nothing is added when ``var`` (the RNA ``var``) has no gene coordinates.
    """
    anchors = gene_anchors(var, table["gene"].tolist())
    if anchors is None:
        return
    for col in anchors.columns:
        table[col] = anchors[col].to_numpy()
    dist = tss_distance(
        table["chrom"].to_numpy(dtype=object),
        table["start"].to_numpy(),
        table["end"].to_numpy(),
        anchors,
    )
    table["tss"] = _nullable_int(table["tss"].to_numpy(dtype=np.float64))
    table["tss_distance"] = _nullable_int(dist)


def _nullable_int(values: np.ndarray) -> pd.arrays.IntegerArray:
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)
