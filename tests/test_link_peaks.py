"""``grids.tl.link_peaks``: calibrated peak–gene links on simulator truth, the table, the
test between groups, the heatmap, exports, the ``grids links`` command and the round trip.
"""

from __future__ import annotations

import warnings

import matplotlib
import mudata
import numpy as np
import pandas as pd
import pytest

import grids_sc as grids
from grids_sc.cli import main

matplotlib.use("Agg")

D = grids.datasets
SIM = {"n_cells": 600, "n_peaks": 900, "n_genes": 12, "n_celltypes": 3}
FIT = {"max_epochs": 10, "cis_max_epochs": 60, "progress": False}


def _simulate_and_fit(seed: int, null: bool, **fit) -> mudata.MuData:
    kw = {**D.CONFOUNDED, **(D.NULL if null else {})}
    m = D.synthetic_multiome(**SIM, seed=seed, **kw)
    grids.tl.fit_surrogate(m, **FIT, **fit)
    return m


@pytest.fixture(scope="module")
def confounded() -> mudata.MuData:
    m = _simulate_and_fit(0, null=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grids.tl.link_peaks(m, groupby="celltype", L=2, n_steps=10, progress=False)
        grids.tl.link_peaks(
            m, groupby="celltype", method="correlation", key_added="corr", progress=False
        )
    return m


def test_confounded_calibration_and_recall(confounded):
    """On the default surrogate (``model="loco"``), at FDR 0.1 the cross-fitted links stay
    calibrated where state-driven correlation (module peaks near state-driven genes) makes
    the correlation caller fail.
    """
    assert confounded.uns["grids"]["surrogates"]["surrogate"]["model"] == "loco"
    ours = D.score_links(confounded, grids.get.link_peaks_df(confounded))
    corr = D.score_links(confounded, grids.get.link_peaks_df(confounded, "corr"))
    assert ours["n_significant"] > 30
    assert ours["fdp"] <= 0.1
    assert ours["unit_recall"] >= 0.6 and ours["linear_recall"] >= 0.5
    assert ours["linear_recall_neg"] > 0  # repressors are links too (two-sided)
    assert corr["fdp"] > ours["fdp"]


def test_cis_surrogate_links_are_calibrated_too():
    """``link_peaks`` refits the heads of either kind of surrogate with heads: with
    ``model="cis"`` (the shared ATAC encoder kept on each fold) the links stay calibrated on
    the confounded regime and find the planted units.
    """
    m = _simulate_and_fit(0, null=False, model="cis")
    assert grids.tl.get_surrogate(m).entry["model"] == "cis"
    grids.tl.link_peaks(m, groupby="celltype", L=0, progress=False)
    ours = D.score_links(m, grids.get.link_peaks_df(m))
    assert ours["n_significant"] > 30 and ours["fdp"] <= 0.1
    assert ours["unit_recall"] >= 0.5


def test_null_has_no_discoveries():
    m = _simulate_and_fit(1, null=True)
    grids.tl.link_peaks(m, groupby="celltype", L=0, progress=False)
    df = grids.get.link_peaks_df(m)
    assert df["significant"].sum() <= 1
    assert (df["pvalue"] > 0).all() and (df["qvalue"] >= df["pvalue"] - 1e-12).all()


def test_table_columns_and_sets(confounded):
    df = grids.get.link_peaks_df(confounded)
    need = {"gene", "group", "peak", "effect", "effect_low", "effect_high", "pvalue", "qvalue",
            "set_effect", "logic", "tss_distance", "significant", "in_set"}  # fmt: skip
    assert need <= set(df.columns)
    assert set(df["group"]) == {"type0", "type1", "type2"}
    assert (df["effect_low"] <= df["effect"]).all() and (df["effect"] <= df["effect_high"]).all()
    assert np.all(np.diff(df["qvalue"].to_numpy()) >= 0)  # sorted by q-value
    sets = df[df["in_set"]]
    assert (
        len(sets)
        and sets["set_effect"].notna().all()
        and df.loc[~df["in_set"], "set_effect"].isna().all()
    )
    assert set(df["logic"]) <= {"redundant", "cooperative", "independent", ""}
    assert df["tss_distance"].min() >= -250_000 - 500  # the window is around the gene body
    rec = confounded.uns["grids"]["links"]["links"]
    assert rec["kind"] == "links" and rec["format_version"] == 2
    assert rec["params"]["fdr"] == 0.1 and rec["params"]["groupby"] == "celltype"
    sig = grids.get.link_peaks_df(confounded, significant=True, group="type1")
    assert (sig["qvalue"] <= 0.1).all() and set(sig["group"]) == {"type1"}


def test_differential_between_groups(confounded):
    """A link whose CRE is switched off in one cell type differs between the types."""
    diff = grids.get.link_peaks_diff(confounded, "type0", "type1")
    assert {"gene", "peak", "effect_1", "effect_2", "z", "pvalue", "qvalue", "differs"} <= set(
        diff.columns
    )
    truth = D.true_links(confounded)
    t0 = truth[truth["group"] == "type0"].set_index(["gene", "peak"])["active"]
    t1 = truth[truth["group"] == "type1"].set_index(["gene", "peak"])["active"]
    switched = set(t0.index[(t0 != t1.reindex(t0.index)).to_numpy()])
    called = diff[diff["differs"]]
    hits = [k in switched for k in zip(called["gene"], called["peak"])]
    assert len(called) and np.mean(hits) > 0.5
    with pytest.raises(KeyError, match="not in links"):
        grids.get.link_peaks_diff(confounded, "type0", "nope")


def test_heatmap_exports_and_round_trip(confounded, tmp_path):
    ax = grids.pl.link_heatmap(confounded, show=False)
    n_rows = len(ax.get_yticks())
    assert 0 < n_rows <= 60
    grids.io.write_links(confounded, tmp_path / "l.bedpe", links="links")
    lines = (tmp_path / "l.bedpe").read_text().splitlines()
    n_sig = int(grids.get.link_peaks_df(confounded, significant=True).shape[0])
    assert len(lines) == n_sig + 2 and lines[0].startswith("track")
    grids.io.write_links(confounded, tmp_path / "l.tsv", format="tsv", links="links")
    assert len(pd.read_csv(tmp_path / "l.tsv", sep="\t")) == n_sig
    with pytest.raises(ValueError, match="not both"):
        grids.io.write_links(confounded, tmp_path / "x.bedpe", keys="a", links="links")
    path = tmp_path / "m.h5mu"
    confounded.write(path)
    back = mudata.read_h5mu(path)
    a, b = grids.get.link_peaks_df(confounded), grids.get.link_peaks_df(back)
    pd.testing.assert_frame_equal(a, b)
    # the command line: grids links and grids export --links
    out = tmp_path / "cli.h5mu"
    table = tmp_path / "sig.tsv"
    args = ["links", str(path), "-o", str(out), "--groupby", "celltype", "--genes", "gene0"]
    args += ["gene1", "--method", "correlation", "--key-added", "c2", "-t", str(table), "-q"]
    assert main(args) == 0
    assert "c2" in mudata.read_h5mu(out).uns["grids"]["links"]
    assert main(["export", str(out), "-o", str(tmp_path / "c.tsv"), "--links", "c2", "-q"]) == 0


def test_bad_input_is_refused_before_writing(confounded):
    before = set(confounded.uns["grids"]["links"])
    for kw, match in (
        ({"fdr": 1.5}, "fdr"),
        ({"method": "pearson"}, "method"),
        ({"genes": ["nope"]}, "not among"),
        ({"n_folds": 1}, "n_folds"),
    ):
        with pytest.raises((ValueError, KeyError), match=match):
            grids.tl.link_peaks(confounded, key_added="bad", progress=False, **kw)
    assert set(confounded.uns["grids"]["links"]) == before


@pytest.mark.slow
@pytest.mark.parametrize("null", [False, True])
def test_calibration_over_seeds(null):
    """The bar over several seeds: mean FDP <= 0.1 and none above 0.15 at FDR 0.1."""
    fdp = []
    for seed in (2, 3, 4):
        m = _simulate_and_fit(seed, null=null)
        grids.tl.link_peaks(m, groupby="celltype", L=0, progress=False)
        fdp.append(D.score_links(m, grids.get.link_peaks_df(m))["fdp"])
    assert np.mean(fdp) <= 0.1 and max(fdp) <= 0.15


def test_link_peaks_refuses_a_view_before_any_work(confounded):
    """As every writer (data-safety rules): a view is refused and its parent is unchanged."""
    m = confounded
    before = sorted(m.uns["grids"]["links"])
    view = m[: m.n_obs // 2]
    with pytest.raises(ValueError, match=r"view .*\.copy\(\)"):
        grids.tl.link_peaks(view, groupby="celltype", key_added="from_view", progress=False)
    assert sorted(m.uns["grids"]["links"]) == before


def test_track_shows_the_q_values_of_a_link_result(confounded):
    """pl.track(links=KEY) adds one row per group with the gene's tested peaks as -log10 q."""
    m = confounded.copy()
    df = grids.get.link_peaks_df(m)
    gene, group = df.iloc[0]["gene"], df.iloc[0]["group"]
    grids.tl.explain(m, gene, L=2, n_steps=3, groupby="celltype", groups=group, window=250_000,
                     key_added="e", progress=False)  # fmt: skip
    axes = grids.pl.track(m, "e", links="links", show=False)
    tested = df[(df["gene"] == gene) & (df["group"] == group)]
    link_ax = next(a for a in axes if a.get_ylabel().startswith("links"))
    heights = sorted(p.get_height() for p in link_ax.patches)
    expected = sorted(-np.log10(np.clip(tested["qvalue"].to_numpy(dtype=float), 1e-300, 1)))
    assert len(heights) == len(expected)
    np.testing.assert_allclose(heights, expected, rtol=1e-6)
