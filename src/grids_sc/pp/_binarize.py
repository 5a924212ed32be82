"""Binarise ATAC accessibility: values above a threshold become 1, the rest 0."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._mudata import copy_of
from .._validate import check_nonnegative, get_matrix
from ._modality import describe, resolve


def binary_matrix(
    x: np.ndarray | sp.spmatrix | sp.sparray, threshold: float = 0.0
) -> np.ndarray | sp.spmatrix | sp.sparray:
    """Return ``x > threshold`` as float32: CSR (zeros removed) for sparse input, else dense.

    A scipy sparse matrix stays a ``csr_matrix`` and a sparse array a ``csr_array``. The
    input is not modified.
    """
    if sp.issparse(x):
        out = x.tocsr(copy=True)
        out.sum_duplicates()
        out.data = (out.data > threshold).astype(np.float32)
        out.eliminate_zeros()
        return out
    if isinstance(x, np.ndarray):
        return (np.asarray(x) > threshold).astype(np.float32)
    raise TypeError(
        f"cannot binarise a {type(x).__name__}; expected a numpy array or a scipy sparse matrix"
        " (load backed or lazy data into memory first)"
    )


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(
            f"threshold must be a finite number >= 0, got {threshold!r}; accessibility is "
            "non-negative, so a negative threshold would make every zero a 1"
        )
    return float(threshold)


def binarize(
    data: MuData | AnnData,
    *,
    atac: str = "atac",
    threshold: float = 0.0,
    layer: str | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> MuData | AnnData | None:
    """Binarise ATAC accessibility: values > ``threshold`` become 1, the rest 0 (float32).

    Parameters
    ----------
    data
        A MuData with an ATAC modality, or the ATAC AnnData itself.
    atac
        Name of the ATAC modality when ``data`` is a MuData.
    threshold
        Values strictly greater than this become 1 (finite, >= 0; default: any non-zero).
    layer
        Read this layer instead of ``.X``.
    key_added
        Write the result into this layer (overwriting it) instead of into ``.X``.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    MuData, AnnData or None
        The modified copy when ``copy=True``, else ``None``. The binary matrix replaces
        ``.X`` (or fills layer ``key_added``): a sparse input gives a CSR matrix with
        explicit zeros removed, a dense input a dense array. The settings are recorded in
        ``uns['grids_binarize']`` of the ATAC AnnData as ``threshold``, ``layer`` and
        ``key_added``.

    Raises
    ------
    ValueError
        When the matrix holds negative, NaN or infinite values, or ``threshold`` is
        negative or not finite; ``data`` is left unchanged.
    KeyError
        When ``layer`` does not exist.
    """
    threshold = _check_threshold(threshold)
    if key_added is not None and not isinstance(key_added, str):
        raise TypeError(f"key_added must be a layer name (str), got {type(key_added).__name__}")
    adata = resolve(data, atac, "atac")
    what = describe(data, atac, "atac", layer)
    x = get_matrix(adata, layer, what)
    if isinstance(x, np.matrix):
        x = np.asarray(x)
    check_nonnegative(x, what)
    binary = binary_matrix(x, threshold)
    target = copy_of(data) if copy else data
    out = resolve(target, atac, "atac")
    if key_added is None:
        out.X = binary
    else:
        out.layers[key_added] = binary
    out.uns["grids_binarize"] = {"threshold": threshold, "layer": layer, "key_added": key_added}
    return target if copy else None
