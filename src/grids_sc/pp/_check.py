"""A public check that a MuData holds usable paired multiome data."""

from __future__ import annotations

from mudata import MuData

from .._validate import check_binary, check_finite, check_nonnegative, check_paired, get_matrix
from ._modality import describe


def check_multiome(
    mdata: MuData,
    *,
    rna: str = "rna",
    atac: str = "atac",
    binary: bool = True,
    layer: str | None = None,
    rna_layer: str | None = None,
) -> None:
    """Check that ``mdata`` holds paired RNA and ATAC data fit for modelling.

    Parameters
    ----------
    mdata
        The MuData to check.
    rna, atac
        Names of the modalities.
    binary
        Require ATAC values to be 0 or 1 (see :func:`binarize`); otherwise any
        non-negative values (e.g. counts) pass.
    layer
        ATAC layer to check instead of ``.X``.
    rna_layer
        RNA layer to check instead of ``.X``.

    Returns
    -------
    None
        When everything is fine; nothing is modified.

    Raises
    ------
    TypeError
        When ``mdata`` is not a MuData.
    KeyError
        When a modality or layer is missing.
    ValueError
        When the modalities do not hold the same cells in the same order, a modality is
        empty, ATAC holds NaN, infinite, negative or (with ``binary``) non-binary values,
        or RNA holds NaN or infinite values.
    """
    a_rna, a_atac = check_paired(mdata, rna, atac)
    for name, adata in ((rna, a_rna), (atac, a_atac)):
        if adata.n_obs == 0 or adata.n_vars == 0:
            raise ValueError(
                f"modality {name!r} is empty ({adata.n_obs} cells x {adata.n_vars} features)"
            )
    atac_what = describe(mdata, atac, "atac", layer)
    x_atac = get_matrix(a_atac, layer, atac_what)
    if binary:
        check_binary(x_atac, atac_what)
    else:
        check_nonnegative(x_atac, atac_what)
    rna_what = describe(mdata, rna, "rna", rna_layer)
    check_finite(get_matrix(a_rna, rna_layer, rna_what), rna_what)
