"""Find the AnnData a preprocessing function works on, and describe its matrices in errors."""

from __future__ import annotations

from anndata import AnnData
from mudata import MuData

from .._validate import get_modality


def resolve(data: MuData | AnnData, name: str, role: str) -> AnnData:
    """Return ``data`` itself when it is an AnnData, else its modality ``name``.

    Parameters
    ----------
    data
        A MuData holding the modality, or the modality's AnnData itself.
    name
        Name of the modality in ``data.mod``.
    role
        ``"rna"`` or ``"atac"``: which keyword argument names the modality.
    """
    if isinstance(data, AnnData):
        return data
    if not isinstance(data, MuData):
        raise TypeError(
            f"expected a MuData (with an {role} modality) or an {role.upper()} AnnData, "
            f"got {type(data).__name__}"
        )
    return get_modality(data, name, role)


def describe(data: MuData | AnnData, name: str, role: str, layer: str | None = None) -> str:
    """Name a matrix for error messages, e.g. ``"layer 'counts' of atac modality 'atac'"``."""
    where = "the AnnData" if isinstance(data, AnnData) else f"{role} modality {name!r}"
    return f"{where} (.X)" if layer is None else f"layer {layer!r} of {where}"
