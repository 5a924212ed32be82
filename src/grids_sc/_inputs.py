"""Moving data out of a MuData into the arrays the torch backend takes, with checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from ._validate import backed_error, check_binary, check_finite, get_matrix, is_backed

RNA_TRANSFORMS = ("auto", "log1p", "none")


def obs_column(mdata: MuData, key: str, modalities: tuple[str, ...] = ()) -> pd.Series:
    """A cell annotation from ``mdata.obs`` or, failing that, from a modality's ``obs``."""
    if key in mdata.obs.columns:
        return mdata.obs[key]
    for name in modalities:
        if name in mdata.mod and key in mdata.mod[name].obs.columns:
            return mdata.mod[name].obs[key].reindex(mdata.obs_names)
    raise KeyError(f"cell annotation {key!r} not found in mdata.obs or in {list(modalities)} .obs")


def group_codes(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and category names of a cell annotation (missing labels are refused)."""
    cat = labels.astype("category")
    if cat.isna().any():
        raise ValueError(
            f"cell annotation {labels.name!r} has {int(cat.isna().sum())} missing values"
        )
    return cat.cat.codes.to_numpy().astype(np.int64), [str(c) for c in cat.cat.categories]


def atac_binary(adata: AnnData, layer: str | None, name: str) -> sp.csr_matrix:
    """The ATAC matrix as binary float32 CSR, refusing anything that is not 0/1."""
    x = get_matrix(adata, layer, f"ATAC modality {name!r}" + (f" layer {layer!r}" if layer else ""))
    what = f"ATAC modality {name!r}" + (f" (layer {layer!r})" if layer else " (.X)")
    check_binary(x, what)
    return binary_csr(x)


def atac_rows(adata: AnnData, layer: str | None, name: str) -> sp.csr_matrix | BackedRows:
    """The ATAC matrix as :func:`atac_binary` gives it, or, when it is backed on disk, a
    :class:`BackedRows` that reads (and checks) only the rows asked for.
    """
    x = get_matrix(adata, layer, f"ATAC modality {name!r}", backed=True)
    if not is_backed(x):
        return atac_binary(adata, layer, name)
    what = f"ATAC modality {name!r}" + (f" (layer {layer!r})" if layer else " (.X)")
    if getattr(x, "format", None) != "csr":
        raise backed_error(what + " (stored as CSC, whose rows cannot be read alone)")
    return BackedRows(x, what)


class BackedRows:
    """A CSR matrix on disk whose rows are read when indexed (``rows[cells]``,
    ``rows[a:b]``), each read checked binary and returned as :func:`binary_csr` gives it.
    """

    def __init__(self, x, what: str) -> None:
        self.x, self.what, self.shape = x, what, tuple(x.shape)

    def __getitem__(self, rows) -> sp.csr_matrix:
        if not isinstance(rows, slice):
            rows = np.asarray(rows)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            if len(rows) and np.any(np.diff(rows) <= 0):  # read sorted, return in order
                uniq, inverse = np.unique(rows, return_inverse=True)
                return self[uniq][inverse]
        out = sp.csr_matrix(self.x[rows])
        check_binary(out, self.what)
        return binary_csr(out)


def binary_csr(x) -> sp.csr_matrix:
    """A new float32 CSR matrix of ``x`` without stored zeros, sorted indices.

    Its ``data``, ``indices`` and ``indptr`` are copies: scipy's conversions share them with
    the input where they can, and ``eliminate_zeros``/``sort_indices`` work in place, so the
    user's matrix (explicit zeros included) would change.
    """
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        out = sp.csr_matrix(
            (x.data.astype(np.float32), x.indices.copy(), x.indptr.copy()), shape=x.shape
        )
    else:
        out = sp.csr_matrix(np.asarray(x, dtype=np.float32))
    out.eliminate_zeros()
    out.sort_indices()
    return out


def peak_chromosomes(adata: AnnData, name: str) -> tuple[np.ndarray, list[str]]:
    """Chromosome code of every peak and the chromosome names, from ``var['chrom']``."""
    if "chrom" not in adata.var.columns:
        from .pp import parse_peaks

        try:
            chrom = parse_peaks(adata, copy=True).var["chrom"]
        except ValueError as err:
            raise ValueError(
                f"ATAC modality {name!r} has no var['chrom'] column and its peak names could not "
                f"be parsed ({err}); run grids.pp.parse_peaks() or add the column"
            ) from err
    else:
        chrom = adata.var["chrom"]
    if chrom.isna().any():
        raise ValueError(f"ATAC modality {name!r}: var['chrom'] has missing values")
    cat = chrom.astype(str).astype("category")
    return cat.cat.codes.to_numpy().astype(np.int64), [str(c) for c in cat.cat.categories]


def rna_values(
    adata: AnnData, layer: str | None, transform: str, name: str, rows: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """Dense float32 expression after the RNA transform; returns the transform actually used.

    Negative values (e.g. after ``sc.pp.scale``) are refused: the surrogate's predictions are
    clamped at 0, so it cannot fit centred or scaled data. ``"auto"`` decides from the
    values: scanpy recorded ``uns['log1p']``, so they are logged (no transform); integers are
    counts (``log1p``); non-integers with a maximum above 20 are normalised but not logged
    (``log1p``); other non-negative values are taken as log-scale (no transform).
    ``rows`` (sorted cell positions): only those cells, read alone from a backed matrix.
    """
    if transform not in RNA_TRANSFORMS:
        raise ValueError(f"rna_transform must be one of {RNA_TRANSFORMS}, got {transform!r}")
    x = get_matrix(adata, layer, f"RNA modality {name!r}", backed=rows is not None)
    if rows is not None:
        x = x[np.asarray(rows)]
    what = f"RNA modality {name!r}" + (f" (layer {layer!r})" if layer else " (.X)")
    check_finite(x, what)
    values = np.asarray(x.data) if sp.issparse(x) else np.asarray(x)
    if values.size and values.min() < 0:
        others = [k for k in adata.layers if k != layer]
        raise ValueError(
            f"{what} has negative values (min {values.min():g}), e.g. after sc.pp.scale; the "
            "surrogate predicts non-negative expression. Pass rna_layer= a layer of counts or "
            "(log-)normalised expression"
            + (f" (it has layers {others})" if others else " (keep one before scaling)")
        )
    if transform == "auto":
        transform = auto_transform(values, "log1p" in adata.uns)
    # a new array: the transforms and the surrogate never see the user's
    y = x.toarray().astype(np.float32, copy=False) if sp.issparse(x) else np.array(x, np.float32)
    return apply_rna_transform(y, transform, what), transform


def auto_transform(values: np.ndarray, logged: bool = False) -> str:
    """``rna_transform="auto"``'s choice for non-negative ``values`` (see :func:`rna_values`)."""
    if logged or values.size == 0:
        return "none"
    if np.array_equal(values, np.round(values)):
        return "log1p"  # counts
    return "log1p" if values.max() > 20 else "none"


def apply_rna_transform(y: np.ndarray, transform: str, what: str = "RNA") -> np.ndarray:
    """Apply a stored RNA transform (``"log1p"`` or ``"none"``)."""
    if transform == "log1p":
        if y.size and y.min() < 0:
            raise ValueError(f"{what} has negative values; log1p needs non-negative expression")
        return np.log1p(y)
    return y


def split_cells(
    n: int,
    groups: np.ndarray | None,
    seed: int,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
) -> np.ndarray:
    """Assign cells to train (0), validation (1) and test (2), stratified by group, seeded."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=np.int8)
    strata = np.zeros(n, dtype=np.int64) if groups is None else groups
    cum = np.cumsum(fractions) / np.sum(fractions)
    for g in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == g))
        cuts = np.round(cum * len(idx)).astype(int)
        out[idx[cuts[0] : cuts[1]]] = 1
        out[idx[cuts[1] :]] = 2
    return out
