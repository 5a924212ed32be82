"""``grids.tl.surrogate_fidelity``: held-out accuracy of the surrogate against baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mudata import MuData

from .._device import resolve_device
from ..model import predict_expression as _predict
from ._inputs import atac_binary, group_codes, obs_column, rna_values
from ._ridge import pearson_per_column, ridge_predict
from ._surrogate import get_surrogate


def surrogate_fidelity(
    mdata: MuData,
    key: str = "surrogate",
    *,
    groupby: str | None = None,
    ridge_alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
    device: str = "auto",
) -> pd.DataFrame:
    """Per-gene Pearson r of predicted vs observed expression on the surrogate's held-out cells.

    Two baselines are fit on the same split: ridge regression from the binary ATAC profile
    (penalty chosen on the validation cells) and the mean of each cell group in the training
    cells (needs ``groupby``, by default the surrogate's own).

    Parameters
    ----------
    mdata
        The data the surrogate was fit on.
    key
        Surrogate under ``mdata.uns['grids']``.
    groupby
        Cell annotation for the group-mean baseline (default: the one used at fit time).
    ridge_alphas
        Penalties tried for ridge.
    device
        Where to run the surrogate.

    Returns
    -------
    DataFrame
        One row per gene: ``pearson_surrogate``, ``pearson_ridge``, ``pearson_group_mean``,
        ``mean_observed``, ``n_test``; also stored at
        ``mdata.uns['grids']['fidelity'][key]`` with the chosen ridge penalty.
    """
    fitted = get_surrogate(mdata, key)
    data_cfg = fitted.entry["config"]["data"]
    atac, rna = str(data_cfg["atac"]), str(data_cfg["rna"])
    x = atac_binary(mdata.mod[atac], str(data_cfg["layer"]) or None, atac)
    y, _ = rna_values(mdata.mod[rna], str(data_cfg["rna_layer"]) or None, fitted.rna_transform, rna)
    pos = pd.Series(np.arange(mdata.n_obs), index=mdata.mod[rna].obs_names)
    idx = {k: pos.reindex(v).to_numpy() for k, v in fitted.split.items()}
    if any(np.isnan(v.astype(float)).any() for v in idx.values()):
        raise ValueError(f"the cells of surrogate {key!r}'s split are no longer all in the data")
    tr, va, te = (idx[k].astype(int) for k in ("train", "validation", "test"))

    pred = _predict(fitted.module, x[te], device=resolve_device(device))
    ridge, alpha = ridge_predict(x[tr], y[tr], x[va], y[va], x[te], ridge_alphas)
    groupby = groupby or fitted.groupby or None
    if groupby:
        codes, _ = group_codes(obs_column(mdata, groupby, (rna, atac)))
        means = np.zeros((codes.max() + 1, y.shape[1]), dtype=np.float64)
        for g in np.unique(codes):
            in_train = tr[codes[tr] == g]
            means[g] = y[in_train].mean(0) if len(in_train) else y[tr].mean(0)
        r_group = pearson_per_column(means[codes[te]], y[te])
    else:
        r_group = np.full(y.shape[1], np.nan)
    df = pd.DataFrame(
        {
            "pearson_surrogate": pearson_per_column(pred, y[te]),
            "pearson_ridge": pearson_per_column(ridge, y[te]),
            "pearson_group_mean": r_group,
            "mean_observed": y[te].mean(0),
            "n_test": len(te),
        },
        index=pd.Index(fitted.genes, name="gene"),
    )
    store = mdata.uns.setdefault("grids", {}).setdefault("fidelity", {})
    store[key] = {
        "gene": df.index.to_numpy().astype(str),
        **{c: df[c].to_numpy() for c in df.columns},
        "ridge_alpha": alpha,
        "groupby": groupby or "",
    }
    return df
