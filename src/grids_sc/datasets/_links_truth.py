"""The true peak–gene links of a simulated object, and how a link table scores against them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._simulate import _simulation, _str_array

ACTIVE_OPEN = 0.3
"""A planted peak is *active* in a cell type when it is open in at least this share of its
cells (active planted peaks are open in 50–85%, switched-off ones in about 5%)."""


def true_links(mdata, *, groupby: str = "celltype", rna: str = "rna", atac: str = "atac"):
    """One row per planted peak, gene and cell group: the links a caller should find.

    Parameters
    ----------
    mdata
        A MuData from :func:`synthetic_multiome`.
    groupby
        Cell annotation of the groups (``obs`` of the ATAC modality or the MuData).
    rna, atac
        Modality names.

    Returns
    -------
    DataFrame
        ``gene``, ``group``, ``peak``, ``unit``, ``logic`` (``single``, ``or``, ``and``,
        ``decoy``), ``effect`` (the unit's log-rate effect; negative for repressors),
        ``open`` (share of the group's cells in which the peak is open) and ``active``
        (every peak of the unit open in at least :data:`ACTIVE_OPEN` of the group's cells).
    """
    sim = _simulation(mdata)
    units = sim["units"]
    a = mdata.mod[atac]
    if groupby in a.obs:
        labels = a.obs[groupby].astype(str).to_numpy()
    else:
        labels = mdata.obs[groupby].reindex(a.obs_names).astype(str).to_numpy()
    groups = np.unique(labels)
    peak_a, peak_b = _str_array(units["peak_a"]), _str_array(units["peak_b"])
    rows = []
    for side in (peak_a, peak_b):
        has = side != ""
        rows.append(pd.DataFrame({
            "gene": _str_array(units["gene"])[has], "peak": side[has],
            "unit": np.asarray(units["unit"])[has], "logic": _str_array(units["logic"])[has],
            "effect": np.asarray(units["effect"], dtype=np.float64)[has],
        }))  # fmt: skip
    peaks = pd.concat(rows, ignore_index=True)
    cols = a.var_names.get_indexer(peaks["peak"])
    x = sp.csc_matrix(a.X[:, cols] if len(cols) else np.zeros((a.n_obs, 0))) > 0
    out = []
    for g in groups:
        frac = np.asarray(x[labels == g].mean(0)).ravel()
        out.append(peaks.assign(group=g, open=frac))
    table = pd.concat(out, ignore_index=True)
    worst = table.groupby(["unit", "group"])["open"].transform("min")
    table["active"] = worst >= ACTIVE_OPEN
    return table[["gene", "group", "peak", "unit", "logic", "effect", "open", "active"]]


def score_links(mdata, links: pd.DataFrame, *, groupby: str = "celltype") -> dict:
    """False discovery proportion and recall of a link table against the simulation's truth.

    Parameters
    ----------
    mdata
        The simulated MuData the links were called on.
    links
        A table with ``gene``, ``group``, ``peak`` and a boolean ``significant`` (e.g.
        :func:`grids_sc.get.link_peaks_df`).
    groupby
        The annotation the links' groups come from.

    Returns
    -------
    dict
        ``n_significant``, ``fdp`` (share of significant links that are not planted peaks of
        their gene; 0 without discoveries), ``unit_recall`` (share of the non-decoy units,
        in each group where they are active, with a significant peak for their gene there),
        ``unit_recall_{logic}``, ``linear_recall`` (share of single units found in some
        group), ``linear_recall_pos``/``_neg`` by the sign of their effect, and
        ``unit_recall_small``/``_large`` (units with effects below/above the median size).
    """
    truth = true_links(mdata, groupby=groupby)
    sig = links[links["significant"].astype(bool)]
    planted = set(zip(truth["gene"], truth["peak"]))
    pairs = list(zip(sig["gene"].astype(str), sig["peak"].astype(str)))
    false = np.array([p not in planted for p in pairs], dtype=bool)
    called = set(zip(sig["gene"].astype(str), sig["group"].astype(str), sig["peak"].astype(str)))
    t = truth.assign(found=[k in called for k in zip(truth["gene"], truth["group"], truth["peak"])])
    unit_group = t.groupby(["unit", "group"]).agg(
        found=("found", "any"), active=("active", "first"), logic=("logic", "first"),
        effect=("effect", "first"),
    ).reset_index()  # fmt: skip
    target = unit_group[unit_group["active"] & (unit_group["logic"] != "decoy")]
    out = {
        "n_significant": len(sig),
        "fdp": float(false.mean()) if len(false) else 0.0,
        "n_false": int(false.sum()),
        "unit_recall": float(target["found"].mean()) if len(target) else np.nan,
    }
    for lg in ("single", "or", "and"):
        sub = target[target["logic"] == lg]
        out[f"unit_recall_{lg}"] = float(sub["found"].mean()) if len(sub) else np.nan
    if len(target):
        size = target["effect"].abs()
        med = size.median()
        out["unit_recall_small"] = float(target.loc[size < med, "found"].mean())
        out["unit_recall_large"] = float(target.loc[size >= med, "found"].mean())
    lin = (
        unit_group[unit_group["logic"] == "single"]
        .groupby("unit")
        .agg(found=("found", "any"), effect=("effect", "first"))
    )
    out["linear_recall"] = float(lin["found"].mean()) if len(lin) else np.nan
    for name, sel in (("pos", lin["effect"] > 0), ("neg", lin["effect"] < 0)):
        out[f"linear_recall_{name}"] = float(lin.loc[sel, "found"].mean()) if sel.any() else np.nan
    return out
