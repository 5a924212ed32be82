"""The GRIDS search engine and grids.tl.explain, judged against the simulator's truth."""

import mudata
import numpy as np
import pytest
import torch

import grids_sc as grids
from grids_sc._inputs import atac_binary
from grids_sc.search import EmbeddingSumProblem, GridsOptimizer, run_search


@pytest.fixture
def problem(fitted):
    f = grids.tl.get_surrogate(fitted)
    x = atac_binary(fitted["atac"], None, "atac")[:300]
    return EmbeddingSumProblem(f.module, x, np.array([0]))


def test_swap_values_are_exact(problem):
    sel = torch.tensor([3, 50, 400, 700])
    outs, ins = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([4, 51, 401, 10, 799])
    vals = problem.swap_values(sel, outs, ins)
    for o, i, v in zip(outs, ins, vals):
        s2 = sel.clone()
        s2[o] = i
        assert float(v) == pytest.approx(problem.value(s2), abs=1e-5)


def test_first_order_tracks_exact_single_effects(problem):
    empty = torch.empty(0, dtype=torch.long)
    d = problem.first_order(empty).numpy()
    base = problem.value(empty)
    peaks = np.argsort(d)[:40]
    exact = np.array([problem.value(torch.tensor([int(j)])) - base for j in peaks])
    assert np.corrcoef(d[peaks], exact)[0, 1] > 0.8


def test_optimizer_is_monotone_and_validates(problem):
    sel = torch.arange(5)
    opt = GridsOptimizer([sel], problem, n_candidates=8)
    for _ in range(20):
        opt.step()
    assert all(b <= a + 1e-9 for a, b in zip(opt.trace, opt.trace[1:]))
    assert len(set(opt.selection.tolist())) == 5
    with pytest.raises(ValueError, match="duplicate"):
        GridsOptimizer([torch.tensor([1, 1])], problem)
    with pytest.raises(ValueError, match="L must be"):
        run_search(problem, 0)


def _true_effect(sim, gene, peaks, cells):
    g = list(sim["rna"].var_names).index(gene)
    before = grids.datasets.true_expression(sim, cells=cells)[:, g]
    after = grids.datasets.true_expression(sim, cells=cells, close=list(peaks))[:, g]
    return float((after - before).mean())


def test_explain_finds_true_cres(fitted, sim_small):
    var = sim_small["atac"].var
    gene = "gene1"
    L = int((var["cre_gene"] == gene).sum())
    grids.tl.explain(fitted, gene, L=L, window=250_000, restarts=2, progress=False)
    rec = fitted.uns["grids"]["explain"][f"grids_{gene}_all"]
    assert len(rec["selected"]) == L and rec["delta"]["avg_test"] < 0
    # the true knock-out effect of the selection is far larger than that of random window peaks
    cells = np.arange(sim_small.n_obs)
    effect = _true_effect(sim_small, gene, rec["selected"], cells)
    window = np.flatnonzero(fitted["atac"].var[f"grids_{gene}_all_score"].notna())
    rng = np.random.default_rng(0)
    rand = [
        _true_effect(sim_small, gene, var.index[rng.choice(window, L, False)], cells)
        for _ in range(5)
    ]
    assert effect < 3 * np.mean(rand) and effect < 0
    per_peak = rec["per_peak"]
    assert len(per_peak["alone"]) == L and np.all(per_peak["frequency"] > 0)
    cols = [c for c in fitted["atac"].var.columns if c.startswith(f"grids_{gene}_all_")]
    assert sorted(cols) == sorted(
        f"grids_{gene}_all_{c}" for c in ("selected", "rank", "score", "frequency")
    )
    assert fitted["atac"].var[f"grids_{gene}_all_selected"].sum() == L


def test_explain_groups_sets_and_roundtrip(fitted, tmp_path):
    grids.tl.explain(
        fitted, {"pair": ["gene0", "gene2"]}, L=3, groupby="celltype", n_steps=5, progress=False
    )
    keys = sorted(fitted.uns["grids"]["explain"])
    groups = sorted(fitted.obs["celltype"].astype(str).unique())
    assert keys == [f"grids_pair_{g}" for g in groups]
    rec = fitted.uns["grids"]["explain"][keys[0]]
    assert list(rec["gene"]) == ["gene0", "gene2"]
    assert rec["per_cell"]["before"].shape[1] == 2
    fitted.write(tmp_path / "e.h5mu")
    back = mudata.read_h5mu(tmp_path / "e.h5mu")
    np.testing.assert_array_equal(
        back.uns["grids"]["explain"][keys[0]]["selected"], rec["selected"]
    )


def test_explain_open_up_moves_expression_up(fitted):
    grids.tl.explain(
        fitted,
        "gene3",
        L=4,
        perturb="open",
        direction="up",
        n_steps=20,
        progress=False,
        key_added="up",
    )
    assert fitted.uns["grids"]["explain"]["up"]["delta"]["avg_train"] > 0


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"gene": "nope"}, KeyError, "not among"),
        ({"gene": "gene0", "L": 0}, ValueError, "positive integer"),
        ({"gene": "gene0", "L": 10_000}, ValueError, "candidate peaks"),
        ({"gene": "gene0", "groupby": "celltype", "groups": "absent"}, KeyError, "not found"),
        ({"gene": "gene0", "groups": "type0"}, ValueError, "needs groupby"),
        ({"gene": "gene0", "perturb": "shut"}, ValueError, "perturb"),
        ({"gene": "gene0", "init": "best"}, ValueError, "init must be"),
        ({"gene": "gene0", "key": "other"}, KeyError, "no surrogate"),
    ],
)
def test_explain_bad_input_writes_nothing(fitted, kwargs, err, match):
    with pytest.raises(err, match=match):
        grids.tl.explain(fitted, progress=False, **kwargs)
    assert "explain" not in fitted.uns["grids"]
    assert not any(c.startswith("grids_") for c in fitted["atac"].var.columns)


def test_explain_tiny_group_and_foreign_surrogate(fitted):
    m = fitted.copy()
    m.obs["tiny"] = np.where(np.arange(m.n_obs) < 5, "few", "many")
    with pytest.raises(ValueError, match="has 5 cells"):
        grids.tl.explain(m, "gene0", groupby="tiny", groups="few", progress=False)
    sub = fitted[
        :, fitted["atac"].var_names[10:].tolist() + fitted["rna"].var_names.tolist()
    ].copy()
    with pytest.raises(ValueError, match="was fit on 800 peaks"):
        grids.tl.explain(sub, "gene0", progress=False)


def test_add_values_are_exact(problem):
    sel = torch.tensor([3, 50, 400])
    ins = torch.tensor([4, 51, 799, 10])
    vals = problem.add_values(sel, ins)
    for i, v in zip(ins, vals):
        assert float(v) == pytest.approx(problem.value(torch.cat([sel, i.reshape(1)])), abs=1e-5)
    empty = problem.add_values(torch.empty(0, dtype=torch.long), ins[:2])
    assert float(empty[0]) == pytest.approx(problem.value(ins[:1]), abs=1e-5)


def test_greedy_init_is_at_least_as_good_as_the_first_order_ranking(problem):
    from grids_sc.search import greedy_selection, initial_selection

    cand = torch.ones(problem.n_features, dtype=torch.bool)
    d0 = problem.first_order(torch.empty(0, dtype=torch.long))
    for size in (3, 8):
        greedy = greedy_selection(problem, cand, size, n_candidates=16)
        assert len(set(greedy.tolist())) == size
        assert problem.value(greedy) <= problem.value(initial_selection(d0, cand, size)) + 1e-7
    # the first pick is the best single peak among the first-order shortlist, evaluated exactly
    short = torch.topk(d0, 16, largest=False).indices
    best = short[torch.argmin(problem.add_values(torch.empty(0, dtype=torch.long), short))]
    assert int(greedy_selection(problem, cand, 1, n_candidates=16)[0]) == int(best)
    res = run_search(problem, 8, n_candidates=16, n_steps=50, init="greedy")
    assert res.value <= problem.value(greedy_selection(problem, cand, 8, 16)) + 1e-7
    with pytest.raises(ValueError, match="init"):
        run_search(problem, 8, init="best")


def test_search_from_given_starts_ends_at_or_below_each(problem):
    """Starts given as selections: one search from each (then the random restarts), each
    beginning at its start's objective and never ending above it; the best is kept.
    """
    rng = np.random.default_rng(0)
    starts = [rng.choice(problem.n_features, 6, replace=False) for _ in range(2)]
    res = run_search(problem, 6, n_steps=30, init=["first_order", *starts], restarts=2)
    assert len(res.traces) == 4 and res.restart_selections.shape == (4, 6)
    for start, trace in zip(starts, res.traces[1:3]):
        assert trace[0] == pytest.approx(problem.value(torch.as_tensor(start)), abs=1e-6)
        assert trace[-1] <= trace[0] + 1e-9
    assert res.best_restart == int(np.argmin(res.restart_scores))
    assert res.value == pytest.approx(min(t[-1] for t in res.traces))
    one = run_search(problem, 6, n_steps=30)
    np.testing.assert_array_equal(res.traces[0], one.traces[0])  # the first start as alone
    for bad in ([0, 1, 2], [0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, problem.n_features]):
        with pytest.raises(ValueError, match="distinct candidate features"):
            run_search(problem, 6, init=[np.array(bad)])
    cand = torch.ones(problem.n_features, dtype=torch.bool)
    cand[0] = False
    with pytest.raises(ValueError, match="distinct candidate features"):
        run_search(problem, 6, candidates=cand, init=[np.arange(6)])


def test_explain_from_several_starts_keeps_the_best_on_validation(fitted, sim_small):
    """``init="first_order+integrated_gradients"``: the second search starts from the set
    ``attribute(method="integrated_gradients")`` selects, and the kept one is the better of
    the two on the validation cells, as the runs from each start alone would say.
    """
    kw = dict(L=6, groupby="celltype", groups="type0", window=250_000, progress=False)
    grids.tl.explain(fitted, "gene1", init=["first_order", "integrated_gradients"], **kw)
    grids.tl.attribute(fitted, "gene1", "integrated_gradients", key_added="ig", **kw)
    grids.tl.explain(fitted, "gene1", init="integrated_gradients", key_added="from_ig", **kw)
    grids.tl.explain(fitted, "gene1", key_added="from_fo", **kw)
    st = fitted.uns["grids"]["explain"]
    both, ig = st["grids_gene1_type0"], st["ig"]
    assert both["settings"]["init"] == "first_order+integrated_gradients"
    traces = both["restart_traces"]
    assert traces.shape[0] == 2 and len(both["restart_scores"]) == 2
    # the second search begins at integrated gradients' set (its change of the mean)
    assert traces[1, 0] == pytest.approx(ig["delta"]["rel_of_means_train"], abs=1e-6)
    for i, key in enumerate(("from_fo", "from_ig")):
        alone = st[key]
        assert alone["restart_scores"][0] == pytest.approx(both["restart_scores"][i], abs=1e-7)
        np.testing.assert_allclose(alone["trace"], traces[i][np.isfinite(traces[i])], atol=1e-7)
    best = int(np.argmin(both["restart_scores"]))
    assert both["best_restart"] == best
    assert sorted(both["selected"]) == sorted(st[("from_fo", "from_ig")[best]]["selected"])
    assert "grids_gene1_type0_frequency" in fitted["atac"].var


def test_an_expensive_start_ranks_at_least_L_peaks(problem):
    """The first-order prefilter of an expensive method keeps ``max_features`` peaks, but
    never fewer than ``L``: a search start needs ``L`` of them.
    """
    from grids_sc._engine import SelectionSettings
    from grids_sc._engine._starts import scored_features

    mask = np.ones(problem.n_features, dtype=bool)
    for max_features, n in ((5, 8), (20, 20)):
        settings = SelectionSettings("grids", "surrogate", 8, max_features=max_features)
        feats, scores = scored_features("sage", problem, mask, settings, {"n_permutations": 4}, "t")
        assert len(feats) == len(scores) == n


def test_rel_delta_leaves_out_cells_predicted_near_zero():
    from grids_sc._engine import delta_stats

    before = np.array([[1.0], [1.0], [0.0002], [1.0]])
    after = np.array([[0.5], [0.5], [0.07], [0.5]])
    stats = delta_stats(before, after)
    assert stats["rel"] == pytest.approx(-0.5)  # not (3 * -0.5 + 349) / 4
    assert stats["rel_cells"] == pytest.approx(0.75)
    assert stats["rel_of_means"] == pytest.approx((after.mean() - before.mean()) / before.mean())


@pytest.mark.parametrize("perturb", [0.0, 1.0])
def test_large_selections_take_the_sparse_path_with_the_same_values(fitted, perturb, monkeypatch):
    import grids_sc.model._incremental_sum as problem_module

    f = grids.tl.get_surrogate(fitted)
    x = atac_binary(fitted["atac"], None, "atac")[:200]
    prob = EmbeddingSumProblem(f.module, x, np.array([0, 2]), perturb_value=perturb)
    sel = torch.from_numpy(np.random.default_rng(0).choice(prob.n_features, 300, replace=False))
    monkeypatch.setattr(problem_module, "DENSE_STATE_LIMIT", 10_000)
    dense = prob.value(sel)
    prob._cache_key = None
    monkeypatch.setattr(problem_module, "DENSE_STATE_LIMIT", 16)
    assert prob.value(sel) == pytest.approx(dense, abs=1e-5)


def test_window_auto_is_the_surrogates_cis_window(fitted):
    """explain's default candidates are the cis surrogate's own window (every peak its head
    reads among them); None makes every peak a candidate; a bad word raises before writing."""
    kw = dict(L=4, n_steps=3, progress=False)
    grids.tl.explain(fitted, "gene1", key_added="auto", **kw)
    grids.tl.explain(fitted, "gene1", key_added="bp", window=250_000, **kw)
    grids.tl.explain(fitted, "gene1", key_added="all", window=None, **kw)
    recs = fitted.uns["grids"]["explain"]
    n_peaks = fitted["atac"].n_vars
    assert recs["auto"]["settings"]["window"] == 250_000
    assert recs["auto"]["params"]["window"] == "auto"
    assert recs["auto"]["n_candidates_in_window"] == recs["bp"]["n_candidates_in_window"]
    assert recs["auto"]["n_candidates_in_window"] < n_peaks
    assert recs["all"]["n_candidates_in_window"] == n_peaks
    assert list(recs["auto"]["selected"]) == list(recs["bp"]["selected"])
    heads = grids.tl.get_surrogate(fitted).module.cis
    g = list(fitted["rna"].var_names).index("gene1")
    read = heads.pair_peak[heads.pair_gene == g].numpy()
    assert fitted["atac"].var["auto_score"].notna().to_numpy()[read].all()
    with pytest.raises(ValueError, match="window must be"):
        grids.tl.explain(fitted, "gene1", key_added="bad", window="near", **kw)
    assert "bad" not in recs


def test_window_auto_is_every_peak_without_cis_heads():
    from types import SimpleNamespace

    from grids_sc._engine import resolve_window

    paper = SimpleNamespace(entry={"model": "grids", "config": {}})
    cis = SimpleNamespace(entry={"model": "cis", "config": {"cis": {"window": 100_000}}})
    assert resolve_window("auto", paper) is None
    assert resolve_window("auto", cis) == 100_000
    assert resolve_window(None, cis) is None and resolve_window(5_000, paper) == 5_000
    for bad in (-1, 2.5, True, "250kb"):
        with pytest.raises(ValueError, match="window must be"):
            resolve_window(bad, cis)
