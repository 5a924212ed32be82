"""Parse ATAC peak names such as ``chr1:100-200`` into ``chrom``/``start``/``end`` columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from ._chrom import normalize_chrom
from ._modality import resolve

# chrom, a separator (":", "-" or "_"), start, a separator ("-" or "_"), end. The chrom part
# is matched lazily, so contigs holding "_" or "-" (chr1_KI270706v1_random) keep them.
_PEAK_PATTERN = r"^(?P<chrom>[^\s:]+?)[:_-](?P<start>\d{1,18})[-_](?P<end>\d{1,18})$"


def peak_coordinates(names: pd.Index | np.ndarray | list[str]) -> pd.DataFrame:
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
    coords = peak_coordinates(adata.var_names)
    target = data.copy() if copy else data
    out = resolve(target, atac, "atac")
    for col in ("chrom", "start", "end"):
        out.var[col] = coords[col].to_numpy()
    return target if copy else None
