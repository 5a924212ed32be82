"""``grids.tl.surrogate_fidelity``: held-out accuracy of the surrogate against baselines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from mudata import MuData

from .. import _records as records
from .._device import resolve_device
from .._inputs import atac_binary, group_codes, obs_column, rna_values
from .._logging import logger as log
from ..model import predict_expression as _predict
from ._ridge import pearson_per_column, ridge_predict
from ._surrogate import get_surrogate

MAX_ALL_GENES = 50  # predictions of every gene are stored up to this many genes ...
SPREAD_GENES = 20  # ... else of this many, spread over the range of the surrogate's r


def surrogate_fidelity(
    mdata: MuData,
    key: str = "surrogate",
    *,
    groupby: str | None = None,
    ridge_alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
    device: str = "auto",
    predictions: bool | Sequence[str] | None = None,
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
    predictions
        Which genes' per-cell held-out predictions to store (for
        :func:`grids_sc.pl.fidelity`): ``None`` (default) all genes when there are at most
        ``50``, else ``20`` genes spread evenly over the range of the surrogate's r; ``True``
        all genes (``3 x genes x test cells`` float32 values); ``False`` none; or a list of
        gene names.

    Returns
    -------
    DataFrame
        One row per gene: ``pearson_surrogate``, ``pearson_ridge``, ``pearson_group_mean``,
        ``mean_observed``, ``n_test``; also stored at
        ``mdata.uns['grids']['fidelity'][key]`` with the chosen ridge penalty and, under
        ``predictions``, the stored genes' held-out ``observed``, ``surrogate`` and ``ridge``
        values (``[test cells, genes]`` float32, on the surrogate's scale, ``transform``;
        ``cell``: the cells' integer positions).
    """
    params = records.call_params(locals(), drop=("mdata", "progress"))
    records.check_not_view(mdata)
    fitted = get_surrogate(mdata, key)
    _check_predictions(predictions, fitted.genes)
    atac, rna = fitted.atac, fitted.rna
    x = atac_binary(mdata.mod[atac], fitted.layer, atac)
    y, _ = rna_values(mdata.mod[rna], fitted.rna_layer, fitted.rna_transform, rna)
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
    record = {
        "gene": df.index.to_numpy().astype(str),
        **{c: df[c].to_numpy() for c in df.columns},
        "ridge_alpha": alpha,
        "groupby": groupby,
    }
    cols = _prediction_genes(predictions, df["pearson_surrogate"].to_numpy(), df.index.to_numpy())
    if len(cols):
        record["predictions"] = {
            "gene": df.index.to_numpy().astype(str)[cols],
            "cell": te.astype(np.int64),
            "observed": np.asarray(y[te][:, cols], dtype=np.float32),
            "surrogate": np.asarray(pred[:, cols], dtype=np.float32),
            "ridge": np.asarray(ridge[:, cols], dtype=np.float32),
            "transform": str(fitted.rna_transform),
        }
    records.write(mdata, "fidelity", key, record, params)
    log.info("added fidelity of %r to .uns['grids']['fidelity']", key)
    return df


def _check_predictions(predictions, genes: np.ndarray) -> None:
    if predictions is None or isinstance(predictions, (bool, np.bool_)):
        return
    if isinstance(predictions, str):
        raise TypeError("predictions must be a bool or a list of gene names, not a string")
    missing = sorted(set(map(str, predictions)) - set(map(str, genes)))
    if missing:
        raise KeyError(f"predictions names genes {missing[:5]} that the surrogate does not model")


def _prediction_genes(predictions, r: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """Column positions of the genes whose held-out predictions are stored."""
    n = len(r)
    if predictions is None:
        if n <= MAX_ALL_GENES:
            return np.arange(n)
        order = np.argsort(np.nan_to_num(r, nan=-np.inf), kind="stable")
        picks = np.unique(np.round(np.linspace(0, n - 1, SPREAD_GENES)).astype(int))
        return np.sort(order[picks])
    if isinstance(predictions, (bool, np.bool_)):
        return np.arange(n) if predictions else np.zeros(0, dtype=int)
    pos = pd.Index(genes.astype(str)).get_indexer([str(g) for g in predictions])
    return np.unique(pos)
