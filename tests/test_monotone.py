"""Monotone cis heads (``fit_surrogate(cis_monotone=True)``, ``CisConfig(monotone=1)``): the
incremental interface stays exact (the checks of ``tests/test_incremental.py`` on a monotone
cis and a monotone LOCO model), a LOCO gene's prediction moves in one direction per window
peak from any cell, also far from the data, fitting keeps the constraint, and the setting
survives a record round trip.
"""

import mudata
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import grids_sc as grids
import test_incremental as ti
import test_loco
from grids_sc.model import (
    CisConfig,
    LocoSurrogate,
    make_batch,
)
from test_incremental import (  # noqa: F401  (collected here with this module's `model`)
    test_first_order_is_gradient_times_change,
    test_moves_equal_full_evaluation,
    test_scores_of_the_candidates_alone_equal_every_peaks,
    test_single_peak_moves_equal_set_values,
    test_sparse_moves_equal_full_evaluation,
    test_state_plus_change_equals_full_reencode,
)

GENE_CHROM = torch.tensor([-1, 1, 0, 2])


def _monotone(kind: str, gene_chrom: torch.Tensor = GENE_CHROM) -> torch.nn.Module:
    """A monotone cis or LOCO surrogate with random weights large enough to be nonlinear
    (the models of ``test_incremental`` and ``test_loco`` with monotone heads).
    """
    heads = CisConfig(4, 4, 8, monotone=1)
    module = test_loco._loco(gene_chrom, heads) if kind == "loco" else ti._model("cis", heads)
    with torch.no_grad():
        module.cis.w2.mul_(3.0)
    module.cis.project_()
    return module.eval()


@pytest.fixture(scope="module", params=["cis", "loco"])
def model(request):
    return _monotone(request.param)


@pytest.mark.parametrize("kind", ["cis", "loco"])
def test_pair_effects_equal_full_evaluation(kind):
    """The heads' exact pair effects (from their hidden pre-activations) equal full
    evaluations, the shared encoder made blind to the window peaks so that the heads are
    their only path.
    """
    module = _monotone(kind)
    for p in (0.0, 1.0):
        ti.assert_head_pair_effects_exact(module, p)


def test_loco_moves_of_the_window_run_the_head_alone_and_exactly():
    """LOCO moves of a gene's own window peaks (evaluated through its head alone, from its
    hidden pre-activations) equal full forward passes.
    """
    module = _monotone("loco", torch.tensor([-1, 0, 0, 2]))
    x = ti._x(3)
    genes = np.array([1])
    for p in (0.0, 1.0):
        inc = module.incremental(x, genes, p)
        window = inc.interacting_features()
        sel = window[torch.tensor([0, 3, 5, 8])]
        free = window[torch.tensor([1, 2, 4, 6])]
        state = inc.perturbed(sel)
        restore, perturb = sel[torch.tensor([[0, 1], [2, 3]])], free[torch.tensor([[0, 1], [2, 3]])]
        assert inc.heads_only(torch.cat([restore, perturb], 1))
        got = inc.move_expression(state, restore, perturb).numpy()
        for m in range(len(restore)):
            after = set(sel.tolist()) - set(restore[m].tolist()) | set(perturb[m].tolist())
            np.testing.assert_allclose(
                got[m], ti._full(module, x, sorted(after), p, genes), atol=2e-5
            )


def _constraint_holds(cis) -> bool:
    c = cis.config.cis_dim
    one_sign = ((cis.emb >= 0).all(1) | (cis.emb <= 0).all(1)).all()
    return bool(one_sign and (cis.w1[..., :c] >= 0).all() and (cis.w2 >= 0).all())


def _predict(module, x, genes) -> np.ndarray:
    enc = module.atac_encoder
    with torch.no_grad():
        return module(make_batch(x, enc.peak_chrom.numpy(), enc.n_chrom), genes).numpy()


def test_projection_puts_every_peak_on_one_direction():
    module = _monotone("loco")
    cis = module.cis
    assert cis.monotone and _constraint_holds(cis)
    with torch.no_grad():
        cis.emb.add_(torch.randn_like(cis.emb))
        cis.w2.sub_(1.0)
    assert not _constraint_holds(cis)
    before = cis.emb.detach().clone()
    cis.project_()
    assert _constraint_holds(cis)
    # each embedding keeps its longer part (the nearer orthant) unchanged
    kept = cis.emb != 0
    assert torch.equal(cis.emb[kept], before[kept])
    # an unconstrained head is left alone
    free = ti._model("cis").cis
    w = free.w2.detach().clone()
    free.project_()
    assert torch.equal(free.w2, w) and not free.monotone


@pytest.mark.parametrize("density", [0.3, 0.9])
def test_loco_gene_moves_one_way_per_window_peak_from_any_cell(density):
    """Closing a window peak changes a LOCO gene's prediction in that peak's direction (its
    embedding's sign) in every cell, also in dense random cells that no data would show; an
    unconstrained head turns over for some peak and cell.
    """
    x = ti._x(3, density=density)
    genes = torch.tensor([1, 3])
    own = torch.tensor([-1, 0, 1, 0])  # the target genes on the chromosome of their windows
    for monotone in (True, False):
        module = _monotone("loco", own) if monotone else _free_loco(own)
        y_open = _predict(module, _set(x, None, 1.0), genes)
        turned = 0
        chrom = module.atac_encoder.peak_chrom
        for t, g in enumerate(genes.tolist()):
            sel = module.cis.pair_gene == g
            assert (chrom[module.cis.pair_peak[sel]] == own[g]).all()
            for peak, emb in zip(module.cis.pair_peak[sel].tolist(), module.cis.emb[sel]):
                direction = float(torch.sign(emb.detach().sum()))
                base = _predict(module, x, genes)[:, t]
                closed = _predict(module, _set(x, peak, 0.0), genes)[:, t]
                opened = _predict(module, _set(x, peak, 1.0), genes)[:, t]
                change = (opened - closed) * (direction if monotone else 1.0)
                if monotone:
                    assert (change >= -1e-6).all(), (g, peak)
                else:
                    turned += int((change > 1e-6).any() and (change < -1e-6).any())
                assert np.isfinite(base).all()
        if not monotone:
            assert turned > 0
        assert np.isfinite(y_open).all()


def _free_loco(gene_chrom: torch.Tensor) -> LocoSurrogate:
    return test_loco._loco(gene_chrom)


def _set(x: sp.csr_matrix, peak: int | None, value: float) -> sp.csr_matrix:
    x = sp.lil_matrix(x, copy=True)
    if peak is not None:
        x[:, peak] = value
    x = sp.csr_matrix(x)
    x.eliminate_zeros()
    return x


@pytest.fixture(scope="module")
def fitted():
    """A monotone LOCO surrogate of the confounded regime, whose single units are
    repressive (opening lowers the gene) in 30% of cases.
    """
    m = grids.datasets.synthetic_multiome(
        n_cells=1500, n_peaks=600, n_genes=8, seed=2, **grids.datasets.CONFOUNDED
    )
    grids.tl.fit_surrogate(m, model="loco", cis_monotone=True, seed=0, progress=False)
    return m


def test_each_planted_single_peak_gets_its_true_direction(fitted):
    """The heads learn each CRE's direction, activating and repressive alike."""
    m = fitted
    units = m.uns["simulation"]["units"]
    logic = np.asarray(units["logic"]).astype(str)
    effect = np.asarray(units["effect"], dtype=float)
    gene = np.asarray(units["gene"]).astype(str)
    peak = np.asarray(units["peak_a"]).astype(str)
    module = grids.tl.get_surrogate(m).module
    cis = module.cis
    genes = m["rna"].var_names.to_numpy().astype(str)
    peaks = m["atac"].var_names.to_numpy().astype(str)
    head = {
        (genes[g], peaks[j]): float(e.sum())
        for g, j, e in zip(cis.pair_gene.tolist(), cis.pair_peak.tolist(), cis.emb.detach())
    }
    rows = [
        (np.sign(effect[i]), np.sign(head[gene[i], peak[i]]))
        for i in np.flatnonzero(logic == "single")
        if (gene[i], peak[i]) in head and head[gene[i], peak[i]] != 0
    ]
    truth, learnt = np.array(rows).T
    assert (truth < 0).sum() >= 2 and (truth > 0).sum() >= 4
    assert (truth == learnt).mean() >= 0.9


def test_fit_keeps_the_heads_monotone_and_records_it(fitted, tmp_path):
    m = fitted
    entry = m.uns["grids"]["surrogates"]["surrogate"]
    assert entry["params"]["cis_monotone"] is True
    assert int(entry["config"]["architecture"]["loco"]["monotone"]) == 1
    module = grids.tl.get_surrogate(m).module
    assert module.cis.monotone and _constraint_holds(module.cis)
    path = tmp_path / "mono.h5mu"
    m.write(path)
    back = mudata.read_h5mu(path)
    assert grids.tl.get_surrogate(back).module.cis.monotone
    grids.tl.predict_expression(m, layer_added="pred")
    grids.tl.predict_expression(back, layer_added="pred")
    np.testing.assert_allclose(back["rna"].layers["pred"], m["rna"].layers["pred"], atol=1e-6)


def test_monotone_heads_need_a_model_with_heads():
    m = grids.datasets.synthetic_multiome(n_cells=300, n_peaks=100, n_genes=2, seed=0)
    before = set(m.uns.get("grids", {}).get("surrogates", {}))
    with pytest.raises(ValueError, match="cis_monotone=True.*model='grids' has none"):
        grids.tl.fit_surrogate(m, model="grids", cis_monotone=True, progress=False)
    assert set(m.uns.get("grids", {}).get("surrogates", {})) == before


def test_heads_without_the_setting_load_unconstrained():
    """Records written before the setting (no ``monotone`` key) read back as gelu heads."""
    cfg = CisConfig.from_dict({"cis_dim": 4, "state_dim": 4, "cis_hidden": 8})
    assert cfg.monotone == 0
    assert CisConfig.from_dict(CisConfig(monotone=1).to_dict()).monotone == 1
