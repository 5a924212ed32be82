"""Read gene bounds from a DataFrame, a BED file or a GTF/GFF file into one table layout.

The layout is a DataFrame with columns ``chrom``, ``start`` (0-based), ``end``, ``strand``
(``+``, ``-`` or missing) and one or more gene name columns.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .._genome import normalize_chrom

#: gene name columns tried, in this order, when ``gene_col`` is not given
NAME_COLUMNS = ("gene", "name", "gene_name", "gene_id", "Name")

_ALIASES = {
    "chrom": ("chrom", "chr", "#chrom", "#chr", "chromosome", "seqname", "seqnames"),
    "start": ("start", "chromStart"),
    "end": ("end", "chromEnd"),
    "strand": ("strand",),
}
_BED_COLUMNS = ["chrom", "start", "end", "name", "score", "strand"]
_GTF_SUFFIXES = (".gtf", ".gff", ".gff3")
_GTF_ATTRIBUTES = ("gene_name", "gene_id", "Name")
_HEADER_PREFIXES = ("#", "track", "browser")


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt")
    return open(path)


def _header(path: Path) -> list[str]:
    """Return the header lines (``#...``, ``track``, ``browser``) at the top of a file."""
    lines = []
    with _open_text(path) as fh:
        for line in fh:
            if not line.startswith(_HEADER_PREFIXES):
                break
            lines.append(line.rstrip("\n"))
    return lines


def _is_gtf(path: Path, n_header: int) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _GTF_SUFFIXES:
        return True
    if suffixes and suffixes[-1] == ".bed":
        return False
    # No telling suffix: a GTF line has 9 fields with integer columns 4 and 5.
    with _open_text(path) as fh:
        for _ in range(n_header):
            next(fh)
        fields = next(fh, "").rstrip("\n").split("\t")
    return len(fields) == 9 and fields[3].isdigit() and fields[4].isdigit()


def _read_bed(path: Path, header: list[str]) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", header=None, skiprows=len(header), dtype={0: str, 3: str})
    if table.shape[1] < 4:
        table = pd.read_csv(
            path, sep=r"\s+", header=None, skiprows=len(header), dtype={0: str, 3: str}
        )
    n_col = table.shape[1]
    if n_col < 4:
        raise ValueError(
            f"BED file {str(path)!r} has {n_col} columns; gene bounds need at least chrom, "
            "start, end and name (BED4, or BED6 with strand)"
        )
    names = _BED_COLUMNS[: min(n_col, 6)]
    if n_col > 6:
        last = header[-1].lstrip("#").split("\t") if header else []
        extra = last[6:] if len(last) == n_col else [f"column{i + 1}" for i in range(6, n_col)]
        names += extra
    table.columns = names
    return table


def _read_gtf(path: Path, n_header: int, gene_col: str | None) -> pd.DataFrame:
    table = pd.read_csv(
        path,
        sep="\t",
        header=None,
        skiprows=n_header,
        usecols=[0, 2, 3, 4, 6, 8],
        names=["chrom", "feature", "start", "end", "strand", "attributes"],
        dtype=str,
        quoting=3,  # csv.QUOTE_NONE: attribute values carry their own quotes
    )
    table = table[table["feature"].eq("gene")]
    if table.empty:
        raise ValueError(f"GTF/GFF file {str(path)!r} has no rows with feature 'gene'")
    keys = _GTF_ATTRIBUTES if gene_col is None else (gene_col,)
    out = table[["chrom", "start", "end", "strand"]].copy()
    # GTF/GFF are 1-based with inclusive ends; the table is 0-based half-open like BED.
    out["start"] = pd.to_numeric(out["start"], errors="coerce") - 1
    out["end"] = pd.to_numeric(out["end"], errors="coerce")
    for key in keys:
        # GTF: key "value"; GFF3: key=value
        pattern = rf'(?:^|;)\s*{re.escape(key)}[ =]"?([^";]+)"?'
        values = table["attributes"].str.extract(pattern, expand=False)
        if values.notna().any():
            out[key] = values.str.strip().to_numpy()
    if gene_col is not None and gene_col not in out:
        raise KeyError(f"attribute {gene_col!r} not found in the 'gene' rows of {str(path)!r}")
    if not any(k in out for k in keys):
        raise ValueError(
            f"GTF/GFF file {str(path)!r} has none of the attributes {list(keys)} in its "
            "'gene' rows; pass gene_col=... to name the gene name attribute"
        )
    return out


def read_bounds(path: str | os.PathLike, gene_col: str | None = None) -> pd.DataFrame:
    """Read a BED (BED4+, usually BED6+) or GTF/GFF file of gene bounds.

    Parameters
    ----------
    path
        File path; ``.gz`` compression is read. ``.gtf``/``.gff``/``.gff3`` are read as
        GTF/GFF, ``.bed`` as BED, other suffixes by looking at the first data line.
    gene_col
        For GTF/GFF, the attribute holding the gene name (default: ``gene_name``, else
        ``gene_id`` or ``Name``); for BED, not used here.

    Returns
    -------
    DataFrame
        Raw table with ``chrom``, ``start`` (0-based), ``end`` and, where present,
        ``strand`` and gene name columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gene bounds file {str(path)!r} not found")
    header = _header(path)
    if _is_gtf(path, len(header)):
        return _read_gtf(path, len(header), gene_col)
    return _read_bed(path, header)


def _rename_aliases(table: pd.DataFrame) -> pd.DataFrame:
    renames = {}
    for std, aliases in _ALIASES.items():
        if std in table.columns:
            continue
        found = [a for a in aliases if a in table.columns]
        if found:
            renames[found[0]] = std
    return table.rename(columns=renames)


def pick_gene_column(table: pd.DataFrame, genes: pd.Index, gene_col: str | None) -> str:
    """Return the column of ``table`` whose values name the genes.

    With ``gene_col`` given it must exist; otherwise the column among
    :data:`NAME_COLUMNS` that matches the most of ``genes`` (the first on ties).
    """
    if gene_col is not None:
        if gene_col not in table.columns:
            raise KeyError(
                f"gene_col {gene_col!r} not found in the gene table; it has "
                f"{list(map(str, table.columns))}"
            )
        return gene_col
    present = [c for c in NAME_COLUMNS if c in table.columns]
    if not present:
        raise KeyError(
            f"the gene table has no gene name column ({', '.join(NAME_COLUMNS)}); it has "
            f"{list(map(str, table.columns))}. Pass gene_col=... to name it"
        )
    hits = [genes.isin(table[c].dropna().astype(str)).sum() for c in present]
    return present[int(np.argmax(hits))]


def _integers(values: pd.Series, what: str, names: pd.Series) -> np.ndarray:
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() | (num != np.round(num))
    if bad.any():
        shown = ", ".join(repr(str(n)) for n in names[bad.to_numpy()][:5])
        raise ValueError(
            f"gene table column {what!r} has {int(bad.sum())} missing or non-integer values "
            f"(genes {shown})"
        )
    return num.to_numpy().astype(np.int64)


def _strands(values: pd.Series, names: pd.Series) -> np.ndarray:
    mapping = {"+": "+", "-": "-", "1": "+", "-1": "-", "1.0": "+", "-1.0": "-"}
    text = values.astype(object).where(values.notna(), None)
    out = text.map(lambda s: None if s is None else mapping.get(str(s).strip(), str(s).strip()))
    unknown = out.notna() & ~out.isin(["+", "-", ".", "*"])
    if unknown.any():
        shown = sorted(set(map(str, out[unknown])))[:5]
        raise ValueError(
            f"gene table column 'strand' holds values other than '+', '-', '.': {shown} "
            f"(genes {', '.join(repr(str(n)) for n in names[unknown.to_numpy()][:3])})"
        )
    out = out.where(out.isin(["+", "-"]), np.nan)
    return out.to_numpy(dtype=object)


def standardize(table: pd.DataFrame, genes: pd.Index, gene_col: str | None) -> pd.DataFrame:
    """Return the gene bounds indexed by unique gene name, checked and in one layout.

    Parameters
    ----------
    table
        A table from :func:`read_bounds` or the user.
    genes
        The gene names to annotate (used to pick the name column).
    gene_col
        Column naming the genes, or ``None`` to pick one (see :func:`pick_gene_column`).

    Returns
    -------
    DataFrame
        Indexed by gene name (first row kept for duplicated names), with columns
        ``chrom`` (``chr``-prefixed, UCSC names as :func:`grids_sc.pp.parse_peaks` writes them),
        ``start``, ``end`` (int64) and ``strand`` (``+``, ``-`` or NaN).
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"bounds must be a DataFrame or a path to a BED/GTF file, got {type(table).__name__}"
        )
    table = _rename_aliases(table)
    if gene_col is None and not any(c in table.columns for c in NAME_COLUMNS):
        if not isinstance(table.index, pd.RangeIndex):
            table = table.rename_axis("gene").reset_index()
    missing = [c for c in ("chrom", "start", "end") if c not in table.columns]
    if missing:
        raise KeyError(
            f"the gene table lacks column(s) {missing}; it has {list(map(str, table.columns))}"
        )
    col = pick_gene_column(table, genes, gene_col)
    table = table[table[col].notna()]
    names = table[col].astype(str)
    if table.empty:
        raise ValueError("the gene table holds no named genes")
    out = pd.DataFrame(
        {
            "chrom": normalize_chrom(table["chrom"].astype(object).to_numpy()),
            "start": _integers(table["start"], "start", names),
            "end": _integers(table["end"], "end", names),
            "strand": (
                _strands(table["strand"], names)
                if "strand" in table.columns
                else np.full(len(table), np.nan, dtype=object)
            ),
        },
        index=pd.Index(names.to_numpy(), name="gene"),
    )
    if pd.isna(out["chrom"]).any():
        shown = ", ".join(repr(n) for n in out.index[pd.isna(out["chrom"])][:5])
        raise ValueError(f"gene table column 'chrom' has missing values (genes {shown})")
    flipped = (out["start"] > out["end"]).to_numpy()
    if flipped.any():
        shown = ", ".join(repr(n) for n in out.index[flipped][:5])
        raise ValueError(f"{int(flipped.sum())} genes in the table have start > end: {shown}")
    return out[~out.index.duplicated(keep="first")]
