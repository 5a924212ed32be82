"""Select highly variable genes (through scanpy) and accessible, variable peaks."""

from __future__ import annotations

import importlib.util
import numbers
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._mudata import copy_of, local_options
from .._validate import check_nonnegative, check_paired, get_matrix
from ._modality import describe

FLAVORS = ("seurat", "cell_ranger", "seurat_v3", "seurat_v3_paper")
_COUNT_FLAVORS = ("seurat_v3", "seurat_v3_paper")
_LOOKS_UNLOGGED = 50.0  # log1p of normalised counts rarely exceeds ~15


def _check_count(value: int | None, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _values(x: np.ndarray | sp.spmatrix) -> np.ndarray:
    return np.asarray(x.data if sp.issparse(x) else x)


def _check_flavor_input(
    x: np.ndarray | sp.spmatrix, flavor: str, what: str, log_base: float | None
) -> None:
    check_nonnegative(x, what)
    v = _values(x)
    vmax = float(v.max()) if v.size else 0.0
    is_integer = v.dtype.kind in "biu" or bool(np.all(v == np.round(v)))
    if flavor in _COUNT_FLAVORS:
        if not is_integer:
            bad = v[v != np.round(v)][:3]
            raise ValueError(
                f"flavor={flavor!r} needs raw counts, but {what} holds non-integer values "
                f"such as {bad.tolist()}; pass rna_layer=... naming a counts layer, or use "
                "flavor='seurat' on log-normalised data"
            )
        return
    hint = (
        f"flavor={flavor!r} expects log-normalised expression (sc.pp.normalize_total then "
        "sc.pp.log1p); use flavor='seurat_v3' on raw counts"
    )
    scale = 1.0 if log_base is None else float(np.log(log_base))
    ftype = v.dtype if v.dtype.kind == "f" else np.dtype(np.float64)
    if flavor == "seurat" and vmax * scale > 0.99 * np.log(np.finfo(ftype).max):
        raise ValueError(
            f"{what} holds values up to {vmax:g}, too large for log-normalised data (scanpy's "
            f"seurat flavor undoes the log with expm1, which overflows); {hint}"
        )
    if (is_integer and vmax > 1) or vmax > _LOOKS_UNLOGGED:
        kind = "integers, like raw counts" if is_integer else "values not typical of log data"
        warnings.warn(f"{what} holds {kind} (max {vmax:g}); {hint}", UserWarning, stacklevel=4)


def _top(score: np.ndarray, n: int) -> np.ndarray:
    """Mask of the ``n`` largest finite scores (earlier position first on ties)."""
    score = np.where(np.isfinite(score), score, -np.inf)
    n = min(n, int(np.isfinite(score).sum()))
    mask = np.zeros(score.shape[0], dtype=bool)
    mask[np.argsort(-score, kind="stable")[:n]] = True
    return mask


def gene_variability(
    adata: AnnData,
    *,
    n_top_genes: int | None,
    flavor: str,
    layer: str | None,
    what: str,
) -> pd.DataFrame:
    """Run :func:`scanpy.pp.highly_variable_genes` without touching ``adata``.

    Returns scanpy's per-gene table (index aligned with ``adata.var_names``), with
    exactly ``min(n_top_genes, n_genes)`` genes marked when ``n_top_genes`` is given.
    """
    import scanpy as sc

    x = get_matrix(adata, layer, what)
    if isinstance(x, np.matrix):
        x = np.asarray(x)
    log1p = dict(adata.uns.get("log1p", {}))  # scanpy reads the log base from here
    _check_flavor_input(x, flavor, what, log1p.get("base"))
    tmp = AnnData(X=x, var=pd.DataFrame(index=np.arange(adata.n_vars).astype(str)))
    if log1p:
        tmp.uns["log1p"] = log1p
    if flavor in _COUNT_FLAVORS:
        kwargs = {} if n_top_genes is None else {"n_top_genes": min(n_top_genes, adata.n_vars)}
        df = sc.pp.highly_variable_genes(tmp, flavor=flavor, inplace=False, **kwargs)
    else:
        # Rank by scanpy's normalised dispersion here rather than passing n_top_genes:
        # scanpy keeps every gene tied with the n-th and fails when none has a finite
        # normalised dispersion; this marks exactly n (the finite ones at most).
        df = sc.pp.highly_variable_genes(tmp, flavor=flavor, inplace=False)
        if n_top_genes is not None:
            df["highly_variable"] = _top(df["dispersions_norm"].to_numpy(float), n_top_genes)
    df = df.reset_index(drop=True).drop(columns=["mean_bin"], errors="ignore")
    df.index = adata.var_names
    return df


def peak_variability(
    adata: AnnData,
    *,
    n_top_peaks: int | None,
    min_cells: int,
    layer: str | None,
    what: str,
) -> pd.DataFrame:
    """Per-peak ``n_cells`` (cells with signal), ``frac_cells`` and ``highly_variable``.

    Peaks open in fewer than ``min_cells`` cells are dropped; of the rest the
    ``n_top_peaks`` with the largest binary variance ``p (1 - p)`` are kept, where ``p`` is
    ``frac_cells`` (all of them when ``n_top_peaks`` is None).
    """
    x = get_matrix(adata, layer, what)
    if isinstance(x, np.matrix):
        x = np.asarray(x)
    check_nonnegative(x, what)
    if sp.issparse(x):
        n_cells = np.asarray((x > 0).sum(axis=0)).ravel()
    else:
        n_cells = np.asarray(x > 0).sum(axis=0)
    n_cells = n_cells.astype(np.int64)
    frac = n_cells / max(adata.n_obs, 1)
    kept = n_cells >= min_cells
    if not kept.any():
        raise ValueError(
            f"no peak of {what} is open in >= {min_cells} cells (the most open peak is in "
            f"{int(n_cells.max(initial=0))}); lower min_cells_peaks"
        )
    if n_top_peaks is None:
        hv = kept
    else:
        hv = _top(np.where(kept, frac * (1 - frac), -np.inf), n_top_peaks)
    return pd.DataFrame(
        {"n_cells": n_cells, "frac_cells": frac, "highly_variable": hv}, index=adata.var_names
    )


def select_features(
    mdata: MuData,
    *,
    rna: str = "rna",
    atac: str = "atac",
    n_top_genes: int | None = None,
    n_top_peaks: int | None = None,
    min_cells_peaks: int = 10,
    flavor: str = "seurat",
    rna_layer: str | None = None,
    atac_layer: str | None = None,
    subset: bool = False,
    copy: bool = False,
) -> MuData | None:
    """Mark highly variable genes and the accessible, variable peaks to model.

    Genes go through :func:`scanpy.pp.highly_variable_genes`. Peaks open (value > 0) in
    fewer than ``min_cells_peaks`` cells are dropped, and of the rest the ``n_top_peaks``
    most variable are kept. Peaks are ranked by the variance ``p (1 - p)`` of their binary
    accessibility, ``p`` being the fraction of cells where the peak is open, rather than by
    scanpy: scanpy's flavors model log-normalised expression (or need counts and
    scikit-misc), while the variance of a 0/1 feature is set by its frequency alone. Since
    most peaks are open in fewer than half the cells, this favours frequently open peaks,
    and ranks peaks open in nearly all cells low.

    Parameters
    ----------
    mdata
        MuData with paired RNA and ATAC modalities (same cells, same order).
    rna, atac
        Names of the modalities.
    n_top_genes
        Number of genes to mark. ``None`` uses scanpy's cutoffs for ``seurat`` and
        ``cell_ranger`` (``min_mean=0.0125``, ``max_mean=3``, ``min_disp=0.5``) and
        scanpy's 2,000 for the ``seurat_v3`` flavors. Exactly ``min(n_top_genes, n_genes)``
        genes are marked (fewer only for ``seurat``/``cell_ranger`` when genes are constant).
    n_top_peaks
        Number of peaks to mark, among those passing ``min_cells_peaks``; ``None``: all of
        those.
    min_cells_peaks
        Minimum number of cells in which a peak must be open.
    flavor
        Scanpy flavor: ``"seurat"`` (default) or ``"cell_ranger"`` expect log-normalised
        expression; ``"seurat_v3"`` and ``"seurat_v3_paper"`` expect raw counts (give the
        counts layer as ``rna_layer``) and need the optional scikit-misc package, so the
        default is ``"seurat"``, which works out of the box.
    rna_layer, atac_layer
        Read these layers instead of ``.X``. ATAC may hold counts or binary values.
    subset
        Keep only the marked genes and peaks in the modalities (in place, then
        ``mdata.update()``); cells are untouched, so the modalities stay paired.
    copy
        Return a modified copy instead of writing into ``mdata``.

    Returns
    -------
    MuData or None
        The modified copy when ``copy=True``, else ``None``. RNA ``var`` gets scanpy's
        columns (``highly_variable``, ``means``, ``dispersions``, ``dispersions_norm``, or
        ``variances``, ``variances_norm``, ``highly_variable_rank`` for ``seurat_v3``) and
        ``uns['hvg'] = {'flavor': flavor}``; ATAC ``var`` gets ``n_cells``, ``frac_cells``
        and ``highly_variable``. Existing columns of those names are overwritten.

    Raises
    ------
    ValueError
        When the modalities are not paired, a matrix holds negative/NaN values, a
        ``seurat_v3`` flavor gets non-count data, or no gene or peak is selected;
        ``mdata`` is left unchanged.
    ImportError
        When a ``seurat_v3`` flavor is asked for without scikit-misc installed.

    Warns
    -----
    UserWarning
        When ``seurat``/``cell_ranger`` get data that look like raw counts.
    """
    a_rna, a_atac = check_paired(mdata, rna, atac)
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {list(FLAVORS)}, got {flavor!r}")
    if flavor in _COUNT_FLAVORS and importlib.util.find_spec("skmisc") is None:
        raise ImportError(
            f"flavor={flavor!r} needs the scikit-misc package (pip install scikit-misc); "
            "use flavor='seurat' or 'cell_ranger' on log-normalised data instead"
        )
    n_top_genes = _check_count(n_top_genes, "n_top_genes", 1)
    n_top_peaks = _check_count(n_top_peaks, "n_top_peaks", 1)
    min_cells_peaks = _check_count(min_cells_peaks, "min_cells_peaks", 0)
    rna_what = describe(mdata, rna, "rna", rna_layer)
    atac_what = describe(mdata, atac, "atac", atac_layer)
    genes = gene_variability(
        a_rna, n_top_genes=n_top_genes, flavor=flavor, layer=rna_layer, what=rna_what
    )
    peaks = peak_variability(
        a_atac,
        n_top_peaks=n_top_peaks,
        min_cells=min_cells_peaks,
        layer=atac_layer,
        what=atac_what,
    )
    if not genes["highly_variable"].any():
        reason = (
            "no gene passes scanpy's default cutoffs; pass n_top_genes=..."
            if n_top_genes is None
            else "no gene has a finite normalised dispersion (too few or constant genes?)"
        )
        raise ValueError(
            f"no gene of {rna_what} was marked highly variable with flavor={flavor!r}: {reason}"
        )

    target = copy_of(mdata) if copy else mdata
    out_rna, out_atac = target.mod[rna], target.mod[atac]
    for col in genes.columns:
        out_rna.var[col] = genes[col].to_numpy()
    out_rna.uns["hvg"] = {"flavor": flavor}
    for col in peaks.columns:
        out_atac.var[col] = peaks[col].to_numpy()
    if subset:
        out_rna._inplace_subset_var(genes["highly_variable"].to_numpy())
        out_atac._inplace_subset_var(peaks["highly_variable"].to_numpy())
        with local_options():
            target.update()
    return target if copy else None
