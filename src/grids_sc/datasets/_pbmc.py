"""The PBMC 10k multiome tiles and their PCHi-C support, shipped inside the package."""

from __future__ import annotations

from importlib.resources import files

import mudata as md
import numpy as np
import pandas as pd

from .._mudata import local_options

_DATA = files("grids_sc.datasets") / "data"

ATTRIBUTION = (
    "10x Genomics PBMC 10k multiome (CC BY 4.0); 500-bp tiles within 250 kb of CCR7, ZEB2 "
    "and HLA-DQB1, cell types and PCHi-C support as processed by SCARlink (Mitra et al. "
    "2024, MIT licence, see LICENSE.SCARlink in grids_sc/datasets/data)."
)


def pbmc10k_tiles() -> md.MuData:
    """Real 10x PBMC multiome subset: 9,460 cells, 3 genes and 3,325 ATAC tiles (hg38).

    Returns
    -------
    MuData
        Modalities ``rna`` (normalised expression of CCR7, ZEB2 and HLA-DQB1) and ``atac``
        (fragment counts in 500-bp tiles within 250 kb of each gene; ``var`` has ``chrom``,
        ``start``, ``end`` and ``window_gene``), with ``obs['celltype']`` (11 types). The
        RNA ``var`` also carries the hg38 gene bounds (``chrom``, ``start``, ``end``,
        ``strand``) so windows around the genes can be computed. ATAC holds counts: binarise
        with :func:`grids_sc.pp.binarize` before fitting a surrogate.

    Notes
    -----
    Source and licence: see ``ATTRIBUTION`` in this module. A fresh object is read each
    call, so it can be modified freely.
    """
    with local_options():
        mdata = md.read_h5mu(str(_DATA / "pbmc10k_tiles.h5mu"))
    genes = pd.DataFrame(
        # hg38 gene bounds (CollapsedGeneBounds.hg38.bed, EngreitzLab CRISPR_comparison, MIT)
        {
            "chrom": ["chr17", "chr2", "chr6"],
            "start": [40_553_769, 144_384_374, 32_659_463],
            "end": [40_565_484, 144_520_391, 32_666_689],
            "strand": ["-", "-", "-"],
        },
        index=["CCR7", "ZEB2", "HLA-DQB1"],
    )
    rna = mdata.mod["rna"]
    for col in genes.columns:
        rna.var[col] = genes.loc[rna.var_names, col].to_numpy()
    mdata.uns["attribution"] = ATTRIBUTION
    return mdata


def pchic_support() -> pd.DataFrame:
    """Promoter-capture Hi-C support for the PBMC tiles (SCARlink supplementary table 2).

    Returns
    -------
    DataFrame
        One row per (tile, gene, cell type) for 130 genes in 4 cell types (CD14+ Monocytes,
        CD4 Naive, CD8 Naive, B cells), with columns ``tile`` (``chrom:start-end``, the ATAC
        names of :func:`pbmc10k_tiles`), ``chrom``, ``start``, ``end``, ``celltype``,
        ``gene``, ``z_score`` and ``spearman`` (SCARlink's statistics), ``overlaps_pchic``
        (bool: the tile overlaps a PCHi-C fragment), ``pchic_coordinate`` and
        ``pchic_significant`` (bool: the tile overlaps a significant PCHi-C interaction with
        the gene's promoter; False where no PCHi-C fragment overlaps).
    """
    with (_DATA / "pchic_support.csv.gz").open("rb") as fh:
        raw = pd.read_csv(fh, compression="gzip", encoding="utf-8-sig")
    df = pd.DataFrame(
        {
            "chrom": raw["chr"].astype(str),
            "start": raw["start"].astype(np.int64),
            "end": raw["end"].astype(np.int64),
            "celltype": raw["celltype"].astype("category"),
            "gene": raw["gene"].astype(str),
            "z_score": raw["z-score"].astype(float),
            "spearman": raw["Spearman correlation"].astype(float),
            "overlaps_pchic": raw["overlaps_pchic"].eq("yes"),
            "pchic_coordinate": raw["pchic_coordinate"],
            "pchic_significant": raw["pchic_significant"]
            .astype("boolean")
            .fillna(False)
            .astype(bool),
        }
    )
    df.insert(0, "tile", df["chrom"] + ":" + df["start"].astype(str) + "-" + df["end"].astype(str))
    return df
