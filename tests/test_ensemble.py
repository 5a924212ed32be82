"""An ensemble of surrogates (``model/_ensemble.py``): every incremental answer is that of the
mean of the members' predictions, tested against full forward passes of the members.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import test_incremental as ti
from grids_sc.model import (
    CisConfig,
    CisSurrogate,
    IncrementalModel,
    SurrogateConfig,
)
from grids_sc.model._ensemble import EnsembleIncremental, SurrogateEnsemble
from grids_sc.search import EmbeddingSumProblem, run_search

N_CELLS, N_PEAKS, N_GENES, N_CHROM = 60, 500, 3, 3
GENES = np.array([0, 2])


def _x(seed: int = 0) -> sp.csr_matrix:
    return ti._x(seed, n_peaks=N_PEAKS)


def _member(seed: int, blind: bool = False) -> CisSurrogate:
    """A cis surrogate with random weights; members differ in their weights and windows."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(1)
    chrom = torch.from_numpy(np.sort(rng.integers(0, N_CHROM, N_PEAKS)))
    cfg = SurrogateConfig(N_PEAKS, N_GENES, N_CHROM, emb_dim=8, chrom_hidden=8, n_latent=8,
                          hidden=16, chrom_norm="layer")  # fmt: skip
    gene = np.repeat(np.arange(N_GENES), 10)
    peak = np.concatenate([np.arange(10) * 5 + 40 * g + seed for g in range(N_GENES)])
    module = CisSurrogate(cfg, CisConfig(4, 4, 8), chrom, torch.from_numpy(gene),
                          torch.from_numpy(peak))  # fmt: skip
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
        module.cis.b2.add_(3.0)
        if blind:  # the heads are the only path of the window peaks of members 0 and 1
            both = np.concatenate([peak - seed, peak - seed + 1])
            module.atac_encoder.delta[torch.from_numpy(both)] = 0.0
    return module.eval()


@pytest.fixture(scope="module")
def members():
    return [_member(0), _member(1), _member(2)]


def _mean_full(members, x, peaks, p) -> np.ndarray:
    return np.mean([ti._full(m, x, peaks, p, GENES) for m in members], 0)


def test_an_ensemble_is_a_surrogate_the_search_takes(members):
    ens = SurrogateEnsemble(members)
    assert isinstance(ens, IncrementalModel)
    assert isinstance(ens.incremental(_x(), GENES), EnsembleIncremental)
    with pytest.raises(ValueError, match="at least one member"):
        SurrogateEnsemble([])


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_states_moves_and_window_are_the_members_mean(members, p):
    x = _x(1)
    inc = SurrogateEnsemble(members).incremental(x, GENES, p)
    sel = np.array([3, 41, 47, 300, 450])
    state = inc.perturbed(torch.from_numpy(sel))
    restore = torch.tensor([[0, 1], [2, 3]])
    perturb = torch.tensor([[4, 48], [54, 61]])
    with torch.no_grad():
        np.testing.assert_allclose(
            inc.expression(state).numpy(), _mean_full(members, x, sel, p), atol=2e-5
        )
        moved = inc.move_expression(state, torch.from_numpy(sel)[restore], perturb).numpy()
        feats = torch.tensor([2, 41, 47, 100])
        obs = torch.from_numpy(x[:, feats.numpy()].toarray())
        win = inc.window(feats)(torch.arange(N_CELLS), p - obs).numpy()
    for m in range(len(restore)):
        after = set(sel) - set(sel[restore[m].numpy()].tolist()) | set(perturb[m].tolist())
        np.testing.assert_allclose(moved[m], _mean_full(members, x, sorted(after), p), atol=2e-5)
    np.testing.assert_allclose(win, _mean_full(members, x, feats.numpy(), p), atol=2e-5)


def test_first_order_is_the_ensembles_gradient_times_change(members):
    x = _x(3)
    inc = SurrogateEnsemble(members).incremental(x, GENES, 0.0)
    feats = torch.arange(0, N_PEAKS, 3)
    obs = torch.from_numpy(x[:, feats.numpy()].toarray())
    with torch.no_grad():
        base = inc.expression(inc.initial()).mean(0)

    def objective(y, cell_dim=-2):
        return (y.mean(cell_dim) / base).mean(-1)

    du = torch.zeros_like(obs, requires_grad=True)
    (g,) = torch.autograd.grad(objective(inc.window(feats)(torch.arange(N_CELLS), du)), du)
    d = inc.first_order(inc.initial(), objective)[feats]
    np.testing.assert_allclose(d.numpy(), (-obs * g).sum(0).numpy(), rtol=1e-4, atol=1e-7)
    sal = inc.input_gradient(objective)[feats]
    np.testing.assert_allclose(sal.numpy(), g.sum(0).numpy(), rtol=1e-4, atol=1e-7)


def test_pair_effects_are_exact_over_every_members_window():
    """With the encoders blind to the window peaks, the members' heads are the only path:
    the ensemble's pair effects over the union of their windows are exact.
    """
    members = [_member(0, blind=True), _member(1, blind=True)]
    x = _x(4)
    prob = EmbeddingSumProblem(SurrogateEnsemble(members), x, GENES)
    window = prob.interacting_features()
    own = [set(m.incremental(x, GENES).interacting_features().tolist()) for m in members]
    assert set(window.tolist()) == own[0] | own[1] and own[0] != own[1]
    sel = window[:2]
    feats = torch.cat([window[2:7], sel[:1]])
    signs = torch.tensor([1.0] * 5 + [-1.0])
    e = prob.pair_effects(sel, feats, signs).numpy()
    ti.assert_pair_effects_exact(e, prob, sel, feats)


def test_an_ensemble_of_copies_searches_like_its_member(members):
    x = _x(5)
    one = EmbeddingSumProblem(members[0], x, GENES)
    two = EmbeddingSumProblem(SurrogateEnsemble([members[0], members[0]]), x, GENES)
    cand = torch.arange(N_PEAKS) < 150  # the members' windows and some shared-path peaks
    a = run_search(one, 5, candidates=cand, n_steps=10, moves="pair")
    b = run_search(two, 5, candidates=cand, n_steps=10, moves="pair")
    assert sorted(a.selection) == sorted(b.selection)
    assert a.value == pytest.approx(b.value, abs=1e-6)
