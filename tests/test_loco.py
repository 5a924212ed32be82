"""The LOCO surrogate (``fit_surrogate(model="loco")``): its incremental interface is exact
(the checks of ``tests/test_incremental.py``, run here on a LOCO model), the state leaves the
gene's own chromosome out, records round-trip, it learns OR logic on the simulator, a head
is kept whole, shrunk or silenced by the keep rule (``explain`` warns for a gene
without one), and a LOCO surrogate fit before the margin reads back into the same numbers.
"""

import io
from pathlib import Path

import mudata
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import grids_sc as grids
import test_incremental as ti
from grids_sc.model import CisConfig, LocoSurrogate, SurrogateConfig, make_batch
from grids_sc.search import EmbeddingSumProblem, run_search
from test_incremental import (  # noqa: F401  (collected here with this module's `model`)
    test_both_kinds_implement_the_interface,
    test_first_order_is_gradient_times_change,
    test_moves_equal_full_evaluation,
    test_single_peak_moves_equal_set_values,
    test_sparse_moves_equal_full_evaluation,
    test_state_plus_change_equals_full_reencode,
    test_window_function_equals_full_evaluation,
)

# the target genes (ti.GENES = [1, 3]) lie on two different chromosomes; gene 0 on none
GENE_CHROM = torch.tensor([-1, 1, 0, 2])


def _loco(gene_chrom: torch.Tensor = GENE_CHROM, heads: CisConfig | None = None) -> LocoSurrogate:
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    chrom = torch.from_numpy(np.sort(rng.integers(0, ti.N_CHROM, ti.N_PEAKS)))
    cfg = SurrogateConfig(ti.N_PEAKS, ti.N_GENES, ti.N_CHROM, emb_dim=8, chrom_hidden=8,
                          n_latent=8, hidden=16, chrom_norm="center")  # fmt: skip
    gene = np.repeat(np.arange(ti.N_GENES), 12)
    peak = np.concatenate([np.arange(12) * 7 + 40 * g for g in range(ti.N_GENES)])
    module = LocoSurrogate(cfg, heads or CisConfig(4, 4, 8), chrom, gene_chrom,
                           torch.from_numpy(gene), torch.from_numpy(peak))  # fmt: skip
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
        module.cis.b2.add_(3.0)
    return module.eval()


@pytest.fixture(scope="module")
def model():
    return _loco()


def _predict(module, x, genes) -> np.ndarray:
    enc = module.atac_encoder
    with torch.no_grad():
        return module(make_batch(x, enc.peak_chrom.numpy(), enc.n_chrom), genes).numpy()


def test_state_cannot_see_the_genes_own_chromosome(model):
    """Changing peaks of a gene's chromosome outside its window leaves its prediction as it
    is; changing another chromosome's peaks moves it (through the state).
    """
    x = ti._x(5)
    chrom = model.atac_encoder.peak_chrom.numpy()
    window = set(model.cis.pair_peak[model.cis.pair_gene == 1].tolist())
    own = [j for j in np.flatnonzero(chrom == 1) if j not in window]
    other = np.flatnonzero(chrom == 0)
    genes = torch.tensor([1])
    before = _predict(model, x, genes)
    for peaks, moved in ((own, False), (other, True)):
        xx = sp.lil_matrix(x)
        xx[:, np.asarray(peaks)] = 1.0
        after = _predict(model, sp.csr_matrix(xx), genes)
        assert np.allclose(after, before, atol=1e-6) != moved
    # a gene whose chromosome has no peaks reads the full latent
    inc = model.incremental(x, np.array([0, 1]))
    np.testing.assert_allclose(
        inc.expression(inc.initial()).detach().numpy(),
        _predict(model, x, torch.tensor([0, 1])),
        atol=2e-5,
    )


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_moves_on_the_genes_own_chromosome_run_its_head_alone(p):
    """A move of peaks on the target gene's own chromosome leaves its state as it is, so it
    is evaluated through the head alone; the result equals a full forward pass, and moves
    touching another chromosome (or genes of several chromosomes) take the general path.
    """
    module = _loco(torch.tensor([-1, 0, 0, 2]))  # gene 1 on chromosome 0, with its window
    x = ti._x(3)
    genes = np.array([1])
    inc = module.incremental(x, genes, p)
    window = inc.interacting_features()
    assert (module.atac_encoder.peak_chrom[window] == 0).all()
    assert inc.own_chrom == 0 and inc.heads_only(window[None])
    sel = window[torch.tensor([0, 3, 5, 8])]
    state = inc.perturbed(sel)
    with torch.no_grad():
        y = inc.expression(state).numpy()
    np.testing.assert_allclose(y, ti._full(module, x, sel.tolist(), p, genes), atol=2e-5)
    free = window[torch.tensor([1, 2, 4, 6])]
    other = torch.nonzero(module.atac_encoder.peak_chrom == 1).squeeze(1)[:1]
    pairs = torch.tensor([[0, 1], [2, 3]])
    for restore, perturb, heads in (
        (sel[torch.tensor([[0], [3]])], free[torch.tensor([[0], [2]])], True),
        (sel[pairs], free[pairs], True),
        (sel[torch.tensor([[0], [1]])], torch.stack([free[3:], other]), False),
    ):
        assert inc.heads_only(torch.cat([restore, perturb], 1)) == heads
        got = inc.move_expression(state, restore, perturb).numpy()
        for m in range(len(restore)):
            after = set(sel.tolist()) - set(restore[m].tolist()) | set(perturb[m].tolist())
            np.testing.assert_allclose(
                got[m], ti._full(module, x, sorted(after), p, genes), atol=2e-5
            )
    assert module.incremental(x, np.array([1, 3]), p).own_chrom is None
    assert inc.for_genes(np.array([3])).own_chrom == 2

    # the first-order scores of the window peaks alone, through the head alone, equal those
    # of every peak through the whole model (the state's part is zero on its own chromosome)
    def objective(y, cell_dim=-2):
        return y.mean((cell_dim, -1))

    full = inc.first_order(state, objective)
    inc.score_only(window)
    heads = inc.first_order(state, objective)
    np.testing.assert_allclose(heads[window].numpy(), full[window].numpy(), atol=1e-6)
    assert torch.isnan(heads[other]).all()
    assert not torch.allclose(full[window], torch.zeros(len(window)))


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_loco_pair_effects_equal_full_evaluation(p):
    """With the window peaks out of the state, the heads' pair effects are exact."""
    ti.assert_head_pair_effects_exact(_loco(), p)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_single_swaps_are_read_from_exact_pair_effects(p, monkeypatch):
    """A search of a LOCO gene's own window reads its single swaps from the heads' pair
    effects, which are exact there as they are (no blinding of the encoder: the state leaves
    the gene's chromosome out); the problem says so only for peaks of that chromosome, and
    the search takes the steps it takes when it evaluates every swap, with fewer
    evaluations.
    """
    module = _loco(torch.tensor([-1, 0, 0, 2]))  # gene 1 on chromosome 0, with its window
    x = ti._x(3)
    prob = EmbeddingSumProblem(module, x, [1], p)
    window = prob.interacting_features()
    other = torch.nonzero(module.atac_encoder.peak_chrom == 1).squeeze(1)[:1]
    assert prob.exact_pair_effects(window)
    assert not prob.exact_pair_effects(torch.cat([window, other]))
    assert not EmbeddingSumProblem(ti._model("cis"), x, ti.GENES, p).exact_pair_effects(window)
    sel = window[:3]
    feats = torch.cat([window[3:9], sel])
    signs = torch.tensor([1.0] * 6 + [-1.0] * 3)
    ti.assert_pair_effects_exact(prob.pair_effects(sel, feats, signs).numpy(), prob, sel, feats)

    cand = torch.zeros(prob.n_features, dtype=torch.bool)
    cand[window] = True
    calls = []

    def search():
        calls.clear()
        one = EmbeddingSumProblem(module, x, [1], p)
        evaluate = one.move_values
        one.move_values = lambda *a: calls.append(len(a[2])) or evaluate(*a)
        return run_search(one, 4, candidates=cand, moves="pair", restarts=3)

    got, n_read = search(), sum(calls)
    monkeypatch.setattr(EmbeddingSumProblem, "exact_pair_effects", lambda self, f: False)
    ref, n_evaluated = search(), sum(calls)
    assert np.array_equal(got.selection, ref.selection)
    for a, b in zip(got.traces, ref.traces):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert n_read < n_evaluated


@pytest.fixture(scope="module")
def redundant():
    """The redundant regime (3 OR pairs and 3 decoys per gene) with a LOCO surrogate."""
    m = grids.datasets.synthetic_multiome(
        n_cells=3000, n_peaks=1500, n_genes=12, seed=1, **grids.datasets.REDUNDANT
    )
    grids.tl.fit_surrogate(m, model="loco", seed=0, progress=False)
    return m


def test_loco_record_roundtrip(redundant, tmp_path):
    m = redundant
    entry = m.uns["grids"]["surrogates"]["surrogate"]
    assert entry["model"] == "loco" and entry["config"]["cis"]["max_peaks"] == 16
    assert set(entry["history"]) == {"loco", "cis"}
    module = grids.tl.get_surrogate(m).module
    assert isinstance(module, LocoSurrogate)
    chroms = np.asarray(entry["config"]["data"]["chroms"]).astype(str)
    assert (chroms[module.gene_chrom.numpy()] == m["rna"].var["chrom"].to_numpy()).all()
    path = tmp_path / "loco.h5mu"
    m.write(path)
    back = mudata.read_h5mu(path)
    grids.tl.predict_expression(m, layer_added="pred")
    grids.tl.predict_expression(back, layer_added="pred")
    np.testing.assert_allclose(back["rna"].layers["pred"], m["rna"].layers["pred"], atol=1e-6)


def test_loco_learns_or_logic(redundant):
    m = redundant.copy()
    fid = grids.tl.surrogate_fidelity(m)
    table = grids.tl.interventional_fidelity(m)
    summary = m.uns["grids"]["interventional"]["surrogate"]["summary"]
    assert fid["pearson_surrogate"].median() > fid["pearson_ridge"].median()
    assert 0.8 <= summary["slope"] <= 1.2
    # an additive model gives an OR ratio of about 1 (truth here 2.24)
    assert abs(summary["pred_ratio_or"] / summary["true_ratio_or"] - 1) < 0.25
    assert (table["logic"] == "or").sum() == 36


@pytest.fixture(scope="module")
def confounded():
    """The confounded regime (a continuous cell state opens peaks on every chromosome and
    drives 30% of the genes), small, on four chromosomes, with a LOCO surrogate.
    """
    m = grids.datasets.synthetic_multiome(
        n_cells=800, n_peaks=800, n_genes=12, n_chromosomes=4, seed=3,
        **grids.datasets.CONFOUNDED,
    )  # fmt: skip
    grids.tl.fit_surrogate(m, model="loco", seed=0, progress=False)
    return m


def test_loco_state_reads_the_cell_state_from_other_chromosomes(confounded):
    """The state's two phases ran (the RNA autoencoder's validation loss fell); the state
    alone, from the chromosomes other than the gene's, predicts held-out expression (cell
    type and the simulated continuous state), follows the continuous state with the sign of
    its effect on every gene it drives, and the heads add the gene's own window to it.
    """
    from grids_sc._inputs import atac_binary, rna_values
    from grids_sc.model import loco_cell_state
    from grids_sc.tl._ridge import pearson_per_column

    m = confounded
    f = grids.tl.get_surrogate(m)
    hist = f.entry["history"]["loco"]
    assert len(hist["rna_val"]) >= 2 and min(hist["rna_val"]) < hist["rna_val"][0]
    assert len(hist["val"]) >= 2
    pos = {c: i for i, c in enumerate(m["rna"].obs_names)}
    te = np.array([pos[c] for c in f.split["test"]])
    x = atac_binary(m["atac"], None, "atac")
    y, _ = rna_values(m["rna"], None, f.rna_transform, "rna")
    state = loco_cell_state(f.module, x[te], torch.device("cpu"))[1].numpy()
    r_state = pearson_per_column(state, y[te])
    r_full = grids.tl.surrogate_fidelity(m)["pearson_surrogate"].to_numpy()
    u = np.repeat(m.obs["state"].to_numpy()[te, None], y.shape[1], 1)
    b = m["rna"].var["state_effect"].to_numpy()
    r_u = pearson_per_column(state, u)
    assert np.median(r_state) > 0.2
    assert np.median(r_full) > np.median(r_state) + 0.05
    assert (np.sign(r_u[b != 0]) == np.sign(b[b != 0])).all()


def test_loco_heads_with_signal_are_kept(redundant):
    """Every gene of the redundant regime has planted OR pairs in its window: under the
    default keep rule (``"shrink"``) every head is kept, whole where its cross-fitted
    validation gain is above the margin, else scaled by its cross-fitted scale but at least
    the floor (on this seed one weak gene's head gains less than 1% on the validation cells
    and nothing on the half that did not pick its epoch), and none is silent.
    """
    from grids_sc.tl._surrogate import LOCO_KEEP_MARGIN, LOCO_KEEP_RULE, LOCO_SHRINK_FLOOR

    f = grids.tl.get_surrogate(redundant)
    hist = f.entry["history"]["cis"]
    assert f.entry["config"]["cis"]["training"]["keep_rule"] == LOCO_KEEP_RULE == "shrink"
    kept = np.asarray(hist["best_epoch"]) >= 0
    assert kept.all() and not f.module.cis.silent().any()
    scale, gain = np.asarray(hist["head_scale"]), np.asarray(hist["crossfit_gain"])
    alpha = np.asarray(hist["crossfit_alpha"])
    whole = gain > LOCO_KEEP_MARGIN
    assert whole.sum() >= 10 and (scale[whole] == 1).all()
    np.testing.assert_allclose(scale[~whole], np.clip(alpha[~whole], LOCO_SHRINK_FLOOR, 1))
    assert (np.asarray(hist["best_val"]) < np.asarray(hist["silent_val"])).all()


def test_keep_margin_silences_heads_that_fit_noise():
    """On expression that the peaks do not drive, a head beats the state alone on the
    validation cells only by fitting noise: with a keep margin every head goes back to
    silent and the prediction is the state's plus a constant; with none, some are kept.
    """
    from grids_sc.model import CisTrainConfig, fit_cis_heads, loco_cell_state

    x = ti._x(3, 0.3)
    x = sp.csr_matrix(sp.vstack([x] * 5))  # 300 cells
    y = np.random.default_rng(0).gamma(2.0, 1.0, (x.shape[0], ti.N_GENES)).astype(np.float32)
    tr, va = np.arange(200), np.arange(200, 300)
    kept = {}
    for margin in (0.0, 0.5):
        module = _loco()
        cfg = CisTrainConfig(max_epochs=15, patience=15, keep_margin=margin)
        hist = fit_cis_heads(module, x, y, tr, va, cfg, progress=False)
        kept[margin] = int((hist["best_epoch"] >= 0).sum())
        silent = module.cis.silent().numpy()
        assert (silent == (hist["best_epoch"] < 0)).all()
        assert (hist["best_val"] <= hist["silent_val"] + 1e-6).all()
    assert kept[0.0] > 0 and kept[0.5] == 0
    # all silent: the prediction is the state's plus each gene's constant
    r = loco_cell_state(module, x, torch.device("cpu"))[1]
    full = _predict(module, x, None)
    np.testing.assert_allclose(full, (r + module.cis.b2.detach()).clamp(min=0), atol=1e-5)


def test_explain_warns_for_a_silent_head(redundant):
    """A gene whose head is silent gets a warning from ``explain``, and its window's peaks
    move its prediction by nothing.
    """
    m = redundant.copy()
    weights = m.uns["grids"]["surrogates"]["surrogate"]["weights"]
    g = 2
    for k in ("cis__w2", "cis__lin"):
        weights[k] = np.asarray(weights[k]).copy()
        weights[k][g] = 0.0
    gene = m["rna"].var_names[g]
    with pytest.warns(UserWarning, match="no cis head"):
        grids.tl.explain(m, gene, L=2, window=250_000, n_steps=2, progress=False, key_added="e")
    delta = m.uns["grids"]["explain"]["e"]["delta"]
    assert abs(delta["rel_of_means_train"]) < 1e-6 and abs(delta["rel_of_means_test"]) < 1e-6


FIXTURE = Path(__file__).parent / "data" / "loco_976601a"


def test_loco_fit_before_the_keep_margin_loads_and_predicts_identically(tmp_path):
    """A LOCO surrogate written at commit 976601a (``data/loco_976601a/make_loco.py``) reads
    back into the same predictions and explain table; its heads that never beat the silent
    start (best epoch -1) are the ones :meth:`~grids_sc.model.LocoHeads.silent` reports.
    """
    import shutil

    import pandas as pd

    path = tmp_path / "loco.h5mu"
    shutil.copy(FIXTURE / "loco.h5mu", path)
    old = mudata.read_h5mu(path)
    ref = np.load(FIXTURE / "loco_predictions.npz")["pred"]
    out = grids.tl.predict_expression(old, copy=True, device="cpu")
    np.testing.assert_allclose(out["rna"].layers["grids_predicted"], ref, rtol=1e-6, atol=1e-6)
    key = next(iter(old.uns["grids"]["explain"]))
    table = pd.read_csv(FIXTURE / "loco_explain_df.csv")
    got = pd.read_csv(io.StringIO(grids.get.explain_df(old, key).to_csv(index=False)))
    pd.testing.assert_frame_equal(got[table.columns], table)
    f = grids.tl.get_surrogate(old)
    best = np.asarray(f.entry["history"]["cis"]["best_epoch"])
    assert (f.module.cis.silent().numpy() == (best < 0)).all()


@pytest.fixture(scope="module")
def planted_heads():
    """Expression of the state plus, for genes 0 and 1, effects of two window peaks each
    (an OR pair), for genes 2 and 3 noise only; heads fit under each keep rule (margin 0).
    """
    from grids_sc.model import CisTrainConfig, fit_cis_heads, loco_cell_state

    x = sp.csr_matrix(sp.vstack([ti._x(s) for s in range(10)]))  # 600 distinct cells
    module = _loco()
    r = loco_cell_state(module, x, torch.device("cpu"))[1].numpy()
    rng = np.random.default_rng(0)
    y = r + 3.0 + rng.normal(0.0, 0.5, r.shape)
    for g in (0, 1):
        a, b = (x[:, int(p)].toarray()[:, 0] for p in module.cis.pair_peak[[12 * g, 12 * g + 5]])
        y[:, g] += 1.5 * np.maximum(a, b)
    tr, va = np.arange(400), np.arange(400, 600)
    fits = {}
    for rule in ("validation", "crossfit", "shrink"):
        module = _loco()
        cfg = CisTrainConfig(max_epochs=20, patience=20, keep_margin=0.0, keep_rule=rule)
        hist = fit_cis_heads(module, x, y.astype(np.float32), tr, va, cfg, progress=False)
        fits[rule] = (module, hist)
    silent = r + (y[tr] - r[tr]).mean(0)  # the silent start's prediction
    return x, silent, fits


def test_crossfit_rule_keeps_planted_heads_and_scores_noise_without_selection_bias(
    planted_heads,
):
    """The cross-fitted gain (each validation half picks a head's best epoch, the other half
    scores it) is large for the planted genes and at most about zero for the noise genes,
    whose heads beat the silent start on the validation cells that picked their epoch. The
    rules change only which heads are kept or how much of them: the training is the same.
    """
    _, _, fits = planted_heads
    _, hv = fits["validation"]
    for rule in ("crossfit", "shrink"):
        _, h = fits[rule]
        np.testing.assert_array_equal(h["val"], hv["val"])
        np.testing.assert_allclose(h["crossfit_gain"], hv["crossfit_gain"])
    gain, naive = hv["crossfit_gain"], 1 - hv["best_val"] / hv["silent_val"]
    assert (gain[:2] > 0.05).all() and (hv["crossfit_alpha"][:2] > 0.8).all()
    assert (gain[2:] <= 0).all()
    assert (naive[2:] > 0).any()  # the biased comparison keeps a noise gene's head
    module, h = fits["crossfit"]
    kept = h["best_epoch"] >= 0
    assert kept[:2].all() and (module.cis.silent().numpy() == ~kept).all()
    assert (kept == (gain > 0)).all()


def test_shrink_rule_scales_weak_heads_by_their_crossfit_scale(planted_heads):
    """Under ``keep_rule="shrink"`` a head below the margin is its trained head scaled by its
    cross-fitted scale (clipped to [0, 1]) as a change from the silent start: the prediction
    is the silent start's plus that fraction of the full head's change.
    """
    x, silent, fits = planted_heads
    full_mod, _ = fits["validation"]
    mod, h = fits["shrink"]
    scale = h["head_scale"]
    gain, alpha = h["crossfit_gain"], h["crossfit_alpha"]
    np.testing.assert_allclose(scale, np.where(gain > 0, 1.0, np.clip(alpha, 0, 1)))
    assert (scale[:2] == 1).all() and (scale[2:] < 1).any()
    enc = mod.atac_encoder
    b = make_batch(x, enc.peak_chrom.numpy(), enc.n_chrom)
    with torch.no_grad():
        full, got = full_mod(b, clamp=False).numpy(), mod(b, clamp=False).numpy()
    np.testing.assert_allclose(got, silent + scale * (full - silent), rtol=1e-4, atol=1e-4)
    assert (mod.cis.silent().numpy() == (scale == 0)).all()
