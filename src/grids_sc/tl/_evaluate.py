"""``grids.tl.evaluate``: one tidy table for GRIDS and baseline selections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from mudata import MuData
from scipy.stats import hypergeom

from .. import _records as records
from .._genome import (
    distance_to_gene,
    gene_coordinates,
    peak_coordinates,
    window_mask,
)
from .._logging import logger as log

LOGICS = ("single", "or", "and", "decoy")


def evaluate(
    mdata: MuData,
    keys: str | Sequence[str] | None = None,
    *,
    pchic: pd.DataFrame | None = None,
    within: int = 10_000_000,
    rna: str | None = None,
    atac: str | None = None,
    key_added: str = "evaluation",
) -> pd.DataFrame:
    """Compare stored selections (``explain`` and ``attribute`` results) in one table.

    Parameters
    ----------
    mdata
        The data the results were computed on.
    keys
        Result keys under ``mdata.uns['grids']['explain']`` (default: all).
    pchic
        Promoter-capture Hi-C support (e.g. :func:`grids_sc.datasets.pchic_support`): rows with
        ``tile`` (ATAC peak name), ``gene``, ``celltype`` and boolean ``pchic_significant``.
        For a result whose gene and group have rows, the selected peaks' enrichment for
        significant tiles is tested against the result's candidate peaks that have rows
        (hypergeometric). ``None``: no PCHi-C columns.
    within
        SHR distance: a selected peak on the gene's chromosome within this many bp of it.
    rna, atac
        Modality names (default: those of each result's surrogate).
    key_added
        The table is also stored as columns in ``mdata.uns['grids']['evaluations'][key_added]``.

    Returns
    -------
    DataFrame
        One row per result: ``key``, ``method``, ``gene``, ``group``, ``L``; ``avg_delta`` and
        ``rel_delta`` (held-out test cells; ``*_train`` on search cells), ``rel_cells`` (share of
        test cells that count for ``rel_delta``: those predicted at no less than 1% of the group's
        mean), ``rel_of_means`` (relative change of the test cells' mean expression); ``hr`` (a
        selected peak overlaps the gene body), ``shr`` (one lies within ``within`` bp on its
        chromosome) and the fractions of selected peaks that do (``hr_fraction``, ``shr_fraction``);
        with ``pchic``: ``pchic_selected`` (significant among the selected tested tiles),
        ``pchic_tested``, ``pchic_window`` and ``pchic_window_tested``, ``pchic_enrichment`` and
        ``pchic_pvalue``; on simulated data: ``precision`` and ``recall`` of the planted CREs,
        ``recall_{single,or,and,decoy}``, ``units`` and ``units_{single,or,and,decoy}``: the
        share of planted units the selection switches (closing an OR pair takes both of its
        peaks, an AND pair either; opening, the reverse), and ``true_rel_delta``, the true
        relative change of mean expression on the test cells under the simulator.
    """
    params = records.call_params(locals(), drop=("mdata",))
    records.check_key(key_added)
    records.check_not_view(mdata)
    if pchic is not None:
        need = {"tile", "gene", "celltype", "pchic_significant"}
        if not need <= set(pchic.columns):
            raise ValueError(f"pchic needs columns {sorted(need)}")
        params["pchic"] = f"DataFrame of {len(pchic)} rows"
    if not records.keys(mdata, "selection") or (keys is not None and not len(keys)):
        raise ValueError("no results to evaluate: run grids.tl.explain or grids.tl.attribute")
    selections = records.read_selections(mdata, keys)
    rows = [_evaluate_one(mdata, rec, pchic, within, rna, atac) for rec in selections]
    df = pd.DataFrame(rows)
    table = {
        c: df[c].to_numpy() if df[c].dtype != object else df[c].astype(str).to_numpy()
        for c in df.columns
    }
    records.write(mdata, "evaluation", key_added, table, params)
    log.info("added the evaluation of %d result(s) to .uns['grids']['evaluations'][%r]",
             len(df), key_added)  # fmt: skip
    return df


def _evaluate_one(mdata, record: records.SelectionRecord, pchic, within, rna, atac) -> dict:
    key = record.key
    fit_rna, fit_atac = records.modalities_of(mdata, record.surrogate)
    rna, atac = rna or fit_rna, atac or fit_atac
    genes = record.genes
    selected = record.selected
    delta = record.delta
    row = {
        "key": key,
        "method": record.method,
        "gene": record.name,
        "group": record.group,
        "L": len(selected),
        "avg_delta": float(delta.get("avg_test", np.nan)),
        "rel_delta": float(delta.get("rel_test", np.nan)),
        "rel_cells": float(delta.get("rel_cells_test", np.nan)),
        "rel_of_means": float(delta.get("rel_of_means_test", np.nan)),
        "avg_delta_train": float(delta.get("avg_train", np.nan)),
        "rel_delta_train": float(delta.get("rel_train", np.nan)),
    }
    a_atac, a_rna = mdata.mod[atac], mdata.mod[rna]
    sel_pos = a_atac.var_names.get_indexer(selected)
    row.update(_hit_rates(a_atac, a_rna, atac, genes, sel_pos, within))
    if pchic is not None:
        window = a_atac.var_names[_scored(a_atac, a_rna, atac, rna, genes, record)]
        row.update(_pchic(pchic, genes, row["group"], selected, window))
    if isinstance(mdata.uns.get("simulation"), dict):
        row.update(_planted(mdata, record, genes, selected, rna, atac))
    return row


def _hit_rates(a_atac, a_rna, atac, genes, sel_pos, within) -> dict:
    if not {"chrom", "start", "end"} <= set(a_rna.var.columns):
        return dict.fromkeys(("hr", "shr", "hr_fraction", "shr_fraction"), np.nan)
    peaks = peak_coordinates(a_atac, atac).iloc[sel_pos]
    dist = np.full(len(sel_pos), np.inf)
    for g in genes:
        coords = a_rna.var.loc[g, ["chrom", "start", "end"]]
        if coords.isna().any():
            continue
        dist = np.minimum(dist, distance_to_gene(peaks, coords))
    hit, near = dist == 0, dist <= within
    return {
        "hr": bool(hit.any()),
        "shr": bool(near.any()),
        "hr_fraction": float(hit.mean()) if len(hit) else np.nan,
        "shr_fraction": float(near.mean()) if len(near) else np.nan,
    }


def _pchic(pchic, genes, group, selected, window) -> dict:
    sub = pchic[pchic["gene"].astype(str).isin(genes) & (pchic["celltype"].astype(str) == group)]
    out = dict.fromkeys(
        ("pchic_selected", "pchic_tested", "pchic_window", "pchic_window_tested"), 0
    )
    out.update(pchic_enrichment=np.nan, pchic_pvalue=np.nan)
    if sub.empty:
        return out
    support = sub.groupby(sub["tile"].astype(str))["pchic_significant"].any()
    tested_window = support.index.intersection(pd.Index(window))
    tested_sel = support.index.intersection(pd.Index(selected))
    n_pop, n_succ = len(tested_window), int(support[tested_window].sum())
    n_draw, k = len(tested_sel), int(support[tested_sel].sum())
    out.update(
        pchic_selected=k, pchic_tested=n_draw, pchic_window=n_succ, pchic_window_tested=n_pop
    )
    if n_pop and n_draw and n_succ:
        out["pchic_enrichment"] = (k / n_draw) / (n_succ / n_pop)
        out["pchic_pvalue"] = float(hypergeom.sf(k - 1, n_pop, n_succ, n_draw))
    return out


def _planted(mdata, record, genes, selected, rna, atac) -> dict:
    from ..datasets import true_expression

    units = mdata.uns["simulation"]["units"]
    ug = np.asarray(units["gene"]).astype(str)
    logic = np.asarray(units["logic"]).astype(str)
    pa, pb = (np.asarray(units[k]).astype(str) for k in ("peak_a", "peak_b"))
    mine = np.isin(ug, genes)
    peaks_of = {lg: set(pa[mine & (logic == lg)]) | set(pb[mine & (logic == lg)]) for lg in LOGICS}
    planted = set().union(*peaks_of.values()) - {""}
    sel = set(selected)
    out = {
        "precision": len(sel & planted) / max(len(sel), 1),
        "recall": len(sel & planted) / len(planted) if planted else np.nan,
    }
    for lg in LOGICS:
        p = peaks_of[lg] - {""}
        out[f"recall_{lg}"] = len(sel & p) / len(p) if p else np.nan
    # units switched: closing an OR pair needs both peaks, an AND pair either (opening: the
    # reverse); a single or decoy unit needs its peak
    close = record.perturb == "close"
    switched = {}
    for a, b, lg in zip(pa[mine], pb[mine], logic[mine]):
        hit = [q in sel for q in (a, b) if q]
        needs_all = (lg == "or") == close
        switched.setdefault(lg, []).append(all(hit) if needs_all else any(hit))
    every = [v for vals in switched.values() for v in vals]
    out["units"] = float(np.mean(every)) if every else np.nan
    for lg in LOGICS:
        out[f"units_{lg}"] = float(np.mean(switched[lg])) if lg in switched else np.nan
    per_cell = record.per_cell
    test = np.asarray(per_cell["cell"])[np.asarray(per_cell["split"]).astype(str) == "test"]
    out["true_rel_delta"] = np.nan
    if len(test):
        kw = {"close" if close else "open": list(selected)}
        before = true_expression(mdata, genes, cells=test, rna=rna, atac=atac).mean(0)
        after = true_expression(mdata, genes, cells=test, rna=rna, atac=atac, **kw).mean(0)
        out["true_rel_delta"] = float(np.mean((after - before) / before))
    return out


def _scored(a_atac, a_rna, atac: str, rna: str, genes, record) -> np.ndarray:
    """The candidate peaks of a result: those its ``{key}_score`` column scores, or (a
    genome-wide call without ``.var`` columns) those of its window.
    """
    col = f"{record.key}_score"
    if col in a_atac.var.columns:
        return a_atac.var[col].notna().to_numpy()
    if record.window is None:
        return np.ones(a_atac.n_vars, dtype=bool)
    coords = gene_coordinates(a_rna, genes, rna)
    return window_mask(peak_coordinates(a_atac, atac), coords, int(record.window))
