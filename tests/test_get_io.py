"""grids.get (tidy tables of stored results) and grids.io.write_links (browser exports)."""

import mudata
import numpy as np
import pandas as pd
import pytest

import grids_sc as grids
from grids_sc._genome import gene_anchors, tss_distance

GENE, SET, L = "gene3", {"pair": ["gene3", "gene1"]}, 4
KEY, SET_KEY, SAL_KEY = "grids_gene3_all", "grids_pair_all", "saliency_gene3_all"


@pytest.fixture(scope="module")
def explained(sim_fitted):
    """A fitted simulation with a GRIDS run (2 restarts), a gene-set run and a baseline."""
    m = sim_fitted.copy()
    kw = {"window": 250_000, "n_steps": 20, "progress": False}
    grids.tl.explain(m, GENE, L=L, restarts=2, **kw)
    grids.tl.explain(m, SET, L=L, **kw)
    grids.tl.attribute(m, GENE, "saliency", L=L, window=250_000, progress=False)
    return m


@pytest.fixture
def mdata(explained):
    return explained.copy()


def _tss(m, gene):
    return int(m["rna"].var.loc[gene, "tss"])


# ---- explain_df / links ------------------------------------------------------------------------


def test_explain_df_matches_the_stored_record(mdata):
    df = grids.get.explain_df(mdata, KEY)
    rec = mdata.uns["grids"]["explain"][KEY]
    pp, var = rec["per_peak"], mdata["atac"].var
    assert list(df.columns[:5]) == ["gene", "gene_set", "group", "method", "key"]
    assert len(df) == L and (df["gene"] == GENE).all() and (df["gene_set"] == GENE).all()
    assert (df["group"] == "all").all() and (df["method"] == "grids").all()
    assert df["peak"].tolist() == list(rec["selected"]) == list(pp["peak"])
    assert df["rank"].tolist() == list(range(1, L + 1))
    np.testing.assert_allclose(df["alone"], pp["alone"])
    np.testing.assert_allclose(df["restored"], pp["restored"])
    np.testing.assert_allclose(df["frequency"], pp["frequency"])
    np.testing.assert_allclose(df["score"], var.loc[df["peak"], f"{KEY}_score"])
    for col in ("chrom", "start", "end"):
        assert df[col].tolist() == var.loc[df["peak"], col].tolist()
    # the selected peaks lie in the window, so their distance to the TSS is known and < 250 kb
    assert (df["tss"] == _tss(mdata, GENE)).all() and (df["gene_strand"] == "-").all()
    assert df["tss_distance"].notna().all() and (df["tss_distance"].abs() < 300_000).all()


def test_tss_distance_is_signed_along_the_strand():
    var = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chr2"], "start": [1000, 5000, 0], "end": [3000, 9001, 10]},
        index=["plus", "minus", "nostrand"],
    ).assign(strand=["+", "-", None])
    anchors = gene_anchors(var, ["plus", "minus", "nostrand"])
    assert anchors["tss"].tolist()[:2] == [1000.0, 9001.0] and np.isnan(anchors["tss"].iloc[2])
    # peaks [1100, 1200) downstream of the + TSS; [800, 900) upstream (last base 899); overlap
    starts, ends = np.array([1100, 800, 990]), np.array([1200, 900, 1010])
    plus = anchors.loc[["plus"] * 3]
    assert tss_distance(np.array(["chr1"] * 3), starts, ends, plus).tolist() == [100, -101, 0]
    minus = anchors.loc[["minus"] * 2]
    d = tss_distance(np.array(["chr1"] * 2), np.array([9101, 8000]), np.array([9200, 8100]), minus)
    assert d.tolist() == [-100, 902]  # beyond the - TSS is upstream, below it downstream
    other = tss_distance(np.array(["chr2"]), np.array([100]), np.array([200]), plus.iloc[:1])
    assert np.isnan(other).all()
    assert gene_anchors(var.drop(columns="start"), ["plus"]) is None


def test_gene_sets_have_a_row_per_gene(mdata):
    df = grids.get.explain_df(mdata, SET_KEY)
    assert len(df) == 2 * L and (df["gene_set"] == "pair").all()
    assert sorted(set(df["gene"])) == ["gene1", "gene3"]
    for gene, sub in df.groupby("gene"):
        assert sub["rank"].tolist() == list(range(1, L + 1))
        assert (sub["tss"] == _tss(mdata, gene)).all()
    # the per-peak effects are those of the set's objective, the same for both genes
    by_gene = {g: s.set_index("peak")["alone"] for g, s in df.groupby("gene")}
    pd.testing.assert_series_equal(by_gene["gene1"], by_gene["gene3"], check_names=False)


def test_links_concatenates_and_survives_h5mu(mdata, tmp_path):
    table = grids.get.links(mdata)
    assert table["key"].unique().tolist() == [KEY, SET_KEY, SAL_KEY]
    assert len(table) == L + 2 * L + L
    sal = table[table["key"] == SAL_KEY]
    assert (sal["method"] == "saliency").all() and "frequency" in table.columns
    assert sal["frequency"].isna().all()  # attribute stores no restart frequency
    only = grids.get.links(mdata, [SAL_KEY, KEY])
    assert only["key"].unique().tolist() == [SAL_KEY, KEY]
    mdata.write(tmp_path / "m.h5mu")
    back = grids.get.links(mudata.read_h5mu(tmp_path / "m.h5mu"))
    pd.testing.assert_frame_equal(back, table)


def test_getters_name_the_problem(mdata, sim_small):
    with pytest.raises(KeyError, match="not in mdata.uns"):
        grids.get.explain_df(mdata, "grids_nope_all")
    with pytest.raises(KeyError, match="grids_nope"):
        grids.get.links(mdata, ["grids_nope", KEY])
    with pytest.raises(ValueError, match="no results"):
        grids.get.links(sim_small)
    first = mdata.uns["grids"]["explain"][KEY]["selected"][0]
    mdata.mod["atac"] = mdata["atac"][:, mdata["atac"].var_names != first].copy()
    with pytest.raises(KeyError, match="subset"):
        grids.get.explain_df(mdata, KEY)


def test_without_gene_coordinates_there_are_no_tss_columns(mdata):
    mdata["rna"].var = mdata["rna"].var.drop(columns=["chrom", "start", "end", "strand", "tss"])
    df = grids.get.explain_df(mdata, KEY)
    assert not {"tss", "tss_distance", "gene_chrom"} & set(df.columns) and len(df) == L


# ---- write_links -------------------------------------------------------------------------------


def _data_lines(path):
    lines = path.read_text().splitlines()
    return lines, [line.split("\t") for line in lines if not line.startswith(("track", "#"))]


def test_bedpe_anchors_peaks_to_the_tss(mdata, tmp_path):
    path = tmp_path / "links.bedpe"
    grids.io.write_links(mdata, path)
    lines, rows = _data_lines(path)
    assert lines[0].startswith("track name=") and lines[1].startswith("#chrom1\tstart1")
    table = grids.get.links(mdata)
    assert len(rows) == len(table) and all(len(r) == 13 for r in rows)
    got = pd.DataFrame(rows, columns=lines[1][1:].split("\t"))
    assert got["chrom1"].tolist() == table["chrom"].tolist()
    assert got["start1"].astype(int).tolist() == table["start"].tolist()
    assert got["end1"].astype(int).tolist() == table["end"].tolist()
    assert got["chrom2"].tolist() == table["gene_chrom"].tolist()
    assert got["start2"].astype(int).tolist() == table["tss"].tolist()
    assert (got["end2"].astype(int) - got["start2"].astype(int) == 1).all()
    assert got["strand2"].tolist() == table["gene_strand"].tolist()
    assert (got["strand1"] == ".").all()
    score = got["score"].astype(int)
    assert score.between(0, 1000).all() and score.max() == 1000
    np.testing.assert_allclose(got["value"].astype(float), table["alone"], rtol=1e-5)
    # the score is |value| scaled to the file's largest
    expect = np.rint(1000 * table["alone"].abs() / table["alone"].abs().max())
    np.testing.assert_array_equal(score, expect.astype(int))
    assert got["name"].iloc[0] == f"{table['gene'][0]}|all|{table['peak'][0]}"
    # attribute results have no restart frequency: their value is written as 0, still a number
    grids.io.write_links(mdata, path, value="frequency")
    _, rows = _data_lines(path)
    freq = np.array([float(r[10]) for r in rows])
    np.testing.assert_allclose(freq, table["frequency"].fillna(0), rtol=1e-5)


def test_interact_follows_the_ucsc_fields(mdata, tmp_path):
    path = tmp_path / "links.interact"
    grids.io.write_links(mdata, path, keys=[KEY, SAL_KEY], format="interact", value="restored")
    lines, rows = _data_lines(path)
    assert lines[0].startswith("track type=interact ") and "interactDirectional=true" in lines[0]
    assert sum(line.startswith("track") for line in lines) == 1
    cols = grids.io._links.INTERACT_COLUMNS
    got = pd.DataFrame(rows, columns=list(cols))
    table = grids.get.links(mdata, [KEY, SAL_KEY])
    assert len(got) == len(table) and all(len(r) == 18 for r in rows)
    ints = ["chromStart", "chromEnd", "score", "sourceStart", "sourceEnd", "targetStart"]
    got[ints + ["targetEnd"]] = got[ints + ["targetEnd"]].astype(int)
    assert (got["sourceChrom"] == table["chrom"]).all() and (got["chrom"] == table["chrom"]).all()
    assert (got["sourceStart"] == table["start"]).all() and (got["sourceEnd"] == table["end"]).all()
    assert (got["targetStart"] == table["tss"]).all()
    assert (got["targetEnd"] == got["targetStart"] + 1).all()
    assert (got["targetName"] == table["gene"]).all() and (got["sourceName"] == table["peak"]).all()
    assert (got["chromStart"] == got[["sourceStart", "targetStart"]].min(axis=1)).all()
    assert (got["chromEnd"] == got[["sourceEnd", "targetEnd"]].max(axis=1)).all()
    assert got["score"].between(0, 1000).all() and got["score"].max() == 1000
    np.testing.assert_allclose(got["value"].astype(float), table["restored"], rtol=1e-5)
    assert set(got["exp"]) == {KEY, SAL_KEY}
    assert set(got["color"]) <= set(grids.io._links.COLORS)
    assert (got["targetStrand"] == "-").all() and (got["sourceStrand"] == ".").all()


def test_interact_writes_trans_links_on_both_chromosomes(mdata, tmp_path):
    mdata["rna"].var["chrom"] = mdata["rna"].var["chrom"].astype(str).replace("chr1", "chr2")
    path = tmp_path / "trans.interact"
    grids.io.write_links(mdata, path, keys=KEY, format="interact")
    _, rows = _data_lines(path)
    got = pd.DataFrame(rows, columns=list(grids.io._links.INTERACT_COLUMNS))
    assert len(got) == 2 * L and got["chrom"].tolist() == ["chr1", "chr2"] * L
    peak_rows, tss_rows = got.iloc[::2], got.iloc[1::2]
    assert (peak_rows["chromStart"] == peak_rows["sourceStart"]).all()
    assert (tss_rows["chromStart"] == tss_rows["targetStart"]).all()
    assert (tss_rows["targetChrom"] == "chr2").all()


def test_tsv_is_the_links_table(mdata, tmp_path):
    path = tmp_path / "links.tsv"
    grids.io.write_links(mdata, path, format="tsv")
    back = pd.read_csv(path, sep="\t")
    table = grids.get.links(mdata)
    assert back.columns.tolist() == table.columns.tolist() and len(back) == len(table)
    assert back["peak"].tolist() == table["peak"].tolist()
    assert back["tss"].tolist() == table["tss"].astype(int).tolist()
    np.testing.assert_allclose(back["alone"], table["alone"])


def test_browser_formats_need_a_tss(mdata, tmp_path):
    var = mdata["rna"].var
    var["tss"] = var["tss"].astype(float)
    var.loc["gene1", ["strand", "tss"]] = [None, np.nan]
    path = tmp_path / "l.bedpe"
    with pytest.warns(UserWarning, match="without a TSS.*gene1"):
        grids.io.write_links(mdata, path, keys=SET_KEY)
    _, rows = _data_lines(path)
    assert len(rows) == L and {r[6].split("|")[0] for r in rows} == {"gene3"}
    var.loc["gene3", ["strand", "tss"]] = [None, np.nan]
    with pytest.raises(ValueError, match="none of the genes"):
        grids.io.write_links(mdata, path, keys=SET_KEY, format="interact")
    mdata["rna"].var = var.drop(columns=["chrom", "start", "end", "strand", "tss"])
    with pytest.raises(ValueError, match="annotate_genes"):
        grids.io.write_links(mdata, path, format="interact")
    grids.io.write_links(mdata, tmp_path / "ok.tsv", format="tsv")  # the table needs no TSS
    with pytest.raises(ValueError, match="format"):
        grids.io.write_links(mdata, path, format="bed")
    with pytest.raises(ValueError, match="value"):
        grids.io.write_links(mdata, path, value="delta")


def test_peak_index_windows_equal_a_pass_over_every_peak():
    """The plan's window masks (peaks sorted per chromosome, binary search) are those of a
    direct overlap test of every peak, for peaks of any length and several genes at once.
    """
    from grids_sc._genome import PeakIndex

    rng = np.random.default_rng(0)
    n = 3000
    chrom = rng.choice(["chr1", "chr2", "chrX"], n)
    start = rng.integers(0, 10**6, n)
    end = start + rng.integers(0, 5000, n)
    index = PeakIndex(pd.DataFrame({"chrom": chrom, "start": start, "end": end}))
    for _ in range(50):
        genes = pd.DataFrame({"chrom": rng.choice(["chr1", "chr2", "chr3"], 2),
                              "start": rng.integers(0, 10**6, 2)})  # fmt: skip
        genes["end"] = genes["start"] + rng.integers(0, 20_000, 2)
        w = int(rng.integers(0, 100_000))
        ref = np.zeros(n, dtype=bool)
        for c, s, e in zip(genes["chrom"], genes["start"], genes["end"]):
            ref |= (chrom == c) & (end >= s - w) & (start <= e + w)
        np.testing.assert_array_equal(index.window_mask(genes, w), ref)
