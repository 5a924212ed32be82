"""Tests for grids_sc.pp: peak parsing, gene annotation, binarisation, feature selection, checks."""

from __future__ import annotations

import copy
import gzip
import importlib.util

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import grids_sc as grids

HAS_SKMISC = importlib.util.find_spec("skmisc") is not None


# ---------------------------------------------------------------- helpers


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _snap_adata(a: ad.AnnData) -> dict:
    return {
        "X": None if a.X is None else (a.X.copy(), type(a.X)),
        "layers": {k: (v.copy(), type(v)) for k, v in a.layers.items()},
        "obs": a.obs.copy(),
        "var": a.var.copy(),
        "uns": copy.deepcopy(dict(a.uns)),
    }


def snapshot(obj) -> dict:
    if isinstance(obj, ad.AnnData):
        return {"adata": _snap_adata(obj)}
    return {
        "mod": {k: _snap_adata(v) for k, v in obj.mod.items()},
        "obs": obj.obs.copy(),
        "var": obj.var.copy(),
        "uns": copy.deepcopy(dict(obj.uns)),
    }


def _same_adata(a: ad.AnnData, s: dict) -> None:
    if s["X"] is None:
        assert a.X is None
    else:
        assert type(a.X) is s["X"][1]
        np.testing.assert_array_equal(_dense(a.X), _dense(s["X"][0]))
    assert sorted(a.layers) == sorted(s["layers"])
    for k, (v, t) in s["layers"].items():
        assert type(a.layers[k]) is t
        np.testing.assert_array_equal(_dense(a.layers[k]), _dense(v))
    pd.testing.assert_frame_equal(a.obs, s["obs"])
    pd.testing.assert_frame_equal(a.var, s["var"])
    assert sorted(a.uns) == sorted(s["uns"])


def assert_unchanged(obj, snap: dict) -> None:
    if "adata" in snap:
        _same_adata(obj, snap["adata"])
        return
    assert sorted(obj.mod) == sorted(snap["mod"])
    for k, s in snap["mod"].items():
        _same_adata(obj.mod[k], s)
    pd.testing.assert_frame_equal(obj.obs, snap["obs"])
    pd.testing.assert_frame_equal(obj.var, snap["var"])
    assert sorted(obj.uns) == sorted(snap["uns"])


def make_mdata(n_cells: int = 100, seed: int = 0) -> md.MuData:
    """Log-normalised RNA (200 genes) and ATAC counts (8 peaks) with known open frequencies."""
    rng = np.random.default_rng(seed)
    cells = [f"cell{i}" for i in range(n_cells)]
    scale = np.linspace(0.05, 5.0, 200)
    counts = rng.negative_binomial(2, 2 / (2 + scale), size=(n_cells, 200))
    rna = ad.AnnData(
        sp.csr_matrix(np.log1p(counts).astype(np.float32)),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=[f"G{i}" for i in range(200)]),
    )
    # peak j is open (count 1..3) in exactly freq[j] * n_cells cells
    freq = np.array([0.02, 0.1, 0.3, 0.5, 0.6, 0.95, 0.0, 0.2])
    x = np.zeros((n_cells, freq.size), dtype=np.float32)
    for j, f in enumerate(freq):
        idx = rng.choice(n_cells, size=int(round(f * n_cells)), replace=False)
        x[idx, j] = rng.integers(1, 4, size=idx.size)
    atac = ad.AnnData(
        sp.csr_matrix(x),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=[f"chr1:{1000 * j}-{1000 * j + 500}" for j in range(freq.size)]),
    )
    return md.MuData({"rna": rna, "atac": atac})


# ---------------------------------------------------------------- parse_peaks


@pytest.mark.parametrize(
    ("name", "chrom", "start", "end"),
    [
        ("chr1:100-200", "chr1", 100, 200),
        ("chr1-100-200", "chr1", 100, 200),
        ("1-100-200", "chr1", 100, 200),
        ("chr1_100_200", "chr1", 100, 200),
        ("chrX:5-10", "chrX", 5, 10),
        ("X-5-10", "chrX", 5, 10),
        ("chrM:0-16569", "chrM", 0, 16569),
        ("MT-1-2", "chrM", 1, 2),
        ("chr1_KI270706v1_random:1-2", "chr1_KI270706v1_random", 1, 2),
        ("chrUn_GL000220v1-7-9", "chrUn_GL000220v1", 7, 9),
        ("GL000194.1-3-4", "GL000194.1", 3, 4),
        ("chr22:3000000000-3000000500", "chr22", 3_000_000_000, 3_000_000_500),
    ],
)
def test_parse_peaks_forms(name, chrom, start, end):
    a = ad.AnnData(np.zeros((2, 1), dtype=np.float32), var=pd.DataFrame(index=[name]))
    assert grids.pp.parse_peaks(a) is None
    assert a.var.loc[name, "chrom"] == chrom
    assert a.var.loc[name, "start"] == start
    assert a.var.loc[name, "end"] == end


def test_parse_peaks_columns_mudata_and_overwrite():
    names = ["chr2:10-20", "3-30-40", "chrY_50_60"]
    atac = ad.AnnData(np.zeros((3, 3)), var=pd.DataFrame({"chrom": ["old"] * 3}, index=names))
    rna = ad.AnnData(np.zeros((3, 1)))
    mdata = md.MuData({"rna": rna, "peaks": atac})
    grids.pp.parse_peaks(mdata, atac="peaks")
    var = mdata.mod["peaks"].var
    assert var["chrom"].tolist() == ["chr2", "chr3", "chrY"]
    assert var["start"].tolist() == [10, 30, 50]
    assert var["end"].tolist() == [20, 40, 60]
    assert var["start"].dtype == np.int64 and var["end"].dtype == np.int64
    assert isinstance(var["chrom"].iloc[0], str)


def test_parse_peaks_copy_leaves_input():
    a = ad.AnnData(np.zeros((2, 2)), var=pd.DataFrame(index=["chr1:1-2", "chr1:3-4"]))
    snap = snapshot(a)
    out = grids.pp.parse_peaks(a, copy=True)
    assert_unchanged(a, snap)
    assert out is not a and out.var["start"].tolist() == [1, 3]


def test_parse_peaks_matches_shipped_pbmc_columns():
    mdata = grids.datasets.pbmc10k_tiles()
    atac = mdata.mod["atac"]
    expected = atac.var[["chrom", "start", "end"]].copy()
    atac.var = atac.var.drop(columns=["chrom", "start", "end"])
    grids.pp.parse_peaks(mdata)
    assert atac.var["chrom"].tolist() == expected["chrom"].astype(str).tolist()
    np.testing.assert_array_equal(atac.var["start"], expected["start"])
    np.testing.assert_array_equal(atac.var["end"], expected["end"])


def test_parse_peaks_many_names():
    starts = np.arange(0, 150_000 * 500, 500)
    names = [f"chr{1 + i % 22}-{s}-{s + 500}" for i, s in enumerate(starts)]
    a = ad.AnnData(sp.csr_matrix((1, len(names)), dtype=np.float32), var=pd.DataFrame(index=names))
    grids.pp.parse_peaks(a)
    np.testing.assert_array_equal(a.var["start"].to_numpy(), starts)
    np.testing.assert_array_equal(a.var["end"].to_numpy(), starts + 500)
    assert a.var["chrom"].iloc[21] == "chr22"


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["chr1:1-2", "GeneA", "chr1:3", "chr1:a-b", "x y:1-2"], r"4 of 5"),
        (["chr1:200-100", "chr1:1-2"], r"start > end.*'chr1:200-100'"),
    ],
)
def test_parse_peaks_errors_leave_input(names, match):
    a = ad.AnnData(np.zeros((2, len(names))), var=pd.DataFrame(index=names))
    snap = snapshot(a)
    with pytest.raises(ValueError, match=match):
        grids.pp.parse_peaks(a)
    assert_unchanged(a, snap)


def test_parse_peaks_error_lists_bad_names():
    names = [f"peak{i}" for i in range(8)] + ["chr1:1-2"]
    a = ad.AnnData(np.zeros((1, 9)), var=pd.DataFrame(index=names))
    with pytest.raises(ValueError, match=r"8 of 9.*'peak0'.*'peak4' \.\.\.") as err:
        grids.pp.parse_peaks(a)
    assert "peak5" not in str(err.value)


def test_parse_peaks_missing_modality_and_type():
    mdata = make_mdata()
    snap = snapshot(mdata)
    with pytest.raises(KeyError, match="'peaks' not found"):
        grids.pp.parse_peaks(mdata, atac="peaks")
    assert_unchanged(mdata, snap)
    with pytest.raises(TypeError, match="MuData"):
        grids.pp.parse_peaks(pd.DataFrame())


# ---------------------------------------------------------------- annotate_genes

TABLE = pd.DataFrame(
    {
        "chrom": ["chr1", "1", "chrX", "chr1"],
        "start": [100, 1000, 50, 7],
        "end": [200, 2000, 80, 9],
        "gene": ["GA", "GB", "GC", "GA"],  # second GA is ignored
        "strand": ["+", "-", "+", "-"],
        "gene_id": ["ENSG1", "ENSG2", "ENSG3", "ENSG4"],
    }
)


def _rna(genes, n_cells=3):
    return ad.AnnData(np.ones((n_cells, len(genes))), var=pd.DataFrame(index=genes))


def test_annotate_genes_dataframe_exact():
    rna = _rna(["GB", "GA", "GC"])
    assert grids.pp.annotate_genes(rna, TABLE) is None
    var = rna.var
    assert var["chrom"].tolist() == ["chr1", "chr1", "chrX"]
    assert var["start"].tolist() == [1000, 100, 50]
    assert var["end"].tolist() == [2000, 200, 80]
    assert var["strand"].tolist() == ["-", "+", "+"]
    assert var["tss"].tolist() == [2000, 100, 50]
    for col in ("start", "end", "tss"):
        assert var[col].dtype == np.int64


def test_annotate_genes_mudata_copy_and_gene_id_autopick():
    mdata = md.MuData({"expr": _rna(["ENSG3", "ENSG2"]), "atac": _rna(["chr1:1-2"])})
    snap = snapshot(mdata)
    out = grids.pp.annotate_genes(mdata, TABLE, rna="expr", copy=True)
    assert_unchanged(mdata, snap)
    assert out.mod["expr"].var["start"].tolist() == [50, 1000]
    assert out.mod["expr"].var["tss"].tolist() == [50, 2000]


def test_annotate_genes_missing_warns_and_fills_nan():
    rna = _rna(["GA", "NOPE", "GB"])
    with pytest.warns(UserWarning, match=r"1 of 3 genes.*'NOPE'"):
        grids.pp.annotate_genes(rna, TABLE)
    var = rna.var
    assert var["start"].dtype == np.float64
    assert var["start"].tolist()[0] == 100 and np.isnan(var.loc["NOPE", "start"])
    assert pd.isna(var.loc["NOPE", "chrom"]) and pd.isna(var.loc["NOPE", "strand"])
    assert np.isnan(var.loc["NOPE", "tss"]) and var.loc["GB", "tss"] == 2000


def test_annotate_genes_index_table_numeric_strand_and_no_strand():
    table = pd.DataFrame(
        {"chromosome": ["2", "MT"], "start": [10, 20], "end": [15, 30], "strand": [1, -1]},
        index=["A", "B"],
    )
    rna = _rna(["A", "B"])
    grids.pp.annotate_genes(rna, table)
    assert rna.var["chrom"].tolist() == ["chr2", "chrM"]
    assert rna.var["strand"].tolist() == ["+", "-"]
    assert rna.var["tss"].tolist() == [10, 30]
    rna2 = _rna(["A"])
    grids.pp.annotate_genes(rna2, table.drop(columns="strand"))
    assert rna2.var["start"].tolist() == [10] and np.isnan(rna2.var["tss"].iloc[0])


@pytest.mark.parametrize(
    ("table", "kwargs", "error", "match"),
    [
        (TABLE, {}, ValueError, "none of the 2 genes"),
        (TABLE.drop(columns="end"), {}, KeyError, r"lacks column\(s\) \['end'\]"),
        (TABLE, {"gene_col": "symbol"}, KeyError, "gene_col 'symbol' not found"),
        (TABLE.assign(start=[300, 1000, 50, 7]), {}, ValueError, "start > end: 'GA'"),
        (TABLE.assign(start=[1.5, 1000, 50, 7]), {}, ValueError, "non-integer"),
        (TABLE.assign(strand=["?", "+", "-", "+"]), {}, ValueError, "strand"),
        ("not a table", {}, FileNotFoundError, "not found"),
    ],
)
def test_annotate_genes_errors_leave_input(table, kwargs, error, match):
    genes = ["X1", "X2"] if "none of" in match else ["GA", "GB"]
    mdata = md.MuData({"rna": _rna(genes), "atac": _rna(["chr1:1-2"])})
    snap = snapshot(mdata)
    with pytest.raises(error, match=match):
        grids.pp.annotate_genes(mdata, table, **kwargs)
    assert_unchanged(mdata, snap)


BED = """#chr\tstart\tend\tname\tscore\tstrand\tEnsembl_ID\tgene_type
chr1\t100\t200\tGA\t0\t+\tENSG1\tprotein_coding
1\t1000\t2000\tGB\t0\t-\tENSG2\tlincRNA
chr1\t5\t6\tGA\t0\t-\tENSG9\tlincRNA
"""


@pytest.mark.parametrize("suffix", [".bed", ".bed.gz", ".txt"])
def test_annotate_genes_bed_file(tmp_path, suffix):
    path = tmp_path / f"genes{suffix}"
    if suffix.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(BED)
    else:
        path.write_text(BED)
    rna = _rna(["GB", "GA"])
    grids.pp.annotate_genes(rna, path)
    assert rna.var["chrom"].tolist() == ["chr1", "chr1"]
    assert rna.var["start"].tolist() == [1000, 100]
    assert rna.var["end"].tolist() == [2000, 200]
    assert rna.var["tss"].tolist() == [2000, 100]
    rna2 = _rna(["ENSG2"])
    grids.pp.annotate_genes(rna2, str(path), gene_col="Ensembl_ID")
    assert rna2.var["start"].tolist() == [1000]


def test_annotate_genes_bed4_without_header(tmp_path):
    path = tmp_path / "genes.bed"
    path.write_text("track name=genes\nchr3 10 20 GA\nchr3 30 40 GB\n")
    rna = _rna(["GB"])
    grids.pp.annotate_genes(rna, path)
    assert rna.var["start"].tolist() == [30] and pd.isna(rna.var["strand"].iloc[0])


GTF = (
    "#!genome-build GRCh38\n"
    '1\tensembl\tgene\t101\t200\t.\t+\t.\tgene_id "ENSG1"; gene_name "GA"; gene_biotype "pc";\n'
    '1\tensembl\ttranscript\t101\t150\t.\t+\t.\tgene_id "ENSG1"; gene_name "GA";\n'
    '1\tensembl\texon\t101\t120\t.\t+\t.\tgene_id "ENSG1"; gene_name "GA";\n'
    'X\tensembl\tgene\t1001\t2000\t.\t-\t.\tgene_id "ENSG2"; gene_name "GB";\n'
)


def test_annotate_genes_gtf_file(tmp_path):
    path = tmp_path / "genes.gtf"
    path.write_text(GTF)
    rna = _rna(["GB", "GA"])
    grids.pp.annotate_genes(rna, path)
    assert rna.var["chrom"].tolist() == ["chrX", "chr1"]
    assert rna.var["start"].tolist() == [1000, 100]  # 1-based -> 0-based
    assert rna.var["end"].tolist() == [2000, 200]
    assert rna.var["strand"].tolist() == ["-", "+"]
    assert rna.var["tss"].tolist() == [2000, 100]
    rna2 = _rna(["ENSG2"])
    grids.pp.annotate_genes(rna2, path, gene_col="gene_id")
    assert rna2.var["start"].tolist() == [1000]


def test_annotate_genes_gff3_file(tmp_path):
    path = tmp_path / "genes.gff3"
    path.write_text(
        "##gff-version 3\n"
        "chr2\tsrc\tgene\t11\t20\t.\t-\t.\tID=gene:ENSG5;Name=GE;biotype=pc\n"
        "chr2\tsrc\tmRNA\t11\t20\t.\t-\t.\tID=transcript:T1;Parent=gene:ENSG5\n"
    )
    rna = _rna(["GE"])
    grids.pp.annotate_genes(rna, path)
    assert rna.var["start"].tolist() == [10] and rna.var["tss"].tolist() == [20]


def test_annotate_genes_gene_bounds_pbmc():
    try:
        bounds = grids.datasets.gene_bounds()
    except grids.datasets.SharedDataNotFound:
        pytest.skip("shared gene bounds not on this machine")
    mdata = grids.datasets.pbmc10k_tiles()
    rna = mdata.mod["rna"]
    expected = rna.var[["chrom", "start", "end", "strand"]].copy()
    rna.var = rna.var.drop(columns=["chrom", "start", "end", "strand"])
    grids.pp.annotate_genes(mdata, bounds)
    pd.testing.assert_frame_equal(
        rna.var[["chrom", "start", "end", "strand"]], expected, check_dtype=False
    )
    assert rna.var.loc["CCR7", "tss"] == 40_565_484  # minus strand: TSS at the end


# ---------------------------------------------------------------- binarize

COUNTS = np.array([[0, 1, 2.5], [3, 0, 0], [0.5, 0, 1]], dtype=np.float32)


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csc_matrix, sp.csr_array, np.asarray])
def test_binarize_in_place(kind):
    a = ad.AnnData(kind(COUNTS))
    assert grids.pp.binarize(a) is None
    x = a.X
    np.testing.assert_array_equal(_dense(x), (COUNTS > 0).astype(np.float32))
    assert x.dtype == np.float32
    if kind is np.asarray:
        assert isinstance(x, np.ndarray)
    else:
        assert x.format == "csr" and x.nnz == 5
        assert sp.isspmatrix(x) == (kind is not sp.csr_array)
    assert a.uns["grids_binarize"] == {"threshold": 0.0, "layer": None, "key_added": None}


def test_binarize_threshold_layer_and_key_added():
    x = sp.csr_matrix(COUNTS)
    x.data[x.data == 0.5] = 0.5  # stored value below the threshold
    mdata = md.MuData({"rna": _rna(["GA"]), "peaks": ad.AnnData(x.copy(), layers={"c": x})})
    grids.pp.binarize(mdata, atac="peaks", threshold=1.0, layer="c", key_added="bin")
    atac = mdata.mod["peaks"]
    np.testing.assert_array_equal(_dense(atac.layers["bin"]), (COUNTS > 1).astype(np.float32))
    assert atac.layers["bin"].nnz == 2  # explicit zeros removed
    np.testing.assert_array_equal(_dense(atac.X), COUNTS)  # .X untouched
    np.testing.assert_array_equal(_dense(atac.layers["c"]), COUNTS)
    assert atac.uns["grids_binarize"] == {"threshold": 1.0, "layer": "c", "key_added": "bin"}


def test_binarize_copy_and_pbmc():
    mdata = grids.datasets.pbmc10k_tiles()
    snap = snapshot(mdata)
    out = grids.pp.binarize(mdata, copy=True)
    assert_unchanged(mdata, snap)
    raw = mdata.mod["atac"].X
    b = out.mod["atac"].X
    assert b.nnz == raw.nnz and set(np.unique(b.data)) == {1.0}
    grids.pp.check_multiome(out)


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (-1.0, {}, ValueError, "negative"),
        (np.nan, {}, ValueError, "NaN"),
        (1.0, {"threshold": -0.5}, ValueError, "threshold"),
        (1.0, {"threshold": np.nan}, ValueError, "threshold"),
        (1.0, {"layer": "nope"}, KeyError, "layer 'nope' not found"),
    ],
)
@pytest.mark.parametrize("sparse", [True, False])
def test_binarize_errors_leave_input(value, kwargs, error, match, sparse):
    x = COUNTS.copy()
    x[1, 1] = value
    mdata = md.MuData({"rna": _rna(["GA"]), "atac": ad.AnnData(sp.csr_matrix(x) if sparse else x)})
    snap = snapshot(mdata)
    with pytest.raises(error, match=match):
        grids.pp.binarize(mdata, key_added=None, **kwargs)
    assert_unchanged(mdata, snap)


# ---------------------------------------------------------------- select_features


def test_select_features_marks_exact_numbers():
    mdata = make_mdata()
    grids.pp.select_features(mdata, n_top_genes=5, n_top_peaks=2, min_cells_peaks=5)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    assert rna.var["highly_variable"].sum() == 5
    expected = sc.pp.highly_variable_genes(
        rna.copy(), n_top_genes=5, flavor="seurat", inplace=False
    )["highly_variable"]
    np.testing.assert_array_equal(rna.var["highly_variable"].to_numpy(), expected.to_numpy())
    top5 = rna.var["dispersions_norm"].nlargest(5).index
    assert set(rna.var_names[rna.var["highly_variable"]]) == set(top5)
    assert rna.uns["hvg"] == {"flavor": "seurat"}
    # frequencies 0.02 0.1 0.3 0.5 0.6 0.95 0 0.2: p(1-p) is largest for 0.5 then 0.6
    assert atac.var["n_cells"].tolist() == [2, 10, 30, 50, 60, 95, 0, 20]
    assert atac.var["highly_variable"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    np.testing.assert_allclose(atac.var["frac_cells"], atac.var["n_cells"] / 100)


def test_select_features_min_cells_only_and_layers():
    mdata = make_mdata()
    atac = mdata.mod["atac"]
    atac.layers["counts"] = atac.X.copy()
    atac.X = None
    mdata.mod["rna"].layers["log"] = mdata.mod["rna"].X.copy()
    grids.pp.select_features(
        mdata, n_top_genes=3, min_cells_peaks=20, rna_layer="log", atac_layer="counts"
    )
    assert atac.var["highly_variable"].tolist() == [0, 0, 1, 1, 1, 1, 0, 1]
    assert mdata.mod["rna"].var["highly_variable"].sum() == 3


def test_select_features_cell_ranger_and_default_cutoffs():
    mdata = make_mdata()
    grids.pp.select_features(mdata, flavor="cell_ranger", n_top_genes=4)
    assert mdata.mod["rna"].var["highly_variable"].sum() == 4
    mdata = make_mdata()
    grids.pp.select_features(mdata)  # scanpy's default cutoffs, all peaks in >= 10 cells
    expected = sc.pp.highly_variable_genes(mdata.mod["rna"].copy(), inplace=False)
    np.testing.assert_array_equal(
        mdata.mod["rna"].var["highly_variable"], expected["highly_variable"]
    )
    assert mdata.mod["atac"].var["highly_variable"].sum() == 6


def test_select_features_subset_keeps_pairing():
    mdata = make_mdata()
    snap = snapshot(mdata)
    out = grids.pp.select_features(
        mdata, n_top_genes=4, n_top_peaks=3, min_cells_peaks=5, subset=True, copy=True
    )
    assert_unchanged(mdata, snap)
    assert out.mod["rna"].shape == (100, 4) and out.mod["atac"].shape == (100, 3)
    assert out.shape == (100, 7)
    assert out.mod["atac"].var_names.tolist() == [
        "chr1:2000-2500",
        "chr1:3000-3500",
        "chr1:4000-4500",
    ]
    np.testing.assert_array_equal(out.mod["rna"].obs_names, out.mod["atac"].obs_names)
    grids.pp.check_multiome(out, binary=False)
    # in place
    grids.pp.select_features(mdata, n_top_genes=4, n_top_peaks=3, min_cells_peaks=5, subset=True)
    assert mdata.shape == (100, 7) and mdata.mod["atac"].n_vars == 3


def test_select_features_pbmc():
    mdata = grids.datasets.pbmc10k_tiles()
    grids.pp.binarize(mdata)
    sc.pp.log1p(mdata.mod["rna"])
    grids.pp.select_features(mdata, n_top_genes=2, n_top_peaks=100)
    atac = mdata.mod["atac"]
    assert atac.var["highly_variable"].sum() == 100
    assert mdata.mod["rna"].var["highly_variable"].sum() == 2
    # every frequency is < 0.5, so the top peaks are the most frequently open ones
    top = atac.var["frac_cells"].nlargest(100).index
    assert atac.var.loc[top, "highly_variable"].all()


def test_select_features_warns_on_counts():
    mdata = make_mdata()
    mdata.mod["rna"].X = sp.csr_matrix(np.expm1(mdata.mod["rna"].X.toarray()).round())
    with pytest.warns(UserWarning, match="raw counts"):
        grids.pp.select_features(mdata, n_top_genes=3)


def _unpaired():
    mdata = make_mdata()
    mdata.mod["atac"].obs_names = [f"other{i}" for i in range(100)]
    return mdata


def _with(mod, fn):
    def build():
        mdata = make_mdata()
        fn(mdata.mod[mod])
        return mdata

    return build


def _set_rna_value(v):
    def fn(a):
        x = a.X.toarray()
        x[0, 0] = v
        a.X = sp.csr_matrix(x)

    return fn


@pytest.mark.parametrize(
    ("build", "kwargs", "error", "match"),
    [
        (_unpaired, {}, ValueError, "same cells"),
        (make_mdata, {"rna": "expr"}, KeyError, "'expr' not found"),
        (make_mdata, {"flavor": "pearson"}, ValueError, "flavor must be one of"),
        (make_mdata, {"n_top_genes": 0}, ValueError, "n_top_genes must be >= 1"),
        (make_mdata, {"n_top_peaks": 2.5}, TypeError, "n_top_peaks must be an integer"),
        (make_mdata, {"min_cells_peaks": 101}, ValueError, "no peak.*open in >= 101"),
        (make_mdata, {"atac_layer": "nope"}, KeyError, "layer 'nope'"),
        (_with("rna", _set_rna_value(-1.0)), {}, ValueError, "negative"),
        (_with("rna", _set_rna_value(np.nan)), {}, ValueError, "NaN"),
        (_with("rna", _set_rna_value(500.0)), {}, ValueError, "too large for log"),
        (_with("atac", lambda a: a.X.data.__setitem__(0, -2)), {}, ValueError, "negative"),
    ],
)
def test_select_features_errors_leave_input(build, kwargs, error, match):
    mdata = build()
    snap = snapshot(mdata)
    with pytest.raises(error, match=match):
        grids.pp.select_features(mdata, subset=True, **kwargs)
    assert_unchanged(mdata, snap)


@pytest.mark.skipif(HAS_SKMISC, reason="scikit-misc is installed")
def test_select_features_seurat_v3_needs_skmisc():
    mdata = make_mdata()
    snap = snapshot(mdata)
    with pytest.raises(ImportError, match="scikit-misc"):
        grids.pp.select_features(mdata, flavor="seurat_v3", n_top_genes=3)
    assert_unchanged(mdata, snap)


@pytest.mark.skipif(not HAS_SKMISC, reason="scikit-misc is not installed")
def test_select_features_seurat_v3_needs_counts():
    mdata = make_mdata()
    snap = snapshot(mdata)
    with pytest.raises(ValueError, match="needs raw counts"):
        grids.pp.select_features(mdata, flavor="seurat_v3", n_top_genes=3)
    assert_unchanged(mdata, snap)
    mdata.mod["rna"].layers["counts"] = sp.csr_matrix(np.expm1(mdata.mod["rna"].X.toarray()))
    mdata.mod["rna"].layers["counts"].data = mdata.mod["rna"].layers["counts"].data.round()
    grids.pp.select_features(mdata, flavor="seurat_v3", n_top_genes=3, rna_layer="counts")
    assert mdata.mod["rna"].var["highly_variable"].sum() == 3


# ---------------------------------------------------------------- check_multiome


def _binary_mdata():
    mdata = make_mdata()
    grids.pp.binarize(mdata)
    return mdata


def test_check_multiome_passes():
    mdata = _binary_mdata()
    snap = snapshot(mdata)
    assert grids.pp.check_multiome(mdata) is None
    assert grids.pp.check_multiome(make_mdata(), binary=False) is None
    assert_unchanged(mdata, snap)


def _drop_atac(m):
    del m.mod["atac"]


def _mismatch(m):
    m.mod["atac"].obs_names = [f"x{i}" for i in range(m.n_obs)]


def _atac_value(v):
    def fn(m):
        m.mod["atac"].X.data[0] = v

    return fn


def _rna_inf(m):
    m.mod["rna"].X.data[0] = np.inf


@pytest.mark.parametrize(
    ("mutate", "kwargs", "error", "match"),
    [
        (_drop_atac, {}, KeyError, "atac modality 'atac' not found"),
        (lambda m: None, {"rna": "expr"}, KeyError, "'expr' not found"),
        (_mismatch, {}, ValueError, "same cells"),
        (_atac_value(2.0), {}, ValueError, "must be binary"),
        (_atac_value(-1.0), {"binary": False}, ValueError, "negative"),
        (_atac_value(np.nan), {"binary": False}, ValueError, "NaN"),
        (_rna_inf, {}, ValueError, "rna modality 'rna'.*NaN or infinite"),
        (lambda m: None, {"layer": "counts"}, KeyError, "layer 'counts' not found"),
    ],
)
def test_check_multiome_errors_leave_input(mutate, kwargs, error, match):
    mdata = _binary_mdata()
    mutate(mdata)
    snap = snapshot(mdata)
    with pytest.raises(error, match=match):
        grids.pp.check_multiome(mdata, **kwargs)
    assert_unchanged(mdata, snap)


def test_check_multiome_type_and_layers():
    with pytest.raises(TypeError, match="MuData"):
        grids.pp.check_multiome(ad.AnnData(np.zeros((2, 2))))
    mdata = make_mdata()
    mdata.mod["atac"].layers["bin"] = (mdata.mod["atac"].X > 0).astype(np.float32)
    grids.pp.check_multiome(mdata, layer="bin")
    with pytest.raises(ValueError, match="must be binary"):
        grids.pp.check_multiome(mdata)
