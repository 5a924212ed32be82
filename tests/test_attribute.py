"""Baseline attributions (grids.tl.attribute) and the evaluation table (grids.tl.evaluate)."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import hypergeom

import grids_sc as grids
from grids_sc.attribution import METHODS, correlation_z

GENE = "gene0"
FAST = {
    "smoothgrad": {"nt_samples": 4},
    "integrated_gradients": {"n_steps": 8},
    "lime": {"n_samples": 300},
    "sage": {"n_permutations": 256},
    "fimap": {"epochs": 150},
}


def _planted(m, gene):
    var = m["atac"].var
    return set(var.index[var["cre_gene"].astype(str) == gene])


@pytest.mark.parametrize("method", [m for m in METHODS if m != "random"])
def test_methods_find_planted_cres_better_than_random(fitted, method):
    planted = _planted(fitted, GENE)
    L = len(planted)
    grids.tl.attribute(fitted, GENE, "random", L=L, window=250_000, progress=False)
    grids.tl.attribute(
        fitted, GENE, method, L=L, window=250_000, progress=False, **FAST.get(method, {})
    )
    store = fitted.uns["grids"]["explain"]
    rec = store[f"{method}_{GENE}_all"]
    hits = len(planted & set(rec["selected"]))
    random_hits = len(planted & set(store[f"random_{GENE}_all"]["selected"]))
    # measured on this simulator: 4-6 of the 6 planted peaks for every method, random 0-1
    assert hits >= 3 and hits > random_hits
    assert rec["settings"]["method"] == method
    assert np.isfinite(rec["scores"]).all() and len(rec["scores"]) == rec["n_candidates_in_window"]
    var = fitted["atac"].var
    key = f"{method}_{GENE}_all"
    assert var[f"{key}_selected"].sum() == L
    assert var[f"{key}_score"].notna().sum() == rec["n_candidates_in_window"]
    # the same per-selection record as explain: held-out effects and per-peak effects
    assert rec["delta"]["rel_test"] < 0 and len(rec["per_peak"]["alone"]) == L


@pytest.mark.parametrize("p, sign", [(0.0, 1.0), (0.0, -1.0), (1.0, 1.0), (1.0, -1.0)])
def test_gradient_scores_match_captum_on_the_dense_window(fitted, p, sign):
    """saliency is Captum's Saliency of the group objective (summed over cells) and
    first_order is gradient times change (Captum's InputXGradient when closing), computed
    sparsely; both agree with the dense window function.
    """
    from captum.attr import InputXGradient, Saliency

    from grids_sc._inputs import atac_binary
    from grids_sc.attribution import WindowObjective, first_order_scores, saliency_scores
    from grids_sc.search import EmbeddingSumProblem
    from grids_sc.tl._surrogate import get_surrogate

    surrogate = get_surrogate(fitted, check_genes=False)
    x = atac_binary(fitted["atac"], None, "atac")[:200]
    gene = np.array([list(surrogate.genes).index(GENE)])
    prob = EmbeddingSumProblem(surrogate.module, x, gene, p, sign)
    feats = np.arange(0, prob.n_features, 7)
    fwd = WindowObjective(prob, feats)
    u, cells = fwd.x.clone(), fwd.all_cells()
    grad = Saliency(fwd).attribute(u, abs=False, additional_forward_args=(cells,))
    orient = -sign * (2 * p - 1) / prob.n_cells  # towards p, in the wanted direction
    np.testing.assert_allclose(
        saliency_scores(prob, feats), orient * grad.sum(0).numpy(), rtol=1e-4, atol=1e-7
    )
    change = (p - u.detach()) * grad
    np.testing.assert_allclose(
        first_order_scores(prob, feats), -sign * change.sum(0).numpy() / prob.n_cells,
        rtol=1e-4, atol=1e-7,
    )  # fmt: skip
    if p == 0.0:
        ixg = InputXGradient(fwd).attribute(u, additional_forward_args=(cells,))
        np.testing.assert_allclose(
            first_order_scores(prob, feats), sign * ixg.detach().sum(0).numpy() / prob.n_cells,
            rtol=1e-4, atol=1e-7,
        )  # fmt: skip


def test_attribute_is_seeded_and_validates(fitted):
    sels = []
    for seed in (4, 4, 5):
        grids.tl.attribute(fitted, GENE, "random", L=3, key_added="r", progress=False, seed=seed)
        sels.append(list(fitted.uns["grids"]["explain"]["r"]["selected"]))
    assert sels[0] == sels[1] != sels[2]
    before = set(fitted.uns["grids"]["explain"])
    with pytest.raises(ValueError, match="method must be"):
        grids.tl.attribute(fitted, GENE, "shap", progress=False)
    with pytest.raises(KeyError, match="not among"):
        grids.tl.attribute(fitted, "nope", "saliency", progress=False)
    with pytest.raises(ValueError, match="L="):
        grids.tl.attribute(fitted, GENE, "saliency", L=10_000, window=1000, progress=False)
    assert set(fitted.uns["grids"]["explain"]) == before


def test_correlation_background_z():
    rng = np.random.default_rng(0)
    n = 2000
    x = (rng.random((n, 300)) < 0.3).astype(np.float32)
    y = 2.0 * x[:, 0] + rng.normal(0, 1, n)  # peak 0 regulates the gene
    background = np.arange(300) >= 100  # "other chromosomes"
    r, z = correlation_z(sp.csr_matrix(x), y, np.arange(10), background, seed=0)
    assert r[0] > 0.5 and z[0] > 10
    assert np.abs(z[1:]).max() < 4


def test_evaluate_table(fitted):
    planted = _planted(fitted, GENE)
    grids.tl.explain(fitted, GENE, L=len(planted), window=250_000, progress=False, n_steps=50)
    grids.tl.attribute(fitted, GENE, "random", L=len(planted), window=250_000, progress=False)
    df = grids.tl.evaluate(fitted).set_index("method")
    assert {"grids", "random"} <= set(df.index)
    assert df.loc["grids", "precision"] > df.loc["random", "precision"]
    assert df.loc["grids", "true_rel_delta"] < df.loc["random", "true_rel_delta"] < 0.01
    assert df.loc["grids", "shr"] and 0 <= df.loc["grids", "hr_fraction"] <= 1
    assert 0.5 < df.loc["grids", "rel_cells"] <= 1
    # a single unit is switched exactly when its peak is selected
    assert 0 <= df.loc["grids", "units"] <= 1
    assert df.loc["grids", "units_single"] == df.loc["grids", "recall_single"]
    assert "evaluation" in fitted.uns["grids"]["evaluations"]
    with pytest.raises(KeyError, match="not in"):
        grids.tl.evaluate(fitted, "missing")


def test_evaluate_pchic_hypergeometric(fitted):
    grids.tl.attribute(fitted, GENE, "saliency", L=4, window=250_000, progress=False)
    key = f"saliency_{GENE}_all"
    rec = fitted.uns["grids"]["explain"][key]
    var = fitted["atac"].var
    window = var.index[var[f"{key}_score"].notna()]
    supported = set(rec["selected"][:2]) | set(window[:3])
    table = pd.DataFrame(
        {
            "tile": window,
            "gene": GENE,
            "celltype": "all",
            "pchic_significant": [t in supported for t in window],
        }
    )
    row = grids.tl.evaluate(fitted, key, pchic=table).iloc[0]
    n_pop, n_succ = len(window), len(supported)
    k = int(sum(t in supported for t in rec["selected"]))
    assert row["pchic_selected"] == k and row["pchic_window"] == n_succ
    assert row["pchic_pvalue"] == pytest.approx(hypergeom.sf(k - 1, n_pop, n_succ, 4))
