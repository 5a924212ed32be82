"""Write peak–gene links: IGV BEDPE, UCSC interact, a tidy TSV, or ENCODE E2G predictions."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from mudata import MuData

from .. import _records as records
from ..get import link_peaks_df
from ..get import links as get_links
from ._e2g import e2g_table, links_with_tss, write_e2g

FORMATS = ("bedpe", "interact", "tsv", "e2g")
#: value < 0 (perturbing the peak lowers the gene's prediction), value >= 0
COLORS = ("178,24,43", "33,102,172")
BEDPE_COLUMNS = (
    "chrom1", "start1", "end1", "chrom2", "start2", "end2", "name", "score", "strand1",
    "strand2", "value", "key", "rank",
)  # fmt: skip
INTERACT_COLUMNS = (
    "chrom", "chromStart", "chromEnd", "name", "score", "value", "exp", "color", "sourceChrom",
    "sourceStart", "sourceEnd", "sourceName", "sourceStrand", "targetChrom", "targetStart",
    "targetEnd", "targetName", "targetStrand",
)  # fmt: skip


def _token(values: pd.Series) -> np.ndarray:
    """Names safe in whitespace-separated browser files (whitespace becomes ``_``)."""
    return np.array([re.sub(r"\s+", "_", str(v)) for v in values], dtype=object)


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def scaled_score(value: np.ndarray) -> np.ndarray:
    """``round(1000 * |value| / max |value|)``: the 0–1000 browser score (0 for NaN)."""
    mag = np.abs(np.asarray(value, dtype=np.float64))
    mag = np.where(np.isfinite(mag), mag, 0.0)
    top = mag.max() if len(mag) else 0.0
    if top <= 0:
        return np.zeros(len(mag), dtype=np.int64)
    return np.rint(1000.0 * mag / top).astype(np.int64)


def write_links(
    mdata: MuData,
    path: str | os.PathLike,
    keys: str | Sequence[str] | None = None,
    format: str = "bedpe",
    *,
    value: str = "alone",
    track_name: str = "grids",
    description: str | None = None,
    links: str | None = None,
) -> None:
    """Write the selected peaks of stored results as peak–gene links.

    Each selected peak is linked to the transcription start site (TSS) of its gene: for a
    gene set, to the TSS of every gene of the set (see :func:`grids_sc.get.explain_df`).

    Parameters
    ----------
    mdata
        The data :func:`grids_sc.tl.explain` or :func:`grids_sc.tl.attribute` results are
        stored in. ``bedpe`` and ``interact`` need gene coordinates with a strand (or a
        ``tss``) in the RNA ``var`` (:func:`grids_sc.pp.annotate_genes`).
    path
        File to write (overwritten).
    keys
        Result keys in ``mdata.uns['grids']['explain']`` (default: all).
    format
        - ``"bedpe"`` (IGV, bedtools): a ``track`` line, a ``#`` header naming the columns,
          then tab-separated ``chrom1 start1 end1`` (the peak), ``chrom2 start2 end2`` (the
          1-bp TSS), ``name`` (``gene|group|peak``), ``score`` (0–1000, as for interact),
          ``strand1`` (``.``), ``strand2`` (the gene's strand), and the extra columns
          ``value``, ``key`` and ``rank``.
        - ``"interact"`` (UCSC interact, bed5+13, convertible to bigInteract with
          ``bedToBigBed -as=interact.as -type=bed5+13`` after dropping the track line): a
          ``track type=interact ... interactDirectional=true`` line, then one record per link
          with the peak as source and the TSS as target, ``name`` ``peak/gene``, ``exp`` the
          result key, ``value`` the link's value and ``color`` by its sign. A link between
          chromosomes (possible only for runs without ``window``) is written as two
          records, one on each chromosome, as the format asks.
        - ``"tsv"``: the tidy :func:`grids_sc.get.links` table with a header row.
        - ``"e2g"``: ENCODE E2G predictions, the format of ABC and ENCODE-rE2G that
          EngreitzLab's CRISPR_comparison benchmark reads (tab-separated with a header,
          gzip-compressed when ``path`` ends in ``.gz``): ``chr start end name class
          TargetGene TargetGeneTSS CellType`` with one TSS per gene and the result's group
          as the cell type, then the score columns ``Score`` (``value``, oriented so that
          larger is a stronger link), ``rank``, ``alone``, ``restored``, ``score`` (and
          ``frequency``); see :func:`grids_sc.io.e2g_table`. Score it with
          :func:`grids_sc.tl.evaluate_crispr` or hand it to the pipeline with
          ``pred_col`` ``Score``.
    value
        Column of the links table written as the link's value: ``"alone"`` (default),
        ``"restored"``, ``"score"`` or ``"frequency"`` (written with 6 significant digits;
        0 where missing, as the frequency of ``attribute`` results). The 0–1000 ``score`` is
        ``round(1000 * |value| / max |value|)`` over the file; the colour is red
        (``178,24,43``) where the value is negative (perturbing the peak lowers the gene's
        prediction) and blue (``33,102,172``) otherwise. For ``e2g``, the quantity
        ``Score`` holds (see :func:`grids_sc.io.e2g_table`).
    track_name
        The track line's ``name``. (Whitespace in the names, groups and keys written into
        BEDPE and interact fields becomes ``_``.) Not used by ``tsv`` and ``e2g``.
    description
        The track line's ``description`` (default: the number of results and links).
    links
        Write the significant links of the :func:`grids_sc.tl.link_peaks` result stored
        under this key instead of selections (``keys`` must then be left out; ``e2g`` is not
        offered for them). ``value`` then reads: ``"alone"`` the link's ``effect``,
        ``"restored"`` its ``set_effect``, ``"score"`` ``-log10 qvalue``; ``tsv`` writes the
        rows of :func:`grids_sc.get.link_peaks_df` with ``significant=True``.

    Raises
    ------
    ValueError
        For an unknown format or value, when there are no results, for ``bedpe``,
        ``interact`` and ``e2g`` when no link has a gene TSS, or for ``e2g`` when two
        results hold the same element–gene pair of a cell type.
    KeyError
        When a key is not a stored result.

    Warns
    -----
    UserWarning
        When some links are left out of a ``bedpe``, ``interact`` or ``e2g`` file for lack
        of a TSS.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {format!r}")
    if value not in records.PEAK_VALUES:
        raise ValueError(f"value must be one of {list(records.PEAK_VALUES)}, got {value!r}")
    if links is not None:
        if keys is not None:
            raise ValueError(
                "pass keys= (explain results) or links= (a link_peaks result), not both"
            )
        if format == "e2g":
            raise ValueError(
                "format='e2g' writes explain results; write links as bedpe, interact or tsv"
            )
        if value == "frequency":
            raise ValueError(
                "link_peaks results have no 'frequency'; use value='alone', 'restored' or 'score'"
            )
        table = _link_table(mdata, links)
        if format == "tsv":
            table.drop(columns=["rank"]).to_csv(Path(path), sep="\t", index=False, na_rep="NA")
            return
        value = {"alone": "effect", "restored": "set_effect", "score": "neg_log10_q"}[value]
    elif format == "e2g":
        write_e2g(e2g_table(mdata, keys, value=value), Path(path))
        return
    else:
        table = get_links(mdata, keys)
    path = Path(path)
    if format == "tsv":
        table.to_csv(path, sep="\t", index=False, na_rep="NA")
        return
    if value not in table.columns:
        raise ValueError(f"value={value!r}, but the results have no {value!r} column")
    if "tss" not in table.columns:
        raise ValueError(
            f"{format} links need gene coordinates: the RNA var has no chrom/start/end; add "
            "them with grids.pp.annotate_genes()"
        )
    table = links_with_tss(table, f"{format} links")
    if description is None:
        n_keys = table["key"].nunique()
        description = f"GRIDS peak-gene links ({len(table)} links, {n_keys} results)"
    writer = _bedpe if format == "bedpe" else _interact
    values = table[value].to_numpy(dtype=np.float64)
    out = writer(table, np.where(np.isfinite(values), values, 0.0))
    header = _track(format, track_name, description)
    with open(path, "w") as fh:
        fh.write(header)
        if format == "bedpe":
            fh.write("#" + "\t".join(BEDPE_COLUMNS) + "\n")
        out.to_csv(fh, sep="\t", header=False, index=False, float_format="%.6g")


def _link_table(mdata: MuData, key: str) -> pd.DataFrame:
    """The significant links of a link_peaks result, in the columns the writers read."""
    table = link_peaks_df(mdata, key, significant=True)
    if not len(table):
        raise ValueError(f"links {key!r} has no significant link to write")
    table["rank"] = table.groupby(["gene", "group"])["qvalue"].rank(method="first").astype(int)
    table["neg_log10_q"] = -np.log10(np.clip(table["qvalue"].to_numpy(float), 1e-300, 1.0))
    return table


def _track(format: str, name: str, description: str) -> str:
    if format == "interact":
        return (
            f"track type=interact name={_quote(name)} description={_quote(description)} "
            "interactDirectional=true maxHeightPixels=200:100:50 visibility=full\n"
        )
    return f"track name={_quote(name)} description={_quote(description)} graphType=interaction\n"


def _tss(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    tss = table["tss"].to_numpy(dtype=np.int64)
    return tss, tss + 1


def _strand(table: pd.DataFrame) -> np.ndarray:
    return table["gene_strand"].fillna(".").to_numpy(dtype=object)


def _bedpe(table: pd.DataFrame, value: np.ndarray) -> pd.DataFrame:
    t_start, t_end = _tss(table)
    name = _token(table["gene"] + "|" + table["group"] + "|" + table["peak"])
    return pd.DataFrame(
        {
            "chrom1": table["chrom"].to_numpy(),
            "start1": table["start"].to_numpy(dtype=np.int64),
            "end1": table["end"].to_numpy(dtype=np.int64),
            "chrom2": table["gene_chrom"].to_numpy(),
            "start2": t_start,
            "end2": t_end,
            "name": name,
            "score": scaled_score(value),
            "strand1": ".",
            "strand2": _strand(table),
            "value": value,
            "key": _token(table["key"]),
            "rank": table["rank"].to_numpy(dtype=np.int64),
        },
        columns=list(BEDPE_COLUMNS),
    )


def _interact(table: pd.DataFrame, value: np.ndarray) -> pd.DataFrame:
    t_start, t_end = _tss(table)
    s_chrom = table["chrom"].to_numpy(dtype=object)
    s_start = table["start"].to_numpy(dtype=np.int64)
    s_end = table["end"].to_numpy(dtype=np.int64)
    t_chrom = table["gene_chrom"].to_numpy(dtype=object)
    body = pd.DataFrame(
        {
            "name": _token(table["peak"] + "/" + table["gene"]),
            "score": scaled_score(value),
            "value": value,
            "exp": _token(table["key"]),
            "color": np.where(value < 0, COLORS[0], COLORS[1]),
            "sourceChrom": s_chrom,
            "sourceStart": s_start,
            "sourceEnd": s_end,
            "sourceName": _token(table["peak"]),
            "sourceStrand": ".",
            "targetChrom": t_chrom,
            "targetStart": t_start,
            "targetEnd": t_end,
            "targetName": _token(table["gene"]),
            "targetStrand": _strand(table),
        }
    )
    same = s_chrom == t_chrom
    span = pd.DataFrame(
        {
            "chrom": s_chrom,
            "chromStart": np.where(same, np.minimum(s_start, t_start), s_start),
            "chromEnd": np.where(same, np.maximum(s_end, t_end), s_end),
        }
    )
    out = pd.concat([span, body], axis=1)
    if not same.all():  # the record on the gene's chromosome of each trans link
        other = out.loc[~same].copy()
        other["chrom"] = t_chrom[~same]
        other["chromStart"] = t_start[~same]
        other["chromEnd"] = t_end[~same]
        order = np.concatenate([np.arange(len(out)), np.flatnonzero(~same) + 0.5])
        out = pd.concat([out, other], ignore_index=True).iloc[np.argsort(order, kind="stable")]
    return out[list(INTERACT_COLUMNS)]
