"""``grids.tl.predict_expression``: the surrogate's predictions as an RNA layer."""

from __future__ import annotations

import numpy as np
from mudata import MuData

from .. import _records as records
from .._device import resolve_device
from .._inputs import atac_rows
from .._mudata import check_copy, copy_of
from ..model import predict_expression as _predict
from ._surrogate import get_surrogate


def predict_expression(
    mdata: MuData,
    key: str = "surrogate",
    *,
    layer_added: str = "grids_predicted",
    batch_size: int = 1024,
    device: str = "auto",
    copy: bool = False,
) -> MuData | None:
    """Store the surrogate's predicted expression of every cell in an RNA layer.

    Parameters
    ----------
    mdata
        The data the surrogate ``key`` was fit on (same peaks and genes).
    key
        Surrogate under ``mdata.uns['grids']``.
    layer_added
        RNA layer to write (dense ``float32``, on the surrogate's transformed scale, e.g.
        log1p of normalised expression).
    batch_size, device
        Cells per forward pass and where to compute.
    copy
        Return a copy instead of writing into ``mdata``.
    """
    if not copy:
        records.check_not_view(mdata)
    check_copy(mdata, copy)
    fitted = get_surrogate(mdata, key)
    atac, rna = fitted.atac, fitted.rna
    x = atac_rows(mdata.mod[atac], fitted.layer, atac)  # backed: read batch by batch
    pred = _predict(fitted.module, x, batch_size=batch_size, device=resolve_device(device))
    target = copy_of(mdata) if copy else mdata
    target.mod[rna].layers[layer_added] = pred.astype(np.float32)
    return target if copy else None
