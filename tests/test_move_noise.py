"""A move is kept only when its gain clears the noise of the cells it is measured on."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import grids_sc as grids
from grids_sc._inputs import atac_binary
from grids_sc.search import DenseModelProblem, EmbeddingSumProblem, GridsOptimizer, run_search
from grids_sc.search._optimizer import moves_clear


def _one_cell_problem():
    """A linear score over 100 samples: closing feature 0 lowers every sample by 0.01;
    closing feature 1 lowers the one sample where it is open by 2.0 (mean 0.02: better on
    the mean, but all of it from one sample); features 2-3 are closed everywhere.
    """
    x = torch.zeros(100, 4)
    x[:, 0] = 1.0
    x[7, 1] = 1.0
    lin = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.01, 2.0, 0.0, 0.0]]))
    return DenseModelProblem(lin, x, lambda v: lin(v).squeeze(-1), perturb_value=0.0)


def test_cell_values_average_to_the_objective():
    prob = _one_cell_problem()
    for sel in ([0], [1], [0, 1], [2]):
        s = torch.tensor(sel)
        assert prob.cell_values(s).mean().item() == pytest.approx(prob.value(s), abs=1e-7)


def test_a_gain_from_one_sample_is_not_a_move():
    prob = _one_cell_problem()
    start = torch.tensor([0])
    # the paper's rule: the better mean wins, though one sample carries all of it
    res = run_search(prob, 1, init=start, n_steps=5, moves="single")
    assert res.selection.tolist() == [1]
    # gains per sample: +1.99 in one, -0.01 in 99; mean 0.01, standard error 0.02: z = 0.5
    gain = prob.cell_values(start) - prob.cell_values(torch.tensor([1]))
    assert float(gain.mean() / (gain.std() / 10.0)) == pytest.approx(0.5, abs=0.01)
    assert moves_clear(gain.double(), 0.4) and not moves_clear(gain.double(), 0.6)
    res = run_search(prob, 1, init=start, n_steps=5, moves="single", min_z=1.0)
    assert res.selection.tolist() == [0]
    assert res.value == pytest.approx(prob.value(start), abs=1e-7)
    assert res.steps == [1]  # one step looked, and stopped
    # a move that gains the same in every sample clears any threshold (feature 1 is not a
    # candidate here)
    cand = torch.tensor([True, False, True, True])
    opt = GridsOptimizer([torch.tensor([2])], prob, cand, moves="single", min_z=50.0)
    opt.step()
    assert opt.selection.tolist() == [0]
    assert not opt.converged


def test_a_problem_without_cell_terms_keeps_every_improving_move():
    prob = _one_cell_problem()
    asked = []

    class NoCells(DenseModelProblem):
        def cell_values(self, selection):
            asked.append(1)
            return None

    plain = NoCells(prob.model, prob.x, prob.score)
    res = run_search(plain, 1, init=torch.tensor([0]), n_steps=5, moves="single", min_z=1.0)
    assert res.selection.tolist() == [1]  # as with min_z=0
    assert len(asked) == 1  # asked once, then not again


def test_moves_clear():
    assert moves_clear(torch.full((5,), 0.1, dtype=torch.float64), 100.0)  # no spread
    assert not moves_clear(torch.zeros(5, dtype=torch.float64), 0.0)  # no gain
    assert not moves_clear(torch.tensor([1.0, -1.0, 0.2], dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="min_z"):
        GridsOptimizer([torch.tensor([0])], _one_cell_problem(), min_z=-1.0)


def test_the_surrogate_problem_splits_its_objective_by_cell(fitted):
    f = grids.tl.get_surrogate(fitted)
    x = sp.csr_matrix(atac_binary(fitted["atac"], None, "atac")[:200], dtype=np.float32)
    for sign in (1.0, -1.0):
        prob = EmbeddingSumProblem(f.module, x, np.array([0, 1]), sign=sign)
        for sel in (torch.zeros(0, dtype=torch.long), torch.tensor([3, 11, 40])):
            cells = prob.cell_values(sel)
            assert cells.shape == (200,)
            assert cells.mean().item() == pytest.approx(prob.value(sel), rel=1e-5)


def test_explain_records_the_rule_and_checks_it(fitted):
    gene = fitted["rna"].var_names[0]
    grids.tl.explain(fitted, gene, L=4, key_added="z", progress=False)
    assert fitted.uns["grids"]["explain"]["z"]["settings"]["min_move_z"] == 1.0
    grids.tl.explain(fitted, gene, L=4, key_added="z0", min_move_z=0, progress=False)
    assert fitted.uns["grids"]["explain"]["z0"]["settings"]["min_move_z"] == 0.0
    # scores of peaks that move nothing read 0, not -0
    score = grids.get.explain_df(fitted, "z")["score"].to_numpy()
    assert not (np.signbit(score) & (score == 0)).any()
    with pytest.raises(ValueError, match="min_move_z"):
        grids.tl.explain(fitted, gene, L=4, key_added="bad", min_move_z=-1, progress=False)
    assert "bad" not in fitted.uns["grids"]["explain"]
