"""Parse ATAC peak names such as ``chr1:100-200`` into ``chrom``/``start``/``end`` columns."""

from __future__ import annotations

from anndata import AnnData
from mudata import MuData

from .._genome import parse_peak_names
from .._mudata import copy_of
from ._modality import resolve


def parse_peaks(
    data: MuData | AnnData, *, atac: str = "atac", copy: bool = False
) -> MuData | AnnData | None:
    """Parse ATAC peak names into ``var`` columns ``chrom``, ``start`` and ``end``.

    Accepted names are ``chrom:start-end``, ``chrom-start-end`` and ``chrom_start_end``
    (e.g. ``chr1:100-200``, ``chr1-100-200``, ``1-100-200``, ``chr1_100_200``), including
    contigs with ``_`` or ``-`` in their name (``chr1_KI270706v1_random:1-2``).
    Chromosome names get the UCSC ``chr`` prefix where it is missing (``1`` -> ``chr1``,
    ``X`` -> ``chrX``, ``MT`` -> ``chrM``); other contigs (``GL000194.1``) are kept as they
    are. Coordinates are taken as written (no change of base); ``start == end`` is allowed.

    Parameters
    ----------
    data
        A MuData with an ATAC modality, or the ATAC AnnData itself.
    atac
        Name of the ATAC modality when ``data`` is a MuData.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    MuData, AnnData or None
        The modified copy when ``copy=True``, else ``None``. Sets ``var['chrom']`` (str),
        ``var['start']`` and ``var['end']`` (int64) of the ATAC AnnData, overwriting columns
        of those names that are already there.

    Raises
    ------
    ValueError
        When some names cannot be parsed (the first few and their count are given) or a
        peak has start > end; ``data`` is left unchanged.
    """
    adata = resolve(data, atac, "atac")
    coords = parse_peak_names(adata.var_names)
    target = copy_of(data) if copy else data
    out = resolve(target, atac, "atac")
    for col in ("chrom", "start", "end"):
        out.var[col] = coords[col].to_numpy()
    return target if copy else None
