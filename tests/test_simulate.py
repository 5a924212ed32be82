"""Tests of the multiome simulator and its ground truth (grids.datasets)."""

from __future__ import annotations

import re

import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import grids_sc as grids
from grids_sc.datasets import synthetic_multiome, true_expression

SMALL = {"n_cells": 600, "n_peaks": 3000, "n_genes": 40}
REDUNDANT = {
    "n_single": 0,
    "n_or": 3,
    "n_and": 0,
    "n_decoys": 3,
    "cre_open": (0.65, 0.75),
    "cre_off": 0.0,
}


@pytest.fixture(scope="module")
def sim() -> mudata.MuData:
    return synthetic_multiome(**SMALL, seed=0)


@pytest.fixture(scope="module")
def sim_redundant() -> mudata.MuData:
    return synthetic_multiome(**SMALL, **REDUNDANT, seed=1)


@pytest.fixture(scope="module")
def truth(sim) -> np.ndarray:
    return true_expression(sim)


def units_frame(mdata: mudata.MuData) -> pd.DataFrame:
    u = mdata.uns["simulation"]["units"]
    return pd.DataFrame({k: np.asarray(v) for k, v in u.items()})


def eta_of(y: np.ndarray) -> np.ndarray:
    """Log rate from the ``log1p(rate)`` scale of true_expression."""
    return np.log(np.expm1(y))


def open_of(mdata: mudata.MuData, peak: str) -> np.ndarray:
    atac = mdata["atac"]
    j = atac.var_names.get_loc(peak)
    return atac.X[:, j].toarray().ravel() > 0


def gene_col(mdata: mudata.MuData, gene: str) -> int:
    return mdata["rna"].var_names.get_loc(gene)


# --------------------------------------------------------------------------- structure


def test_structure_and_annotations(sim):
    rna, atac = sim["rna"], sim["atac"]
    assert rna.shape == (600, 40) and atac.shape == (600, 3000)
    assert list(rna.obs_names) == list(atac.obs_names)
    assert "celltype" in sim.obs and "celltype" in rna.obs and "celltype" in atac.obs
    assert isinstance(sim.obs["celltype"].dtype, pd.CategoricalDtype)
    assert (sim.obs["celltype"].to_numpy() == atac.obs["celltype"].to_numpy()).all()
    cats = list(sim.obs["celltype"].cat.categories)
    assert cats == [f"type{i}" for i in range(5)]
    # no tiny cell type: at least 40% of the uniform share each
    share = sim.obs["celltype"].value_counts(normalize=True)
    assert share.min() > 0.4 / 5

    # peaks: names chrom:start-end, 500 bp, sorted within chromosomes, no overlap
    var = atac.var
    assert var["start"].dtype == np.int64 and var["end"].dtype == np.int64
    assert ((var["end"] - var["start"]) == 500).all()
    names = var["chrom"] + ":" + var["start"].astype(str) + "-" + var["end"].astype(str)
    assert (names.to_numpy() == atac.var_names.to_numpy()).all()
    assert re.fullmatch(r"chr\d+:\d+-\d+", atac.var_names[0])
    for _, g in var.groupby("chrom", observed=True):
        assert (g["start"].to_numpy()[1:] >= g["end"].to_numpy()[:-1]).all()
    # default n_chromosomes = n_peaks // 500
    assert var["chrom"].nunique() == 6

    # genes: TSS at start (+) or end (-), inside the peak-covered range of the chromosome
    gv = rna.var
    assert set(gv["strand"]) <= {"+", "-"}
    tss = np.where(gv["strand"] == "+", gv["start"], gv["end"])
    assert (gv["tss"].to_numpy() == tss).all()
    assert (gv["end"] > gv["start"]).all()
    for g, row in gv.iterrows():
        pk = var[var["chrom"] == row["chrom"]]
        assert pk["start"].min() <= row["tss"] <= pk["end"].max(), g


def test_matrices_sparse_binary_and_normalised(sim):
    rna, atac = sim["rna"], sim["atac"]
    x = atac.X
    assert sp.issparse(x) and x.format == "csr" and x.dtype == np.float32
    assert np.all(x.data == 1.0)
    density = x.nnz / np.prod(x.shape)
    assert 0.03 < density < 0.15
    assert (atac.obs["n_peaks_open"].to_numpy() == np.diff(x.indptr)).all()

    counts = rna.layers["counts"]
    assert counts.format == "csr" and counts.dtype == np.float32
    assert np.all(counts.data == np.round(counts.data)) and counts.data.min() >= 1
    assert rna.X.format == "csr" and rna.X.dtype == np.float32
    lib = rna.obs["n_counts_rna"].to_numpy()
    expected = np.log1p(counts.toarray() / lib[:, None] * 1e4)
    np.testing.assert_allclose(rna.X.toarray(), expected, rtol=1e-6, atol=1e-6)
    assert 3000 < np.median(lib) < 8000


def test_background_and_planted_accessibility(sim, sim_redundant):
    open_rate = np.asarray(sim["atac"].X.mean(axis=0)).ravel()
    logic = sim["atac"].var["cre_logic"].to_numpy()
    assert 0.02 < open_rate[logic == ""].mean() < 0.06
    assert 0.4 < open_rate[logic != ""].mean() < 0.75

    # redundant regime: OR peaks open in ~70% of cells, decoys in ~90%
    r_rate = np.asarray(sim_redundant["atac"].X.mean(axis=0)).ravel()
    r_logic = sim_redundant["atac"].var["cre_logic"].to_numpy()
    assert set(r_logic) == {"", "or", "decoy"}
    assert 0.62 < r_rate[r_logic == "or"].mean() < 0.76
    assert 0.84 < r_rate[r_logic == "decoy"].mean() < 0.93


# --------------------------------------------------------------------------- determinism


def test_same_seed_identical_and_different_seed_differs(sim):
    again = synthetic_multiome(**SMALL, seed=0)
    for mod in ("rna", "atac"):
        a, b = sim[mod], again[mod]
        assert (a.X != b.X).nnz == 0
        pd.testing.assert_frame_equal(a.var, b.var)
        pd.testing.assert_frame_equal(a.obs, b.obs)
    assert (sim["rna"].layers["counts"] != again["rna"].layers["counts"]).nnz == 0
    pd.testing.assert_frame_equal(units_frame(sim), units_frame(again))
    np.testing.assert_array_equal(true_expression(sim), true_expression(again))

    other = synthetic_multiome(**SMALL, seed=1)
    assert (sim["atac"].X != other["atac"].X).nnz > 0
    assert not units_frame(sim)["peak_a"].equals(units_frame(other)["peak_a"])


# --------------------------------------------------------------------------- planted truth


def test_planted_peaks_within_window_and_unique(sim):
    window = sim.uns["simulation"]["params"]["window"]
    u = units_frame(sim)
    atac_var, rna_var = sim["atac"].var, sim["rna"].var
    peaks = np.concatenate([u["peak_a"], u.loc[u["peak_b"] != "", "peak_b"]])
    assert len(peaks) == len(set(peaks)), "a peak is planted for two units"
    for _, row in u.iterrows():
        g = rna_var.loc[row["gene"]]
        for p in (row["peak_a"], row["peak_b"]):
            if p == "":
                continue
            pk = atac_var.loc[p]
            assert pk["chrom"] == g["chrom"]
            assert pk["start"] >= g["tss"] - window and pk["end"] <= g["tss"] + window


def test_default_units_per_gene_and_effects(sim):
    u = units_frame(sim)
    counts = u.groupby("gene")["logic"].value_counts().unstack(fill_value=0)
    assert len(counts) == 40
    assert (counts["single"] == 2).all() and (counts["or"] == 1).all()
    assert (counts["and"] == 1).all() and "decoy" not in counts
    assert ((u["peak_b"] != "") == u["logic"].isin(["or", "and"])).all()
    assert u["effect"].between(0.5, 1.0).all()
    assert (sim["rna"].var["n_cres"] == 6).all() and (sim["rna"].var["n_units"] == 4).all()
    np.testing.assert_array_equal(u["unit"], np.arange(len(u)))


def test_var_and_uns_truth_agree(sim, sim_redundant):
    for m in (sim, sim_redundant):
        u = units_frame(m)
        var = m["atac"].var
        planted = var[var["cre_unit"] >= 0]
        assert len(planted) == (u["peak_a"] != "").sum() + (u["peak_b"] != "").sum()
        for _, row in u.iterrows():
            for p in (row["peak_a"], row["peak_b"]):
                if p:
                    v = var.loc[p]
                    assert v["cre_unit"] == row["unit"] and v["cre_gene"] == row["gene"]
                    assert v["cre_logic"] == row["logic"] and v["cre_effect"] == row["effect"]
        rest = var[var["cre_unit"] < 0]
        assert (rest["cre_gene"] == "").all() and (rest["cre_logic"] == "").all()
        assert (rest["cre_effect"] == 0).all()
        n_peaks = (u["peak_a"] != "").astype(int) + (u["peak_b"] != "").astype(int)
        n_cres = n_peaks.groupby(u["gene"]).sum()
        rv = m["rna"].var
        np.testing.assert_array_equal(rv.loc[n_cres.index, "n_cres"], n_cres.to_numpy())
        s = m.uns["simulation"]
        np.testing.assert_array_equal(np.asarray(s["genes"]), rv.index.to_numpy())
        np.testing.assert_array_equal(np.asarray(s["intercept"]), rv["intercept"].to_numpy())
        assert np.asarray(s["celltype_effect"]).shape == (5, len(rv))
        assert list(np.asarray(s["celltypes"])) == list(m.obs["celltype"].cat.categories)
        assert s["params"]["seed"] in (0, 1) and s["params"]["n_genes"] == 40


def test_redundant_regime_units(sim_redundant):
    u = units_frame(sim_redundant)
    counts = u.groupby("gene")["logic"].value_counts().unstack(fill_value=0)
    assert (counts["or"] == 3).all() and (counts["decoy"] == 3).all()
    assert (u.loc[u["logic"] == "decoy", "effect"] == 0.15).all()


def test_too_few_free_peaks_plants_what_fits():
    m = synthetic_multiome(300, 400, 30, window=20_000, n_chromosomes=1, seed=4)
    rv = m["rna"].var
    assert (rv["n_cres"] < 6).any() and (rv["n_cres"] <= 6).all()
    u = units_frame(m)
    assert len(u) == rv["n_units"].sum()
    assert (m["atac"].var["cre_unit"] >= 0).sum() == rv["n_cres"].sum()
    # singles are planted first
    first = u.groupby("gene")["logic"].first()
    assert (first == "single").all()
    y = true_expression(m)
    assert y.shape == (300, 30) and np.isfinite(y).all()


# --------------------------------------------------------------------------- true expression


def test_truth_is_the_generative_mean(sim, truth):
    """Mean normalised counts per gene match the mean true rate within NB sampling error."""
    rna = sim["rna"]
    lib = rna.obs["n_counts_rna"].to_numpy()
    counts = rna.layers["counts"].toarray()
    rate = np.expm1(truth)
    norm = counts / lib[:, None] * 1e4
    mu = rate * lib[:, None] / 1e4
    var = (mu + 0.1 * mu**2) * (1e4 / lib[:, None]) ** 2
    z = (norm.mean(0) - rate.mean(0)) / (np.sqrt(var.sum(0)) / len(lib))
    assert np.abs(z).max() < 5  # measured: max |z| 1.6-3.4 over seeds 0-5


def test_truth_correlates_with_observed(sim, truth):
    x = sim["rna"].X.toarray()
    r = np.array([np.corrcoef(x[:, g], truth[:, g])[0, 1] for g in range(x.shape[1])])
    assert np.median(r) > 0.6 and r.min() > 0.15  # measured: median 0.73-0.79, min >= 0.24
    ct = sim.obs["celltype"].to_numpy()
    types = np.unique(ct)
    mx = np.array([x[ct == t].mean(0) for t in types])
    my = np.array([truth[ct == t].mean(0) for t in types])
    assert np.corrcoef(mx.ravel(), my.ravel())[0, 1] > 0.99  # measured >= 0.997


def test_truth_formula(sim, truth):
    """eta = intercept + celltype effect + sum of unit activities, checked from scratch."""
    s = sim.uns["simulation"]
    u = units_frame(sim)
    ct = sim.obs["celltype"].cat.codes.to_numpy()
    eta = np.asarray(s["intercept"])[None, :] + np.asarray(s["celltype_effect"])[ct]
    for _, row in u.iterrows():
        xa = open_of(sim, row["peak_a"]).astype(float)
        xb = open_of(sim, row["peak_b"]).astype(float) if row["peak_b"] else None
        if row["logic"] in ("single", "decoy"):
            act = xa
        elif row["logic"] == "or":
            act = np.maximum(xa, xb)
        else:
            act = xa * xb
        eta[:, gene_col(sim, row["gene"])] += row["effect"] * act
    np.testing.assert_allclose(truth, np.logaddexp(0, eta), rtol=1e-12, atol=1e-12)


def test_single_knockout_drops_eta_by_w_where_open(sim, truth):
    u = units_frame(sim)
    base = eta_of(truth)
    for _, row in u[u["logic"] == "single"].head(6).iterrows():
        ko = eta_of(true_expression(sim, close=row["peak_a"]))
        g = gene_col(sim, row["gene"])
        x = open_of(sim, row["peak_a"])
        drop = base[:, g] - ko[:, g]
        np.testing.assert_allclose(drop[x], row["effect"], atol=1e-9)
        np.testing.assert_allclose(drop[~x], 0.0, atol=1e-9)
        others = np.delete(np.arange(base.shape[1]), g)
        np.testing.assert_array_equal(ko[:, others], base[:, others])
        # opening it instead raises eta by w where it was closed
        up = eta_of(true_expression(sim, open=[row["peak_a"]]))[:, g] - base[:, g]
        np.testing.assert_allclose(up, row["effect"] * ~x, atol=1e-9)


@pytest.mark.parametrize("fixture", ["sim", "sim_redundant"])
def test_or_pair_is_redundant(fixture, request):
    m = request.getfixturevalue(fixture)
    u = units_frame(m)
    base = eta_of(true_expression(m))
    total_single, total_both = 0.0, 0.0
    for _, row in u[u["logic"] == "or"].head(6).iterrows():
        a, b, w = row["peak_a"], row["peak_b"], row["effect"]
        g = gene_col(m, row["gene"])
        xa, xb = open_of(m, a), open_of(m, b)
        d_a = base[:, g] - eta_of(true_expression(m, row["gene"], close=a))[:, 0]
        d_b = base[:, g] - eta_of(true_expression(m, row["gene"], close=[b]))[:, 0]
        d_ab = base[:, g] - eta_of(true_expression(m, row["gene"], close=[a, b]))[:, 0]
        np.testing.assert_allclose(d_a, w * (xa & ~xb), atol=1e-9)
        np.testing.assert_allclose(d_b, w * (xb & ~xa), atol=1e-9)
        np.testing.assert_allclose(d_ab, w * (xa | xb), atol=1e-9)
        # super-additive: the joint drop exceeds the sum by exactly w where both are open
        np.testing.assert_allclose(d_ab - d_a - d_b, w * (xa & xb), atol=1e-9)
        total_single += (d_a + d_b).mean()
        total_both += d_ab.mean()
    assert total_both > 1.4 * total_single  # measured >= 1.8 (default), >= 2.0 (redundant)
    if fixture == "sim_redundant":  # ~70% open each: single knock-outs are weak
        assert total_both > 1.7 * total_single  # measured 2.0-2.4 over seeds 0-19


def test_and_pair_either_peak_gives_full_effect(sim, truth):
    u = units_frame(sim)
    base = eta_of(truth)
    for _, row in u[u["logic"] == "and"].head(6).iterrows():
        a, b, w = row["peak_a"], row["peak_b"], row["effect"]
        g = gene_col(sim, row["gene"])
        full = w * (open_of(sim, a) & open_of(sim, b))
        assert full.mean() > 0.02
        for close in ([a], [b], [a, b]):
            drop = base[:, g] - eta_of(true_expression(sim, close=close))[:, g]
            np.testing.assert_allclose(drop, full, atol=1e-9)
        # opening both gives every cell the full effect
        up = eta_of(true_expression(sim, open=[a, b]))[:, g] - base[:, g]
        np.testing.assert_allclose(up, w - full, atol=1e-9)


def test_decoy_knockout_is_small(sim_redundant):
    m = sim_redundant
    u = units_frame(m)
    base = eta_of(true_expression(m))
    row = u[u["logic"] == "decoy"].iloc[0]
    g = gene_col(m, row["gene"])
    drop = base[:, g] - eta_of(true_expression(m, close=row["peak_a"]))[:, g]
    np.testing.assert_allclose(drop, 0.15 * open_of(m, row["peak_a"]), atol=1e-9)


def test_background_peaks_have_no_effect(sim, truth):
    var = sim["atac"].var
    bg = np.flatnonzero(var["cre_unit"].to_numpy() < 0)[:200]
    np.testing.assert_array_equal(true_expression(sim, close=bg), truth)
    np.testing.assert_array_equal(true_expression(sim, open=var_names(sim)[bg]), truth)


def var_names(m: mudata.MuData) -> np.ndarray:
    return m["atac"].var_names.to_numpy()


def test_gene_and_cell_selection(sim, truth):
    genes = ["gene5", "gene2"]
    np.testing.assert_array_equal(true_expression(sim, genes), truth[:, [5, 2]])
    np.testing.assert_array_equal(true_expression(sim, "gene3"), truth[:, [3]])
    np.testing.assert_array_equal(true_expression(sim, [7, 1]), truth[:, [7, 1]])
    mask = np.zeros(sim.n_obs, dtype=bool)
    mask[::7] = True
    np.testing.assert_array_equal(true_expression(sim, cells=mask), truth[mask])
    idx = np.array([5, 3, 100])
    np.testing.assert_array_equal(true_expression(sim, cells=idx), truth[idx])
    names = sim.obs_names[idx]
    np.testing.assert_array_equal(true_expression(sim, cells=names), truth[idx])
    # interventions by integer position equal those by name
    p = int(np.flatnonzero(sim["atac"].var["cre_unit"].to_numpy() >= 0)[0])
    np.testing.assert_array_equal(
        true_expression(sim, close=[p]), true_expression(sim, close=var_names(sim)[p])
    )


def test_round_trip_through_h5mu(sim, truth, tmp_path):
    path = tmp_path / "sim.h5mu"
    sim.copy().write(path)
    back = mudata.read_h5mu(path)
    np.testing.assert_array_equal(true_expression(back), truth)
    u = units_frame(sim)
    close = [u["peak_a"].iloc[0], u["peak_b"][u["logic"] == "or"].iloc[0]]
    np.testing.assert_array_equal(
        true_expression(back, close=close), true_expression(sim, close=close)
    )
    assert "celltype" in back.obs
    assert back.uns["simulation"]["params"]["seed"] == 0


def subset_peaks(m: mudata.MuData, keep: np.ndarray) -> mudata.MuData:
    out = mudata.MuData({"rna": m["rna"].copy(), "atac": m["atac"][:, keep].copy()})
    out.obs["celltype"] = m.obs["celltype"].to_numpy()
    out.uns["simulation"] = m.uns["simulation"]
    return out


def test_peak_subset_keeps_truth_and_names_missing_peaks(sim, truth):
    planted = sim["atac"].var["cre_unit"].to_numpy() >= 0
    keep = planted.copy()
    keep[::3] = True
    sub = subset_peaks(sim, keep)
    assert sub["atac"].n_vars < sim["atac"].n_vars
    np.testing.assert_array_equal(true_expression(sub), truth)

    u = units_frame(sim)
    lost = u.loc[u["logic"] == "and", "peak_b"].iloc[0]
    gene = u.loc[u["peak_b"] == lost, "gene"].iloc[0]
    keep[sim["atac"].var_names.get_loc(lost)] = False
    sub = subset_peaks(sim, keep)
    with pytest.raises(KeyError, match=re.escape(lost)):
        true_expression(sub)
    # genes whose planted peaks all remain still work
    other = [g for g in sim["rna"].var_names if g != gene][:3]
    j = [gene_col(sim, g) for g in other]
    np.testing.assert_array_equal(true_expression(sub, other), truth[:, j])


def test_other_matrix_layouts_and_rna_subset(sim, truth):
    genes = ["gene9", "gene0"]
    for conv in (lambda x: x.toarray(), lambda x: x.tocsc(), lambda x: x * 3):
        m = mudata.MuData({"rna": sim["rna"][:, genes].copy(), "atac": sim["atac"].copy()})
        m["atac"].X = conv(sim["atac"].X)
        del m["atac"].obs["celltype"]  # falls back to the MuData obs
        m.obs["celltype"] = sim.obs["celltype"].to_numpy()
        m.uns["simulation"] = sim.uns["simulation"]
        # default genes: those of the RNA modality, in its order
        np.testing.assert_array_equal(true_expression(m), truth[:, [9, 0]])


def test_errors(sim):
    with pytest.raises(TypeError, match="MuData"):
        true_expression(sim["rna"])
    plain = mudata.MuData({"rna": sim["rna"].copy(), "atac": sim["atac"].copy()})
    with pytest.raises(ValueError, match="not a simulated object"):
        true_expression(plain)
    with pytest.raises(KeyError, match="nope"):
        true_expression(sim, ["nope"])
    with pytest.raises(KeyError, match="chr1:1-2"):
        true_expression(sim, close=["chr1:1-2"])
    p = sim["atac"].var_names[0]
    with pytest.raises(ValueError, match="both closed and opened"):
        true_expression(sim, close=[p], open=[p])
    with pytest.raises(ValueError, match="duplicates"):
        true_expression(sim, ["gene1", "gene1"])
    with pytest.raises(ValueError, match="cre_open"):
        synthetic_multiome(50, 500, 5, cre_open=(0.8, 0.5))
    with pytest.raises(ValueError, match="n_cells"):
        synthetic_multiome(0, 500, 5)
    with pytest.raises(ValueError, match="peak_spacing"):
        synthetic_multiome(50, 500, 5, peak_spacing=100)


def test_atac_counts_same_pattern(sim, truth):
    m = synthetic_multiome(**SMALL, seed=0, atac_counts=True)
    x = m["atac"].X
    assert x.dtype == np.float32
    assert np.all(x.data == np.round(x.data)) and set(np.unique(x.data)) <= {1, 2, 3, 4}
    assert (x.data > 1).mean() > 0.3
    binary = sim["atac"].X
    np.testing.assert_array_equal(x.indptr, binary.indptr)
    np.testing.assert_array_equal(x.indices, binary.indices)
    assert (m["rna"].layers["counts"] != sim["rna"].layers["counts"]).nnz == 0
    np.testing.assert_array_equal(true_expression(m), truth)
    assert m.uns["simulation"]["params"]["atac_counts"]


def test_exported():
    assert grids.datasets.synthetic_multiome is synthetic_multiome
    assert grids.datasets.true_expression is true_expression


# --------------------------------------------------------------------------- confounded regime


def test_confounded_regime_state_and_truth():
    """A continuous state opens a module of non-causal peaks and drives some genes: module
    peaks correlate with driven genes, closing them changes nothing, the planted CREs stay.
    """
    kw = dict(n_cells=600, n_peaks=1500, n_genes=20, seed=2)
    m = synthetic_multiome(**kw, **grids.datasets.CONFOUNDED)
    plain = synthetic_multiome(**kw)
    a, r = m["atac"], m["rna"]
    module = a.var["state_module"].to_numpy()
    assert module.dtype == bool and 0.1 < module.mean() < 0.2
    assert not (module & (a.var["cre_unit"].to_numpy() >= 0)).any()
    b = r.var["state_effect"].to_numpy()
    assert (b != 0).sum() == 6 and (b > 0).any() and (b < 0).any()
    u = m.obs["state"].to_numpy()
    assert np.array_equal(a.obs["state"].to_numpy(), u) and abs(u.std() - 1) < 0.1
    # the layout and the planted units are those of the object without a state
    assert a.var_names.equals(plain["atac"].var_names)
    assert a.var["cre_unit"].equals(plain["atac"].var["cre_unit"])
    x = a.X.toarray()
    r_mod = [np.corrcoef(x[:, j], u)[0, 1] for j in np.flatnonzero(module)[:40]]
    assert np.mean(r_mod) > 0.2
    truth = true_expression(m)
    g = int(np.flatnonzero(b)[0])
    assert np.sign(np.corrcoef(truth[:, g], u)[0, 1]) == np.sign(b[g])
    closed = true_expression(m, close=a.var_names[module])
    np.testing.assert_array_equal(closed, truth)
    sub = m[m.obs_names[::2]]  # the truth follows subsetting of cells
    np.testing.assert_allclose(true_expression(sub), truth[::2])


def test_null_regime_has_no_planted_peaks():
    m = synthetic_multiome(200, 600, 8, seed=0, **grids.datasets.NULL, **grids.datasets.CONFOUNDED)
    assert (m["atac"].var["cre_unit"] == -1).all() and (m["rna"].var["n_units"] == 0).all()
    truth = true_expression(m, close=m["atac"].var_names[:300])
    np.testing.assert_array_equal(truth, true_expression(m))
