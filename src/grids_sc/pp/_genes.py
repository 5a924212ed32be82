"""Annotate RNA genes with their genomic bounds, strand and TSS."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from .._mudata import copy_of
from ._gene_table import read_bounds, standardize
from ._modality import resolve

_COLUMNS = ("chrom", "start", "end", "strand", "tss")


def _numeric(values: pd.Series) -> np.ndarray:
    """int64 when complete, else float64 with NaN for the missing entries."""
    if values.isna().any():
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return values.to_numpy(dtype=np.int64)


def gene_annotation(
    genes: pd.Index, bounds: pd.DataFrame | str | os.PathLike, gene_col: str | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the annotation columns for ``genes`` and a mask of the genes found.

    See :func:`annotate_genes` for ``bounds`` and ``gene_col``.
    """
    if isinstance(bounds, str | os.PathLike):
        bounds = read_bounds(bounds, gene_col)
    table = standardize(bounds, genes, gene_col)
    found = np.asarray(genes.isin(table.index))
    if not found.any():
        raise ValueError(
            f"none of the {len(genes)} genes (e.g. "
            f"{', '.join(map(repr, map(str, genes[:3])))}) is in the gene table (names such as "
            f"{', '.join(map(repr, map(str, table.index[:3])))}); check gene_col and the "
            "naming (symbols vs Ensembl IDs)"
        )
    ann = table.reindex(genes.astype(str))
    strand = ann["strand"]
    start = ann["start"].to_numpy(dtype=np.float64, na_value=np.nan)
    end = ann["end"].to_numpy(dtype=np.float64, na_value=np.nan)
    tss = pd.Series(
        np.where(strand.eq("+"), start, np.where(strand.eq("-"), end, np.nan)), index=ann.index
    )
    out = pd.DataFrame(
        {
            "chrom": ann["chrom"].to_numpy(dtype=object),
            "start": _numeric(ann["start"]),
            "end": _numeric(ann["end"]),
            "strand": strand.to_numpy(dtype=object),
            "tss": _numeric(tss),
        },
        index=genes,
    )
    return out, found


def annotate_genes(
    data: MuData | AnnData,
    bounds: pd.DataFrame | str | os.PathLike,
    *,
    rna: str = "rna",
    gene_col: str | None = None,
    copy: bool = False,
) -> MuData | AnnData | None:
    """Add genomic bounds to the RNA genes: ``chrom``, ``start``, ``end``, ``strand``, ``tss``.

    Parameters
    ----------
    data
        A MuData with an RNA modality, or the RNA AnnData itself. Genes are matched on
        its ``var_names`` (exact, case-sensitive).
    bounds
        Gene bounds, either

        - a DataFrame with columns ``chrom``, ``start``, ``end`` (0-based, half-open as in
          BED), optionally ``strand`` (``+``/``-``, or ``1``/``-1``), and a gene name column
          (``gene``, ``name``, ``gene_name``, ``gene_id`` or ``Name``; if none is there, a
          non-default index is used), e.g. :func:`grids_sc.datasets.gene_bounds`;
        - a path to a BED file (BED4+: chrom, start, end, name, score, strand, ...; header
          lines starting with ``#``, ``track`` or ``browser`` are skipped, and a ``#``
          header naming every column names the columns past the sixth);
        - a path to a GTF/GFF file (``.gtf``, ``.gff``, ``.gff3``, optionally ``.gz``): rows
          with feature ``gene`` are used, named by their ``gene_name`` attribute (else
          ``gene_id`` or ``Name``), and the 1-based starts are converted to 0-based.
    rna
        Name of the RNA modality when ``data`` is a MuData.
    gene_col
        Column (or GTF/GFF attribute) naming the genes in ``bounds``. By default the
        candidate column that matches the most ``var_names`` is used, so tables with both
        symbols and Ensembl IDs work for either naming.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    MuData, AnnData or None
        The modified copy when ``copy=True``, else ``None``. Sets RNA ``var`` columns
        ``chrom`` (str, with the UCSC ``chr`` prefix added where missing, as in
        :func:`parse_peaks`), ``start``, ``end``, ``strand`` (``+``/``-``) and ``tss``
        (``start`` on the ``+`` strand, ``end`` on the ``-`` strand), overwriting columns of
        those names. Coordinates are int64 when every gene was found (and, for ``tss``, has
        a strand); otherwise float64 with NaN for the missing genes, whose ``chrom`` and
        ``strand`` are NaN too.

    Raises
    ------
    ValueError, KeyError
        When the table lacks a needed column, holds bad coordinates, or no gene matches;
        ``data`` is left unchanged.

    Warns
    -----
    UserWarning
        When some genes are not in the table, with their number.

    Notes
    -----
    A name occurring several times in the table is annotated from its first row.
    """
    adata = resolve(data, rna, "rna")
    ann, found = gene_annotation(adata.var_names, bounds, gene_col)
    if not found.all():
        missing = adata.var_names[~found]
        warnings.warn(
            f"{len(missing)} of {adata.n_vars} genes are not in the gene table (e.g. "
            f"{', '.join(map(repr, map(str, missing[:5])))}); their chrom, start, end, strand "
            "and tss are NaN",
            UserWarning,
            stacklevel=2,
        )
    target = copy_of(data) if copy else data
    out = resolve(target, rna, "rna")
    for col in _COLUMNS:
        out.var[col] = ann[col].to_numpy()
    return target if copy else None
