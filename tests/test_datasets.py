import numpy as np
import pytest

import grids_sc as grids


def test_pbmc_tiles_shipped():
    m = grids.datasets.pbmc10k_tiles()
    assert m.n_obs == 9460
    assert list(m["rna"].var_names) == ["CCR7", "ZEB2", "HLA-DQB1"]
    assert m["atac"].n_vars == 3325
    assert {"chrom", "start", "end", "window_gene"} <= set(m["atac"].var.columns)
    assert m.obs["celltype"].value_counts()["CD14+ Monocytes"] == 2597
    # gene bounds added for windows: each gene lies inside its own tile window
    for gene in m["rna"].var_names:
        tiles = m["atac"].var[m["atac"].var["window_gene"] == gene]
        g = m["rna"].var.loc[gene]
        assert (tiles["chrom"] == g["chrom"]).all()
        assert tiles["start"].min() < g["start"] < g["end"] < tiles["end"].max()
    assert "attribution" in m.uns


def test_pchic_support_tidy():
    p = grids.datasets.pchic_support()
    assert p.shape[0] == 247436
    assert p["pchic_significant"].dtype == bool
    hla = p[(p.gene == "HLA-DQB1") & (p.celltype == "CD14+ Monocytes")]
    assert len(hla) == 1019 and hla["pchic_significant"].sum() == 106
    # tiles are named like the ATAC var_names of the PBMC data
    atac = set(grids.datasets.pbmc10k_tiles()["atac"].var_names)
    assert set(hla["tile"]) <= atac


def _shared_or_skip(fn):
    try:
        return fn()
    except grids.datasets.SharedDataNotFound as err:
        pytest.skip(str(err))


def test_shared_loaders():
    bounds = _shared_or_skip(grids.datasets.gene_bounds)
    assert {"chrom", "start", "end", "gene", "strand"} <= set(bounds.columns)
    assert len(bounds) == 20667
    images, labels = _shared_or_skip(grids.datasets.mnist)
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    a549 = _shared_or_skip(grids.datasets.a549_scicar)
    assert a549["atac"].n_vars == 52761 and "dex_time" in a549.obs


def test_read_shared_unknown_name():
    with pytest.raises(KeyError, match="unknown shared data set"):
        grids.datasets.read_shared("nope")


def test_shared_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDS_SHARED_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from grids_sc.datasets import _shared

    monkeypatch.setattr(_shared, "_candidates", lambda: [tmp_path])
    with pytest.raises(grids.datasets.SharedDataNotFound):
        grids.datasets.gene_bounds()
