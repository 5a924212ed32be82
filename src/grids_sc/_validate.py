"""Input checks shared by the AnnData layer, with error messages that name the problem.

Every public function validates before it writes anything, so a failed call leaves the
user's object as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData


def get_modality(mdata: MuData, name: str, role: str) -> AnnData:
    """Return modality ``name`` of ``mdata``, or raise a ``KeyError`` that lists what exists."""
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"expected a MuData object with {role} and other modalities, got {type(mdata).__name__}"
        )
    if name not in mdata.mod:
        raise KeyError(
            f"{role} modality {name!r} not found in the MuData; "
            f"it has {sorted(mdata.mod)}. Pass {role}=... to name it."
        )
    return mdata.mod[name]


def check_paired(mdata: MuData, rna: str = "rna", atac: str = "atac") -> tuple[AnnData, AnnData]:
    """Return the RNA and ATAC modalities after checking they hold the same cells in order."""
    a_rna = get_modality(mdata, rna, "rna")
    a_atac = get_modality(mdata, atac, "atac")
    if a_rna.n_obs != a_atac.n_obs or not np.array_equal(
        a_rna.obs_names.to_numpy(), a_atac.obs_names.to_numpy()
    ):
        n_common = len(a_rna.obs_names.intersection(a_atac.obs_names))
        raise ValueError(
            f"modalities {rna!r} ({a_rna.n_obs} cells) and {atac!r} ({a_atac.n_obs} cells) do not "
            f"hold the same cells in the same order ({n_common} in common); paired multiome "
            "data are needed, e.g. subset both with mudata.MuData.intersect_obs() first"
        )
    return a_rna, a_atac


def is_backed(x) -> bool:
    """Whether ``x`` is a matrix on disk (``read_h5mu(..., backed="r")``), not in memory."""
    import h5py
    from anndata.abc import CSCDataset, CSRDataset

    return isinstance(x, (CSRDataset, CSCDataset, h5py.Dataset))


def backed_error(what: str) -> ValueError:
    """The one-line error of a function that needs ``what`` in memory."""
    return ValueError(
        f"{what} is backed on disk (read with backed='r') and this function needs it in "
        "memory: load it with mdata.mod[name] = mdata[name].to_memory(), or read the file "
        "without backed= (tl.explain, tl.attribute and tl.predict_expression read backed "
        "data directly)"
    )


def get_matrix(
    adata: AnnData, layer: str | None, what: str, backed: bool = False
) -> np.ndarray | sp.spmatrix:
    """Return ``adata.X`` or a layer, with an error naming the missing layer; a matrix on
    disk only with ``backed=True`` (else an error naming ``.to_memory()``).
    """
    if layer is None:
        if adata.X is None:
            raise ValueError(f"{what} has no .X; pass layer=... to use a layer")
        x = adata.X
    elif layer not in adata.layers:
        raise KeyError(f"layer {layer!r} not found in {what}; it has {sorted(adata.layers)}")
    else:
        x = adata.layers[layer]
    if not backed and is_backed(x):
        raise backed_error(what)
    return x


def _values(x: np.ndarray | sp.spmatrix) -> np.ndarray:
    if sp.issparse(x):
        return np.asarray(x.data)
    return np.asarray(x)


def check_finite(x: np.ndarray | sp.spmatrix, what: str) -> None:
    """Raise if ``x`` holds NaN or infinite values."""
    v = _values(x)
    if v.dtype.kind in "fc" and not np.all(np.isfinite(v)):
        n_bad = int(np.sum(~np.isfinite(v)))
        raise ValueError(f"{what} contains {n_bad} NaN or infinite values")


def check_nonnegative(x: np.ndarray | sp.spmatrix, what: str) -> None:
    """Raise if ``x`` holds NaN, infinite or negative values."""
    check_finite(x, what)
    v = _values(x)
    if v.size and v.min() < 0:
        raise ValueError(
            f"{what} contains negative values (min {v.min():g}); accessibility and expression "
            "must be non-negative (counts or normalised values, not scaled/centred ones)"
        )


def check_binary(x: np.ndarray | sp.spmatrix, what: str) -> None:
    """Raise unless every entry of ``x`` is 0 or 1."""
    check_nonnegative(x, what)
    v = _values(x)
    if v.size and not np.all((v == 0) | (v == 1)):
        bad = np.unique(v[(v != 0) & (v != 1)])[:5]
        raise ValueError(
            f"{what} must be binary (0/1) but holds values such as {bad.tolist()}; "
            "binarise it first with grids.pp.binarize()"
        )


def check_names(
    requested: Sequence[str], available: Sequence[str] | np.ndarray, what: str, where: str
) -> list[str]:
    """Return ``requested`` as a list after checking every entry is in ``available``."""
    avail = set(map(str, available))
    missing = [r for r in requested if r not in avail]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise KeyError(f"{what} {shown} not found in {where}")
    return list(requested)
