"""Tidy tables of :func:`grids_sc.tl.link_peaks` results, and the test between two groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mudata import MuData
from scipy.stats import norm

from .. import _records as records
from .._genome import add_tss_columns, peak_coordinates


def _bh(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    n = int(ok.sum())
    if n:
        v = p[ok]
        order = np.argsort(v)
        ranked = np.minimum.accumulate((v[order] * n / np.arange(1, n + 1))[::-1])[::-1]
        out = np.empty(n)
        out[order] = np.minimum(ranked, 1.0)
        q[ok] = out
    return q


def link_peaks_df(
    mdata: MuData,
    key: str = "links",
    *,
    significant: bool = False,
    group: str | None = None,
) -> pd.DataFrame:
    """A :func:`grids_sc.tl.link_peaks` result as a tidy table (as scanpy's
    ``rank_genes_groups_df``).

    Parameters
    ----------
    mdata
        The data the result is stored in.
    key
        The result's key in ``mdata.uns['grids']['links']``.
    significant
        Only the links with ``qvalue <= fdr`` of the call.
    group
        Only this group's rows.

    Returns
    -------
    DataFrame
        One row per tested gene, group and peak, sorted by q-value: ``gene``, ``group``,
        ``peak``, ``chrom``, ``start``, ``end``, ``effect``, ``se``, ``effect_low``,
        ``effect_high``, ``pvalue``, ``qvalue``, ``significant``, ``in_set``, ``set_rank``,
        ``alone``, ``set_effect`` (and their ``_se``), ``logic``, ``method``, ``key``, the
        method's extra columns (``isolated``, ``mirror``, ``stat_fold0``/``1`` for
        ``grids``) and, with gene coordinates, ``tss`` and ``tss_distance`` (signed bp from
        the TSS to the nearest base of the peak along the gene's strand).
    """
    rec = records.read_links(mdata, key)
    table = rec.table.copy()
    if group is not None:
        table = table[table["group"] == str(group)]
    if significant:
        table = table[table["significant"].astype(bool)]
    rna, atac = records.modalities_of(mdata, rec.surrogate) if rec.surrogate else ("rna", "atac")
    a_atac = mdata.mod[atac]
    pos = a_atac.var_names.get_indexer(table["peak"])
    if (pos < 0).any():
        raise KeyError(
            f"peaks {table['peak'][pos < 0].tolist()[:5]} of links {key!r} are not in ATAC "
            f"modality {atac!r} (was it subset after the call?)"
        )
    coords = peak_coordinates(a_atac, atac).iloc[pos]
    table.insert(3, "chrom", coords["chrom"].astype(str).to_numpy())
    table.insert(4, "start", coords["start"].to_numpy(dtype=np.int64))
    table.insert(5, "end", coords["end"].to_numpy(dtype=np.int64))
    table["method"] = rec.method
    table["key"] = key
    if rna in mdata.mod:
        add_tss_columns(table, mdata.mod[rna].var)
    order = np.lexsort((-np.abs(table["effect"].to_numpy()), table["qvalue"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def link_peaks_diff(
    mdata: MuData, group1: str, group2: str, key: str = "links", *, fdr: float | None = None
) -> pd.DataFrame:
    """Test whether each link's effect differs between two groups.

    For every (gene, peak) tested in both groups, ``z = (e1 - e2) / sqrt(se1^2 + se2^2)``
    (for correlation links, on Fisher's ``arctanh r`` scale), a two-sided normal p-value,
    and Benjamini–Hochberg q-values over the pairs tested; only pairs significant in at least
    one of the groups are tested, so the q-values are over the links a user would compare.

    Parameters
    ----------
    mdata
        The data the :func:`grids_sc.tl.link_peaks` result is stored in.
    group1, group2
        The groups to compare.
    key
        The result's key.
    fdr
        Level of the ``differs`` call (default: the call's ``fdr``).

    Returns
    -------
    DataFrame
        ``gene``, ``peak``, ``effect_1``, ``effect_2``, ``se_1``, ``se_2``, ``qvalue_1``,
        ``qvalue_2``, ``difference`` (``effect_1 - effect_2``), ``z``, ``pvalue``,
        ``qvalue`` and ``differs``, sorted by p-value.
    """
    rec = records.read_links(mdata, key)
    t = rec.table
    have = set(t["group"])
    for g in (group1, group2):
        if str(g) not in have:
            raise KeyError(f"group {g!r} is not in links {key!r}; it has {sorted(have)}")
    if str(group1) == str(group2):
        raise ValueError("group1 and group2 must differ")
    cols = ["gene", "peak", "effect", "se", "qvalue", "significant"]
    a = t.loc[t["group"] == str(group1), cols]
    b = t.loc[t["group"] == str(group2), cols]
    both = a.merge(b, on=["gene", "peak"], suffixes=("_1", "_2"))
    both = both[both["significant_1"].astype(bool) | both["significant_2"].astype(bool)]
    e1, e2 = both["effect_1"].to_numpy(), both["effect_2"].to_numpy()
    if rec.method == "correlation":
        e1, e2 = (
            np.arctanh(np.clip(e1, -0.999999, 0.999999)),
            np.arctanh(np.clip(e2, -0.999999, 0.999999)),
        )
    se = np.sqrt(both["se_1"].to_numpy() ** 2 + both["se_2"].to_numpy() ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (e1 - e2) / se, 0.0)
    out = both.drop(columns=["significant_1", "significant_2"]).reset_index(drop=True)
    out["difference"] = both["effect_1"].to_numpy() - both["effect_2"].to_numpy()
    out["z"] = z
    out["pvalue"] = 2.0 * norm.sf(np.abs(z))
    out["qvalue"] = _bh(out["pvalue"].to_numpy())
    out["differs"] = out["qvalue"] <= (rec.fdr if fdr is None else float(fdr))
    return out.sort_values("pvalue", kind="stable").reset_index(drop=True)
