"""Stored selections as ENCODE E2G predictions, the format the CRISPR benchmark reads.

The ENCODE enhancer–gene (E2G) predictions format (ABC, ENCODE-rE2G, scE2G) is a
tab-separated table with a header, one row per element–gene pair: ``chr start end name class
TargetGene TargetGeneTSS CellType`` and score columns. EngreitzLab's CRISPR_comparison
pipeline overlaps its ``chr``/``start``/``end`` with tested elements of the same
``TargetGene`` and reads the score columns its ``pred_config`` names.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from mudata import MuData

from .. import _records as records
from ..get import links as get_links

#: the identifying columns of every E2G file, in order (the score columns follow)
E2G_COLUMNS = ("chr", "start", "end", "name", "class", "TargetGene", "TargetGeneTSS", "CellType")
#: the score columns of an export, in order (``frequency`` only for results that have it)
E2G_SCORES = ("Score", "rank", "alone", "restored", "score", "frequency")
#: ``class``: the element contains a base within this many bp of its gene's TSS
PROMOTER_BP = 500


def _orientation(table: pd.DataFrame, mdata: MuData, value: str) -> np.ndarray:
    """+1 or -1 per row so that ``sign * value`` is larger the more the peak moves its gene
    in the direction each result searched (``alone`` and ``restored`` are signed changes).
    """
    if value in ("score", "frequency"):
        return np.ones(len(table))
    keys = [str(k) for k in pd.unique(table["key"])]
    down = {r.key: r.direction != "up" for r in records.read_selections(mdata, keys)}
    is_down = table["key"].map(down).to_numpy(dtype=bool)
    # closing a needed peak alone lowers the gene (alone < 0); restoring it gives the loss back
    sign = np.where(is_down, -1.0, 1.0)
    return sign if value == "alone" else -sign


def element_class(table: pd.DataFrame) -> np.ndarray:
    """``promoter`` (within 500 bp of the gene's TSS), ``genic`` (in the gene's body, as far as
    the RNA ``var`` gives it) or ``distal``.
    """
    near = np.abs(table["tss_distance"].to_numpy(dtype=np.float64, na_value=np.nan)) <= PROMOTER_BP
    body = np.zeros(len(table), dtype=bool)
    if {"gene_start", "gene_end"} <= set(table.columns):
        body = (table["end"].to_numpy() > table["gene_start"].to_numpy()) & (
            table["start"].to_numpy() < table["gene_end"].to_numpy()
        )
    return np.where(near, "promoter", np.where(body, "genic", "distal"))


def links_with_tss(table: pd.DataFrame, what: str) -> pd.DataFrame:
    """The links of ``table`` whose gene has a TSS on a known chromosome; an error naming
    ``what`` when none has, a warning naming the genes left out otherwise.
    """
    has_tss = (table["tss"].notna() & table["gene_chrom"].notna()).to_numpy()
    if not has_tss.any():
        raise ValueError(
            f"{what} need each gene's TSS: none of the genes "
            f"{sorted(set(table['gene']))[:5]} has a strand or tss in the RNA var"
        )
    if not has_tss.all():
        lacking = sorted(set(table.loc[~has_tss, "gene"]))
        warnings.warn(
            f"leaving out {int((~has_tss).sum())} links of genes without a TSS: {lacking[:5]}",
            UserWarning,
            stacklevel=3,
        )
        table = table.loc[has_tss].reset_index(drop=True)
    return table


def e2g_table(
    mdata: MuData,
    keys: str | Sequence[str] | None = None,
    *,
    value: str = "alone",
) -> pd.DataFrame:
    """Stored selections as an ENCODE E2G predictions table.

    One row per selected peak and gene of each result (a gene set gives a row per gene), with
    one TSS per gene (the RNA ``var``'s, see :func:`grids_sc.get.explain_df`). The table is
    what :func:`grids_sc.io.write_links` writes with ``format="e2g"`` and what
    :func:`grids_sc.tl.evaluate_crispr` scores when given a MuData.

    Parameters
    ----------
    mdata
        The data the :func:`grids_sc.tl.explain` or :func:`grids_sc.tl.attribute` results
        are stored in; the RNA ``var`` needs gene coordinates with a strand (or a ``tss``),
        see :func:`grids_sc.pp.annotate_genes`.
    keys
        Result keys in ``mdata.uns['grids']['explain']`` (default: all). Each element–gene
        pair of a cell type may come from one result only: pass the keys of one method.
    value
        What ``Score`` holds: ``"alone"`` (default), ``"restored"``, ``"score"`` or
        ``"frequency"``, oriented so that a larger ``Score`` is a stronger link. For
        ``alone`` (relative change of the gene's mean predicted expression when only this
        peak is perturbed) and ``restored`` (the change lost when only this peak is
        restored) that is the change in the direction the result searched: for the default
        ``explain(perturb="close", direction="down")``, ``Score`` is the relative drop of
        the gene's prediction when the peak alone is closed, the analogue of a CRISPRi
        knock-down. ``score`` (the first-order gain) and ``frequency`` are written as they
        are.

    Returns
    -------
    DataFrame
        Columns ``chr``, ``start``, ``end`` (0-based, half-open, as BED), ``name``
        (``{class}|{chr}:{start}-{end}``), ``class`` (``promoter`` within 500 bp of the
        gene's TSS, ``genic`` in its body, else ``distal``), ``TargetGene``,
        ``TargetGeneTSS``, ``CellType`` (the result's group; ``all`` without ``groupby``),
        then the scores: ``Score``, ``rank`` (1 = most important), and the raw ``alone``,
        ``restored`` and ``score`` (and ``frequency`` when a result has it).

    Raises
    ------
    ValueError
        For an unknown ``value``, when there are no results or no gene has a TSS, or when
        two results hold the same element–gene pair of a cell type.
    KeyError
        When a key is not a stored result.

    Warns
    -----
    UserWarning
        When links of genes without a TSS are left out.
    """
    if value not in records.PEAK_VALUES:
        raise ValueError(f"value must be one of {list(records.PEAK_VALUES)}, got {value!r}")
    table = get_links(mdata, keys)
    if "tss" not in table.columns:
        raise ValueError(
            "E2G predictions need each gene's TSS: the RNA var has no chrom/start/end; add "
            "them with grids.pp.annotate_genes()"
        )
    table = links_with_tss(table, "E2G predictions")
    dup = table.duplicated(["chrom", "start", "end", "gene", "group"], keep=False)
    if dup.any():
        row = table.loc[dup].iloc[0]
        holders = sorted(set(table.loc[dup, "key"]))
        raise ValueError(
            f"element {row['chrom']}:{row['start']}-{row['end']} and gene {row['gene']!r} of "
            f"cell type {row['group']!r} are in several results ({holders[:4]}); an E2G file "
            "holds one predictor: pass keys= of one method"
        )
    rna_var = _rna_var(mdata, table)
    if rna_var is not None:
        table["gene_start"] = table["gene"].map(rna_var["start"]).to_numpy(dtype=np.float64)
        table["gene_end"] = table["gene"].map(rna_var["end"]).to_numpy(dtype=np.float64)
    klass = element_class(table)
    chrom = table["chrom"].astype(str).to_numpy()
    start = table["start"].to_numpy(dtype=np.int64)
    end = table["end"].to_numpy(dtype=np.int64)
    raw = table[value].to_numpy(dtype=np.float64)
    out = pd.DataFrame(
        {
            "chr": chrom,
            "start": start,
            "end": end,
            "name": [f"{k}|{c}:{s}-{e}" for k, c, s, e in zip(klass, chrom, start, end)],
            "class": klass,
            "TargetGene": table["gene"].astype(str).to_numpy(),
            "TargetGeneTSS": table["tss"].to_numpy(dtype=np.int64),
            "CellType": table["group"].astype(str).to_numpy(),
            "Score": _orientation(table, mdata, value) * raw,
            "rank": table["rank"].to_numpy(dtype=np.int64),
            "alone": table["alone"].to_numpy(dtype=np.float64),
            "restored": table["restored"].to_numpy(dtype=np.float64),
            "score": table["score"].to_numpy(dtype=np.float64),
        }
    )
    if "frequency" in table.columns and table["frequency"].notna().any():
        out["frequency"] = table["frequency"].to_numpy(dtype=np.float64)
    order = np.lexsort((out["start"].to_numpy(), out["chr"].to_numpy(), out["CellType"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)


def _rna_var(mdata: MuData, table: pd.DataFrame) -> pd.DataFrame | None:
    """The RNA ``var`` with numeric ``start``/``end`` of the genes in ``table`` (or ``None``)."""
    record = records.read_selection(mdata, str(table["key"].iloc[0]))
    rna, _ = records.modalities_of(mdata, record.surrogate)
    var = mdata.mod[rna].var
    if not {"start", "end"} <= set(var.columns):
        return None
    return pd.DataFrame(
        {
            "start": pd.to_numeric(var["start"], errors="coerce"),
            "end": pd.to_numeric(var["end"], errors="coerce"),
        },
        index=var.index.astype(str),
    )


def write_e2g(table: pd.DataFrame, path) -> None:
    """Write an :func:`e2g_table` tab-separated with a header (gzip for a ``.gz`` path)."""
    table.to_csv(path, sep="\t", index=False, na_rep="NA")
