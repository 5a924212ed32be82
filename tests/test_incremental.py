"""The surrogates' incremental-evaluation interface (``module.incremental``), tested directly
against full forward passes, and a third architecture that the search takes unchanged.
"""

import itertools
import pathlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

import grids_sc.model._incremental_sum as incremental_sum
from grids_sc.model import (
    CisConfig,
    CisSurrogate,
    IncrementalModel,
    IncrementalSurrogate,
    Surrogate,
    SurrogateConfig,
    make_batch,
)
from grids_sc.search import EmbeddingSumProblem, GridsOptimizer, run_search
from grids_sc.search._problem import RelativeExpression

N_CELLS, N_PEAKS, N_GENES, N_CHROM = 60, 700, 4, 3
GENES = np.array([1, 3])


def _x(seed: int = 0, density: float = 0.3, n_peaks: int = N_PEAKS) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((N_CELLS, n_peaks)) < density).astype(np.float32))


def assert_pair_effects_exact(e, prob, sel: torch.Tensor, feats: torch.Tensor) -> None:
    """``e[a, b]`` (and ``e[b, a]``) is the exact change of ``prob``'s objective from the
    selection ``sel`` when the states of ``feats[a]`` and ``feats[b]`` are flipped (one feature
    when ``a == b``): an unselected feature perturbed, a selected one restored.
    """
    base = prob.value(sel)
    for a, b in itertools.combinations_with_replacement(range(len(feats)), 2):
        changed = set(sel.tolist())
        for i in {a, b}:
            changed ^= {int(feats[i])}
        exact = prob.value(torch.tensor(sorted(changed))) - base
        assert e[a, b] == pytest.approx(exact, abs=1e-5)
        assert e[b, a] == pytest.approx(exact, abs=1e-5)


def _model(kind: str, heads: CisConfig | None = None) -> torch.nn.Module:
    """A surrogate of either kind with random weights large enough to be nonlinear."""
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    chrom = torch.from_numpy(np.sort(rng.integers(0, N_CHROM, N_PEAKS)))
    norm = "center" if kind == "grids" else "layer"
    cfg = SurrogateConfig(N_PEAKS, N_GENES, N_CHROM, emb_dim=8, chrom_hidden=8, n_latent=8,
                          hidden=16, chrom_norm=norm)  # fmt: skip
    if kind == "grids":
        module = Surrogate(cfg, chrom)
    else:  # each gene's window: 12 peaks, with overlaps between genes
        gene = np.repeat(np.arange(N_GENES), 12)
        peak = np.concatenate([np.arange(12) * 7 + 40 * g for g in range(N_GENES)])
        module = CisSurrogate(cfg, heads or CisConfig(4, 4, 8), chrom, torch.from_numpy(gene),
                              torch.from_numpy(peak))  # fmt: skip
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
        if kind == "grids":
            module.rna_decoder.out.bias.add_(3.0)
        else:
            module.cis.b2.add_(3.0)
    return module.eval()


@pytest.fixture(scope="module", params=["grids", "cis"])
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def model(kind):
    return _model(kind)


def _full(module, x: sp.csr_matrix, peaks, p: float, genes: np.ndarray = GENES) -> np.ndarray:
    """Predicted expression of ``genes`` with ``peaks`` set to ``p``: a full forward pass."""
    x = sp.lil_matrix(x)
    if len(peaks):
        x[:, np.asarray(peaks)] = p
    x = sp.csr_matrix(x)
    x.eliminate_zeros()
    enc = module.atac_encoder
    batch = make_batch(x, enc.peak_chrom.numpy(), enc.n_chrom)
    with torch.no_grad():
        return module(batch, torch.from_numpy(genes)).numpy()


def test_both_kinds_implement_the_interface(model):
    assert isinstance(model, IncrementalModel)
    assert isinstance(model.incremental(_x(), GENES), IncrementalSurrogate)


@pytest.mark.parametrize("p", [0.0, 1.0])
@pytest.mark.parametrize("size", [5, 600])  # the column-wise and the sparse update
def test_state_plus_change_equals_full_reencode(model, p, size):
    x = _x()
    inc = model.incremental(x, GENES, p)
    peaks = np.random.default_rng(size).choice(N_PEAKS, size, replace=False)
    if size == 600:
        assert size > incremental_sum.DENSE_STATE_LIMIT
    state = inc.perturbed(torch.from_numpy(peaks))
    with torch.no_grad():
        got = inc.expression(state).numpy()
        before = inc.expression(inc.initial()).numpy()
    np.testing.assert_allclose(got, _full(model, x, peaks, p), atol=2e-5)
    np.testing.assert_allclose(before, _full(model, x, [], p), atol=2e-5)
    assert not np.allclose(got, before, atol=1e-3)  # the change is visible


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_moves_equal_full_evaluation(model, p):
    """Restore some perturbed peaks and perturb new ones, in one batch of moves (single
    swaps, pairs, pairs on one chromosome, pure additions).
    """
    x = _x(1)
    inc = model.incremental(x, GENES, p)
    sel = np.array([3, 41, 47, 300, 650, 699])
    state = inc.perturbed(torch.from_numpy(sel))
    restore = torch.tensor([[0, 1], [2, 3], [4, 5], [1, 2]])
    perturb = torch.tensor([[4, 48], [54, 61], [640, 660], [5, 6]])
    with torch.no_grad():
        got = inc.move_expression(state, torch.from_numpy(sel)[restore], perturb).numpy()
        added = inc.move_expression(state, torch.zeros(2, 0, dtype=torch.long),
                                    torch.tensor([[10], [88]])).numpy()  # fmt: skip
    for m in range(len(restore)):
        after = set(sel) - set(sel[restore[m].numpy()].tolist()) | set(perturb[m].tolist())
        np.testing.assert_allclose(got[m], _full(model, x, sorted(after), p), atol=2e-5)
    for m, j in enumerate([10, 88]):
        np.testing.assert_allclose(added[m], _full(model, x, [*sel, j], p), atol=2e-5)


def test_sparse_moves_equal_full_evaluation(model, monkeypatch):
    """On sparse accessibility a closing move is evaluated on the cells it changes only;
    the other cells keep the state's prediction exactly, and the result equals both a full
    forward pass and the evaluation over all cells.
    """
    x = _x(2, density=0.04).tolil()
    x[:, 88] = 0  # a peak closed in every cell: closing it changes nothing
    x = sp.csr_matrix(x)
    x.eliminate_zeros()
    inc = model.incremental(x, GENES, 0.0)
    sel = np.array([3, 41, 47, 300, 650, 699])
    state = inc.perturbed(torch.from_numpy(sel))
    restore = torch.from_numpy(sel)[torch.tensor([[0], [2], [4], [1]])]
    perturb = torch.tensor([[4, 48], [54, 61], [640, 660], [88, 6]])
    changed = (x[:, np.r_[restore.numpy().ravel(), perturb.numpy().ravel()]].sum(1) > 0).mean()
    assert changed < 0.5  # the moves change few cells: the sparse evaluation is taken
    with torch.no_grad():
        y = inc.expression(state).numpy()
        got = inc.move_expression(state, restore, perturb).numpy()
        none = inc.move_expression(state, torch.zeros(1, 0, dtype=torch.long),
                                   torch.tensor([[88]])).numpy()  # fmt: skip
        monkeypatch.setattr(incremental_sum, "SPARSE_MOVE_SHARE", -1.0)  # all cells
        dense = inc.move_expression(state, restore, perturb).numpy()
    np.testing.assert_allclose(got, dense, atol=2e-5)
    np.testing.assert_array_equal(none[0], y)
    for m in range(len(restore)):
        after = set(sel) - set(restore[m].tolist()) | set(perturb[m].tolist())
        np.testing.assert_allclose(got[m], _full(model, x, sorted(after), 0.0), atol=2e-5)
        same = np.asarray(x[:, [*restore[m].tolist(), *perturb[m].tolist()]].sum(1)).ravel() == 0
        np.testing.assert_array_equal(got[m][same], y[same])


def test_window_function_equals_full_evaluation(model):
    x = _x(2)
    inc = model.incremental(x, GENES, 0.0)
    feats = torch.tensor([2, 41, 47, 100, 400])
    obs = torch.from_numpy(x[:, feats.numpy()].toarray())
    cells = torch.arange(N_CELLS)
    with torch.no_grad():
        got = inc.window(feats)(cells, torch.zeros_like(obs) - obs).numpy()  # all closed
    np.testing.assert_allclose(got, _full(model, x, feats.numpy(), 0.0), atol=2e-5)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_first_order_is_gradient_times_change(model, p):
    """``d_j`` and the input gradient equal autograd through the dense window function."""
    x = _x(3)
    inc = model.incremental(x, GENES, p)
    feats = torch.arange(0, N_PEAKS, 5)
    obs = torch.from_numpy(x[:, feats.numpy()].toarray())
    with torch.no_grad():
        base = inc.expression(inc.initial()).mean(0)

    def objective(y, cell_dim=-2):
        return -(y.mean(cell_dim) / base).mean(-1)

    du = torch.zeros_like(obs, requires_grad=True)
    (g,) = torch.autograd.grad(objective(inc.window(feats)(torch.arange(N_CELLS), du)), du)
    d = inc.first_order(inc.initial(), objective)[feats]
    np.testing.assert_allclose(d.numpy(), ((p - obs) * g).sum(0).numpy(), rtol=1e-4, atol=1e-7)
    sal = inc.input_gradient(objective)[feats]
    np.testing.assert_allclose(sal.numpy(), g.sum(0).numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_scores_of_the_candidates_alone_equal_every_peaks(model, p):
    """``score_only``: the candidates' first-order scores are those of the product over every
    peak, bit for bit, alone and in ``first_order_many`` (genes with different candidates
    sharing their cells); the other peaks score NaN."""
    x = _x(4)
    full = model.incremental(x, GENES, p)
    objective = RelativeExpression(1.0, full.expression(full.initial()).mean(0).detach())
    sel = torch.tensor([7, 300])
    ref = full.first_order(full.perturbed(sel), objective)
    masks = [np.zeros(N_PEAKS, dtype=bool) for _ in range(2)]
    masks[0][[7, 300, *range(100, 160)]] = True
    masks[1][[7, 300, *range(400, 420), 650]] = True
    alone, items = [], []
    for mask in masks:
        inc = full.for_genes(GENES)
        inc.score_only(np.flatnonzero(mask))
        state = inc.perturbed(sel)
        alone.append(inc.first_order(state, objective))
        items.append((inc, state, objective))
    many = type(full).first_order_many(items)
    for mask, d, dm in zip(masks, alone, many):
        assert torch.equal(d[mask], ref[mask]) and torch.equal(dm[mask], ref[mask])
        assert torch.isnan(d[~mask]).all() and torch.isnan(dm[~mask]).all()
    inc.score_only(None)  # every peak again
    assert torch.equal(inc.first_order(inc.perturbed(sel), objective), ref)


def assert_head_pair_effects_exact(module, p: float) -> None:
    """With the shared encoder of ``module`` (cis heads) made blind to the window peaks, the
    heads are the only path, and their pair effects (perturbing free peaks, restoring
    selected ones) are exact.
    """
    x = _x(4)
    window = module.incremental(x, GENES, p).interacting_features()
    assert len(window)
    with torch.no_grad():
        module.atac_encoder.delta[window] = 0.0
    inc = module.incremental(x, GENES, p)
    prob = EmbeddingSumProblem(module, x, GENES, p)
    sel = window[:3]
    feats = torch.cat([window[3:8], sel[:2]])
    signs = torch.tensor([1.0] * 5 + [-1.0] * 2)
    e = inc.pair_effects(prob._state(sel), feats, signs, prob.objective).numpy()
    assert_pair_effects_exact(e, prob, sel, feats)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_pair_effects_equal_full_evaluation(p):
    """The cis heads' pair effects are exact; the paper's surrogate models no interactions."""
    assert not len(_model("grids").incremental(_x(4), GENES).interacting_features())
    assert_head_pair_effects_exact(_model("cis"), p)


def test_pair_effects_without_interactions_are_first_order():
    module = _model("grids")
    prob = EmbeddingSumProblem(module, _x(), GENES)
    feats, signs = torch.tensor([1, 5, 9]), torch.tensor([1.0, -1.0, 1.0])
    sel = torch.tensor([5, 20])
    d = prob.first_order(sel)[feats] * signs
    e = prob.pair_effects(sel, feats, signs)
    torch.testing.assert_close(e, d[:, None] + d[None, :] - torch.diag(d))


# ---- a third architecture ---------------------------------------------------------------------
class ToyIncremental(IncrementalSurrogate):
    """``y_cg = softplus(b_g + sum_j x_cj W_jg)``, its logits kept as the state."""

    def __init__(self, model, x, genes, perturb_value=0.0, device="cpu"):
        self.device = torch.device(device)
        self.x = torch.from_numpy(sp.csr_matrix(x).toarray().astype(np.float32))
        self.n_cells, self.n_features = self.x.shape
        self.perturb_value = float(perturb_value)
        genes = torch.as_tensor(np.asarray(genes))
        self.w, self.b = model.w[:, genes], model.b[genes]

    def columns(self, peaks):
        cols = (self.perturb_value - self.x[:, peaks.reshape(-1)]).T
        return cols.reshape(*peaks.shape, self.n_cells)

    def initial(self):
        return self.x @ self.w

    def perturbed(self, peaks):
        return self.initial() + self.columns(peaks).T @ self.w[peaks]

    def expression(self, state):
        return F.softplus(state + self.b)

    def move_expression(self, state, restore, perturb):
        peaks = torch.cat([restore, perturb], 1)
        signs = torch.cat([-torch.ones_like(restore), torch.ones_like(perturb)], 1).float()
        change = signs[..., None] * self.columns(peaks)  # [m, q, n]
        return self.expression(state + torch.einsum("mqn,mqt->mnt", change, self.w[peaks]))

    def _grad(self, state, objective):
        state = state.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(objective(self.expression(state)), state)
        return g @ self.w.T  # [n, P]: dObjective/dx_cj

    def first_order(self, state, objective):
        return ((self.perturb_value - self.x) * self._grad(state, objective)).sum(0)

    def input_gradient(self, objective):
        return self._grad(self.initial(), objective).sum(0)

    def window(self, features):
        return lambda cells, du: self.expression(self.initial()[cells] + du @ self.w[features])


class ToyModel:
    """A third surrogate architecture: not an embedding sum, not an ``nn.Module``."""

    def __init__(self, n_peaks: int, n_genes: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.w = torch.rand(n_peaks, n_genes, generator=g) ** 3 * 2
        self.b = torch.full((n_genes,), -1.0)

    def incremental(self, x, genes, perturb_value=0.0, device="cpu"):
        return ToyIncremental(self, x, genes, perturb_value, device)


@pytest.mark.parametrize("moves", ["single", "pair"])
def test_a_third_architecture_is_searched_unchanged(moves):
    toy = ToyModel(12, 2)
    x = sp.csr_matrix((np.random.default_rng(0).random((50, 12)) < 0.6).astype(np.float32))
    assert isinstance(toy, IncrementalModel)
    prob = EmbeddingSumProblem(toy, x, np.array([1]))
    sel = torch.tensor([0, 4, 7])
    vals = prob.move_values(sel, torch.tensor([[0], [2]]), torch.tensor([[3], [11]]))
    assert float(vals[0]) == pytest.approx(prob.value(torch.tensor([3, 4, 7])), abs=1e-6)
    assert float(vals[1]) == pytest.approx(prob.value(torch.tensor([0, 4, 11])), abs=1e-6)
    best = min(prob.value(torch.tensor(c)) for c in itertools.combinations(range(12), 3))
    res = run_search(prob, 3, n_steps=50, restarts=2, moves=moves, init="greedy")
    assert res.value == pytest.approx(best, abs=1e-6)
    opt = GridsOptimizer([torch.tensor([0, 1, 2])], prob, moves=moves)
    for _ in range(20):
        opt.step()
    assert opt.value == pytest.approx(best, abs=1e-6)


def test_the_search_has_no_branch_on_a_model_class():
    """search/ imports no model class, tests no instance against one, reads no internals."""
    import ast

    import grids_sc.model as model_pkg

    classes = {n for n in model_pkg.__all__ if isinstance(getattr(model_pkg, n), type)}
    allowed = {"IncrementalModel", "IncrementalSurrogate", "Objective"}
    src = pathlib.Path(__file__).parents[1] / "src" / "grids_sc" / "search"
    for path in src.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and "model" in node.module:
                assert not {a.name for a in node.names} & (classes - allowed), path
            if isinstance(node, ast.Name):
                assert node.id not in classes - allowed, (path, node.id)
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"atac_encoder", "cis", "enc", "delta", "h0"}, path


@pytest.mark.parametrize("density", [0.04, 0.3])
def test_single_peak_moves_equal_set_values(model, density):
    """A record's per-peak effects (each peak alone; each restored from the full set) are
    exact moves: they equal the values of the sets themselves.
    """
    x = _x(3, density)
    prob = EmbeddingSumProblem(model, x, GENES, 0.0)
    sel = torch.tensor([3, 41, 47, 300, 650])
    none = torch.zeros(len(sel), 0, dtype=torch.long)
    alone = prob.add_values(sel[:0], sel).numpy()
    restored = prob.move_values(sel, torch.arange(len(sel))[:, None], none).numpy()
    ones = prob.move_predictions(sel[:0], none, sel[:, None])
    rests = prob.move_predictions(sel, torch.arange(len(sel))[:, None], none)
    for i in range(len(sel)):
        rest = torch.cat([sel[:i], sel[i + 1 :]])
        assert alone[i] == pytest.approx(prob.value(sel[[i]]), abs=1e-5)
        assert restored[i] == pytest.approx(prob.value(rest), abs=1e-5)
        np.testing.assert_allclose(ones[i], prob.per_cell(sel[[i]])[1], atol=2e-5)
        np.testing.assert_allclose(rests[i], prob.per_cell(rest)[1], atol=2e-5)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_pair_effects_of_a_mean_over_cells_equal_the_general_path(p):
    """An objective that says it is a weighted mean over the cells (``gene_weights``) gets its
    pair effects summed over the cells each pair changes; they equal those of the same
    objective without the weights (every cell evaluated), selected peaks restored included.
    """
    module = _model("cis")
    x = _x(4, density=0.15)
    prob = EmbeddingSumProblem(module, x, GENES, p)
    inc = prob.model
    window = inc.interacting_features()
    sel = window[:3]
    feats = torch.cat([window[3:10], sel])
    signs = torch.tensor([1.0] * 7 + [-1.0] * 3)
    state = prob._state(sel)
    assert hasattr(prob.objective, "gene_weights")
    fast = inc._head_pair_effects(state, feats, signs, prob.objective)
    general = inc._head_pair_effects(state, feats, signs, lambda y, d=-2: prob.objective(y, d))
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-6)


def test_pair_and_window_indices_equal_a_full_scan():
    """The index shortcuts of the heads' pair effects and window tables give what a pass over
    every entry gives: the pairs of features both set in a row (``pairs_in_rows``, in the
    order of a dense ``[row, a, b]`` mask), and a few genes' window pairs read as ranges of
    the gene-sorted pairs (``CisHeads.pairs_of``).
    """
    from grids_sc.model import CisHeads
    from grids_sc.model._cis_incremental import pairs_in_rows

    gen = torch.Generator().manual_seed(0)
    upper = torch.triu(torch.ones(12, 12, dtype=torch.bool), 1)
    for density in (0.0, 0.05, 0.3, 1.0):
        mask = torch.rand(40, 12, generator=gen) < density
        dense = torch.nonzero(mask[:, :, None] & mask[:, None, :] & upper, as_tuple=True)
        rows, cols = torch.nonzero(mask, as_tuple=True)
        for got, want in zip(pairs_in_rows(mask, rows, cols), dense, strict=True):
            assert torch.equal(got, want)

    key = torch.unique(torch.randint(0, 50_000, (400,), generator=gen))
    heads = CisHeads(50, 1000, key // 1000, key % 1000, 8)
    for size in (1, 3, 12, 50):
        genes = torch.randperm(50, generator=gen)[:size]
        pos = torch.full((50,), -1, dtype=torch.long)
        pos[genes] = torch.arange(size)
        local = pos[heads.pair_gene]
        keep = torch.nonzero(local >= 0).squeeze(1)
        got_pairs, got_local = heads.pairs_of(genes)
        assert torch.equal(got_pairs, keep) and torch.equal(got_local, local[keep])
