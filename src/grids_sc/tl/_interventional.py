"""``grids.tl.interventional_fidelity``: does the surrogate get knock-out effects right.

Held-out accuracy says how well a surrogate predicts expression from the cells' observed
accessibility; a search needs more: the change when peaks are closed, alone and together.
On simulated data (:func:`grids_sc.datasets.synthetic_multiome`) the true effects are known,
so every planted unit is knocked out peak by peak and as a pair under the surrogate and under
the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from mudata import MuData

from .. import _records as records
from .._device import resolve_device
from .._inputs import atac_binary
from .._logging import logger as log
from ..datasets import true_expression
from ..search import EmbeddingSumProblem
from ._surrogate import get_surrogate


def _ratio(both: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Interaction ratio ``effect(a and b) / (effect(a) + effect(b))`` (NaN when undefined)."""
    denom = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = both / denom
    return np.where(np.abs(denom) > 1e-9, out, np.nan)


def interventional_fidelity(
    mdata: MuData,
    key: str = "surrogate",
    *,
    cells: str = "test",
    device: str = "auto",
) -> pd.DataFrame:
    """Predicted vs true knock-out effects of the planted CREs of simulated data.

    For every planted unit (single peak, redundant OR pair, cooperative AND pair, decoy) the
    mean change of the gene's expression when closing peak ``a``, peak ``b`` and both is
    computed under the surrogate and under the simulator's true model, on the same cells.

    Parameters
    ----------
    mdata
        A simulated MuData (:func:`grids_sc.datasets.synthetic_multiome`) with a fitted
        surrogate.
    key
        Surrogate under ``mdata.uns['grids']``.
    cells
        ``"test"`` (the surrogate's held-out cells) or ``"all"``.
    device
        Where to run the surrogate.

    Returns
    -------
    DataFrame
        One row per unit: ``gene``, ``logic``, ``peak_a``, ``peak_b``, true and predicted
        effects ``true_a``, ``true_b``, ``true_ab``, ``pred_a``, ``pred_b``, ``pred_ab``
        (mean change of log expression), and the interaction ratios ``true_ratio`` and
        ``pred_ratio`` (effect of the pair over the sum of the single effects: 1 additive,
        above 1 redundant, below 1 cooperative). A summary (``slope``: least-squares slope
        through the origin of predicted on true effects over all knock-outs; ``pearson``;
        median ratios per logic) is stored with the table at
        ``mdata.uns['grids']['interventional'][key]``.
    """
    params = records.call_params(locals(), drop=("mdata", "progress"))
    records.check_not_view(mdata)
    if cells not in ("test", "all"):
        raise ValueError(f"cells must be 'test' or 'all', got {cells!r}")
    sim = mdata.uns.get("simulation")
    if not isinstance(sim, dict) or "units" not in sim:
        raise ValueError(
            "interventional_fidelity needs simulated data with known effects "
            "(grids.datasets.synthetic_multiome); on real data use grids.tl.surrogate_fidelity"
        )
    fitted = get_surrogate(mdata, key)
    rna, atac = fitted.rna, fitted.atac
    x = atac_binary(mdata.mod[atac], fitted.layer, atac)
    if cells == "test":
        pos = pd.Series(np.arange(mdata.n_obs), index=mdata.mod[rna].obs_names)
        rows = np.sort(pos.reindex(fitted.split["test"]).to_numpy().astype(int))
    else:
        rows = np.arange(mdata.n_obs)
    units = sim["units"]
    gene = np.asarray(units["gene"]).astype(str)
    logic = np.asarray(units["logic"]).astype(str)
    pa = np.asarray(units["peak_a"]).astype(str)
    pb = np.asarray(units["peak_b"]).astype(str)
    peak_pos = pd.Series(np.arange(mdata.mod[atac].n_vars), index=mdata.mod[atac].var_names)
    gene_pos = {g: i for i, g in enumerate(fitted.genes)}
    dev = resolve_device(device)
    if fitted.rna_transform != "none":
        raise ValueError(
            f"surrogate {key!r} was fit with rna_transform={fitted.rna_transform!r}: its "
            "predictions are not on the simulator's log1p scale; fit it with "
            "rna_transform='none' (or 'auto') to compare effects"
        )
    base_true = true_expression(mdata, cells=rows, rna=rna, atac=atac)
    rna_names = list(mdata.mod[rna].var_names)
    rows_out = []
    for g in np.unique(gene):
        gi = gene_pos[g]
        prob = EmbeddingSumProblem(fitted.module, x[rows], np.array([gi]), 0.0, 1.0, dev)
        before = prob.per_cell(torch.empty(0, dtype=torch.long))[0][:, 0]

        def pred(peaks, prob=prob, before=before):
            sel = torch.as_tensor(peak_pos[list(peaks)].to_numpy(), dtype=torch.long)
            return float((prob.per_cell(sel)[1][:, 0] - before).mean())

        def true(peaks, g=g):
            after = true_expression(mdata, cells=rows, close=list(peaks), genes=[g], rna=rna,
                                    atac=atac)[:, 0]  # fmt: skip
            return float((after - base_true[:, rna_names.index(g)]).mean())

        for u in np.flatnonzero(gene == g):
            a, b = pa[u], pb[u] if pb[u] else ""
            pair = bool(b) and b != a
            ta, pa_ = true([a]), pred([a])
            tb, pb_ = (true([b]), pred([b])) if pair else (np.nan, np.nan)
            tab, pab = (true([a, b]), pred([a, b])) if pair else (ta, pa_)
            rows_out.append((g, logic[u], a, b if pair else "", ta, tb, tab, pa_, pb_, pab))
    df = pd.DataFrame(
        rows_out,
        columns=["gene", "logic", "peak_a", "peak_b", "true_a", "true_b", "true_ab",
                 "pred_a", "pred_b", "pred_ab"],
    )  # fmt: skip
    df["true_ratio"] = _ratio(df["true_ab"].to_numpy(), df["true_a"].to_numpy(),
                              df["true_b"].to_numpy())  # fmt: skip
    df["pred_ratio"] = _ratio(df["pred_ab"].to_numpy(), df["pred_a"].to_numpy(),
                              df["pred_b"].to_numpy())  # fmt: skip
    summary = _summary(df)
    record = {"table": {c: df[c].to_numpy() for c in df.columns}, "summary": summary,
              "cells": cells}  # fmt: skip
    records.write(mdata, "interventional", key, record, params)
    log.info("added interventional fidelity of %r to .uns['grids']['interventional']", key)
    return df


def _summary(df: pd.DataFrame) -> dict:
    """Slope and correlation of predicted on true effects; median ratios per logic."""
    t = np.concatenate([df["true_a"], df["true_b"], df["true_ab"]])
    p = np.concatenate([df["pred_a"], df["pred_b"], df["pred_ab"]])
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    out = {
        "slope": float((t @ p) / max(t @ t, 1e-12)),
        "pearson": float(np.corrcoef(t, p)[0, 1]) if len(t) > 2 else float("nan"),
        "n_knockouts": int(len(t)),
    }
    for lg in ("or", "and"):
        sub = df[df["logic"] == lg]
        out[f"true_ratio_{lg}"] = float(np.nanmedian(sub["true_ratio"])) if len(sub) else np.nan
        out[f"pred_ratio_{lg}"] = float(np.nanmedian(sub["pred_ratio"])) if len(sub) else np.nan
    return out
