"""Tidy tables of stored selections: one row per selected peak and gene."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from mudata import MuData

from .. import _records as records
from .._genome import add_tss_columns, peak_coordinates

_GENE_COORDS = ("chrom", "start", "end")


def _modalities(mdata: MuData, record: records.SelectionRecord) -> tuple[str, str]:
    """RNA and ATAC modality names of the surrogate a result was computed with."""
    rna, atac = records.modalities_of(mdata, record.surrogate)
    for name, role in ((rna, "RNA"), (atac, "ATAC")):
        if name not in mdata.mod:
            raise KeyError(
                f"{role} modality {name!r} of the result's surrogate {record.surrogate!r} is not "
                f"in the MuData; it has {sorted(mdata.mod)}"
            )
    return rna, atac


def explain_df(mdata: MuData, key: str) -> pd.DataFrame:
    """The selected peaks of one stored result as a tidy table.

    Parameters
    ----------
    mdata
        The data a :func:`grids_sc.tl.explain` or :func:`grids_sc.tl.attribute` result is
        stored in.
    key
        The result's key in ``mdata.uns['grids']['explain']``.

    Returns
    -------
    DataFrame
        One row per selected peak and gene, ordered by rank. For a gene set (``explain``
        with ``{name: genes}``) each peak appears once per gene of the set, ``gene`` naming
        the gene and ``gene_set`` the set; the per-peak effects are those on the set's
        objective and so repeat. Columns:

        - ``gene``, ``gene_set`` (the gene itself for single-gene runs), ``group``,
          ``method``, ``key``;
        - ``peak``, ``chrom``, ``start``, ``end`` (0-based, half-open);
        - ``rank`` (1 = most important), ``score`` (the method's score, the ATAC
          ``var[f'{key}_score']``, or the record's ``per_peak['score']`` when the call
          wrote no columns), ``alone`` (relative change of the gene's mean predicted
          expression on the search cells when only this peak is perturbed), ``restored``
          (the change lost when only this peak is restored to its observed value);
        - ``frequency`` (share of restarts that selected the peak), when stored;
        - where the RNA ``var`` has gene coordinates: ``gene_chrom``, ``tss``,
          ``gene_strand`` and ``tss_distance``, the signed bp from the TSS to the nearest
          base of the peak (0 when it contains the TSS, positive downstream of it on the
          gene's strand); ``tss`` and ``tss_distance`` are nullable integers, missing on
          another chromosome or without a TSS (see :func:`grids_sc.pp.annotate_genes`).

    Raises
    ------
    KeyError
        When ``key`` is not a stored result, or its peaks or modalities are no longer in the
        MuData.
    """
    record = records.read_selections(mdata, key)[0]
    rna, atac = _modalities(mdata, record)
    a_atac = mdata.mod[atac]
    per_peak = record.per_peak
    peaks = np.asarray(per_peak["peak"]).astype(str)
    pos = a_atac.var_names.get_indexer(peaks)
    if (pos < 0).any():
        raise KeyError(
            f"peaks {peaks[pos < 0][:5].tolist()} of result {key!r} are not in ATAC modality "
            f"{atac!r} (was it subset after the run?)"
        )
    coords = peak_coordinates(a_atac, atac).iloc[pos]
    score_col = f"{key}_score"
    if score_col in a_atac.var.columns:
        score = a_atac.var[score_col].to_numpy(dtype=np.float64)[pos]
    elif "score" in per_peak:  # a genome-wide call's compact record (no .var columns)
        score = np.asarray(per_peak["score"], dtype=np.float64)
    else:
        score = np.full(len(peaks), np.nan)
    genes = record.genes
    name = record.name
    table = pd.DataFrame(
        {
            "peak": peaks,
            "chrom": coords["chrom"].astype(str).to_numpy(),
            "start": coords["start"].to_numpy(dtype=np.int64),
            "end": coords["end"].to_numpy(dtype=np.int64),
            "rank": np.asarray(per_peak["rank"], dtype=np.int64),
            "score": score,
            "alone": np.asarray(per_peak["alone"], dtype=np.float64),
            "restored": np.asarray(per_peak["restored"], dtype=np.float64),
        }
    )
    if "frequency" in per_peak:
        table["frequency"] = np.asarray(per_peak["frequency"], dtype=np.float64)
    n = len(table)
    table = table.loc[np.tile(np.arange(n), len(genes))].reset_index(drop=True)
    front = {
        "gene": np.repeat(genes, n),
        "gene_set": name,
        "group": record.group,
        "method": record.method,
        "key": key,
    }
    for i, (col, values) in enumerate(front.items()):
        table.insert(i, col, values)
    add_tss_columns(table, mdata.mod[rna].var)
    order = np.lexsort((table["gene"].to_numpy(), table["rank"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def links(mdata: MuData, keys: str | Sequence[str] | None = None) -> pd.DataFrame:
    """All (or the given) stored results as one tidy peak–gene link table.

    Parameters
    ----------
    mdata
        The data the results are stored in.
    keys
        Result keys in ``mdata.uns['grids']['explain']`` (default: all, in stored order).

    Returns
    -------
    DataFrame
        The :func:`explain_df` tables of the results, one after another.

    Raises
    ------
    ValueError
        When there are no results.
    KeyError
        When a key is not a stored result.
    """
    keys = [r.key for r in records.read_selections(mdata, keys)]
    frames = [explain_df(mdata, k) for k in keys]
    return pd.concat(frames, ignore_index=True)
