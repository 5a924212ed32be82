"""Slots the search's cells cannot tell apart: refilled by the features' gradients."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import grids_sc as grids
from grids_sc._inputs import atac_binary
from grids_sc.search import DenseModelProblem, EmbeddingSumProblem, run_search


def test_dead_slots_take_the_features_whose_gradient_moves_the_score_most():
    # a linear score: closing feature j lowers it by w_j in every sample where j is 1;
    # features 4-9 are 0 in every sample, so closing any of them moves nothing here
    torch.manual_seed(0)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.1, 0.2, 5.0, 0.3, 4.0, 0.4])
    x = (torch.rand(40, 10) < 0.6).float()
    x[:, 4:] = 0.0
    x[0, :4] = 1.0  # every movable feature moves somewhere
    lin = torch.nn.Linear(10, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w[None, :])
    prob = DenseModelProblem(lin, x, lambda v: lin(v).squeeze(-1), perturb_value=0.0)
    assert prob.movable(torch.arange(10)).tolist() == [True] * 4 + [False] * 6
    assert torch.allclose(prob.tie_scores(), -w, atol=1e-5)  # closing where open: -w_j
    start = torch.tensor([0, 1, 2, 3, 4, 5])  # the two weakest dead features
    res = run_search(prob, 6, init=start, n_steps=20)
    assert sorted(res.selection.tolist()) == [0, 1, 2, 3, 6, 8]
    # the movable features first (by their first-order score), then the dead by their gradient
    assert set(res.selection[:4].tolist()) == {0, 1, 2, 3}
    assert res.selection[4:].tolist() == [6, 8]
    assert res.value == pytest.approx(prob.value(start), abs=1e-6)
    assert res.value == pytest.approx(prob.value(torch.as_tensor(res.selection)), abs=1e-6)


@pytest.mark.parametrize("perturb", [0.0, 1.0])
def test_movable_and_tie_scores_of_the_surrogate_problem(fitted, perturb):
    f = grids.tl.get_surrogate(fitted)
    x = sp.csr_matrix(atac_binary(fitted["atac"], None, "atac")[:200], dtype=np.float32)
    x = x.tolil()
    x[:, 10:20] = 1.0 - perturb  # every cell at the other value: all movable
    x[:, 20:30] = perturb  # every cell already at the perturbed value: none movable
    x = sp.csr_matrix(x)
    prob = EmbeddingSumProblem(f.module, x, np.array([0]), perturb_value=perturb)
    feats = torch.arange(x.shape[1])
    moves = prob.movable(feats).numpy()
    dense = x.toarray()
    assert np.array_equal(moves, (dense != perturb).any(0))
    assert moves[10:20].all() and not moves[20:30].any()
    # the interface's default (dense columns, a chunk at a time) says the same
    from grids_sc.model import IncrementalSurrogate

    assert np.array_equal(IncrementalSurrogate.movable(prob.model, feats).cpu().numpy(), moves)
    g = prob.input_gradient().cpu()
    assert torch.allclose(prob.tie_scores(), (2 * perturb - 1) * g)


def test_search_on_a_gene_fills_dead_slots_by_tie_score(fitted):
    f = grids.tl.get_surrogate(fitted)
    x = sp.csr_matrix(atac_binary(fitted["atac"], None, "atac")[:200], dtype=np.float32)
    keep = np.zeros(x.shape[1], dtype=np.float32)
    keep[:30] = 1.0  # the other peaks closed in every one of these cells: they cannot move
    x = sp.csr_matrix(x @ sp.diags(keep))
    x.eliminate_zeros()
    prob = EmbeddingSumProblem(f.module, x, np.array([0]))
    movable = np.diff(sp.csc_matrix(x).indptr) > 0
    res = run_search(prob, 40, n_steps=60)
    sel = np.asarray(res.selection)
    assert (~movable[sel]).sum() >= 40 - movable.sum()
    tie = prob.tie_scores().numpy()
    dead_in = sel[~movable[sel]]
    dead_out = np.setdiff1d(np.flatnonzero(~movable), sel)
    assert tie[dead_in].max() <= tie[dead_out].min()
    # the movable selected come first, the dead after them in the order of their scores
    assert movable[sel[: movable[sel].sum()]].all()
    assert np.all(np.diff(tie[sel[movable[sel].sum() :]]) >= 0)
    assert res.value == pytest.approx(prob.value(torch.as_tensor(sel)), abs=1e-6)
