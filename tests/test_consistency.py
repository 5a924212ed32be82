"""Sign-consistent heads (``fit_surrogate(cis_consistency=...)``, ``CisTrainConfig.consistency``):
the penalty is zero for a head that is monotone in every window peak and positive for one
whose peak effects turn over; on the redundant regime it removes most of the cases where,
from a cell with all but one of a gene's planted CREs closed, closing the last one raises the
gene (the true effect lowers it); the setting is recorded, has its defaults per model, and
bad values are refused before anything is written.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import grids_sc as grids
import test_incremental as ti
import test_monotone
from grids_sc.model._cis_train import (
    _batch_entries,
    _cell_state,
    _pool_entries,
    _sign_consistency,
    _take,
    window_matrix,
)
from grids_sc.search import EmbeddingSumProblem


def _penalty(module, x: sp.csr_matrix, seed: int = 0) -> float:
    """The penalty of ``module``'s heads on the cells ``x`` (every gene in one batch)."""
    cis = module.cis
    idx = np.arange(x.shape[0])
    entries = _batch_entries(window_matrix(x, cis.pair_peak.numpy()), idx, "cpu")
    with torch.no_grad():
        s = _pool_entries(cis, *entries, len(idx))
        z = _take(module, _cell_state(module, x, "cpu"), torch.from_numpy(idx))
        gen = torch.Generator().manual_seed(seed)
        return float(_sign_consistency(cis, entries, len(idx), s, z, gen))


@pytest.mark.parametrize("kind", ["cis", "loco"])
def test_penalty_is_zero_for_monotone_heads_and_positive_for_free_ones(kind):
    """A monotone head never turns a peak's effect over, so the penalty is exactly zero
    whatever peaks and closings are drawn; the same architecture with free heads, whose
    effects turn over between cells (``tests/test_monotone.py``), is penalised.
    """
    x = ti._x(3, density=0.5)
    monotone = test_monotone._monotone(kind)
    free = (
        test_monotone._free_loco(test_monotone.GENE_CHROM) if kind == "loco" else ti._model("cis")
    )
    for seed in range(5):
        assert _penalty(monotone, x, seed) == 0.0
    assert max(_penalty(free, x, seed) for seed in range(5)) > 1e-3


def _last_cre_reversals(m) -> tuple[int, int]:
    """Over every planted CRE peak of every gene: from the test cells with the gene's other
    planted peaks closed, does closing this one too raise the gene's mean prediction (by more
    than 1e-3)? The truth lowers it (the gene loses its last CRE). Returns (raised, total).
    """
    fs = grids.tl.get_surrogate(m)
    units = m.uns["simulation"]["units"]
    gene = np.asarray(units["gene"]).astype(str)
    pa, pb = (np.asarray(units[k]).astype(str) for k in ("peak_a", "peak_b"))
    peak_pos = pd.Series(np.arange(m["atac"].n_vars), index=m["atac"].var_names)
    cells = pd.Series(np.arange(m.n_obs), index=m["rna"].obs_names)
    rows = np.sort(cells.reindex(fs.split["test"]).to_numpy().astype(int))
    x = sp.csr_matrix(m["atac"].X)[rows]
    gene_pos = {g: i for i, g in enumerate(fs.genes)}
    raised = total = 0
    for g in np.unique(gene):
        planted = [p for u in np.flatnonzero(gene == g) for p in (pa[u], pb[u]) if p]
        idx = torch.as_tensor(peak_pos[planted].to_numpy(), dtype=torch.long)
        prob = EmbeddingSumProblem(fs.module, x, np.array([gene_pos[g]]), 0.0, 1.0)
        y_all = float(prob.per_cell(idx)[1].mean())
        for k in range(len(idx)):
            y_others = float(prob.per_cell(torch.cat([idx[:k], idx[k + 1 :]]))[1].mean())
            raised += y_all - y_others > 1e-3
            total += 1
    return raised, total


def test_consistent_heads_do_not_raise_a_gene_when_its_last_cre_closes():
    """The redundant regime (3 OR pairs per gene open in most cells): free LOCO heads say
    that closing a gene's last open CRE raises it in several cases, a state no cell shows;
    with the penalty (the LOCO default) most of those reversals are gone.
    """
    m = grids.datasets.synthetic_multiome(
        n_cells=1500, n_peaks=600, n_genes=8, seed=1, **grids.datasets.REDUNDANT
    )
    free, consistent = m.copy(), m.copy()
    grids.tl.fit_surrogate(free, model="loco", cis_consistency=0.0, seed=0, progress=False)
    grids.tl.fit_surrogate(consistent, model="loco", seed=0, progress=False)
    raised_free, total = _last_cre_reversals(free)
    raised, total_c = _last_cre_reversals(consistent)
    assert total == total_c == 72  # 8 genes x (3 OR pairs + 3 decoys, single peaks)
    assert raised_free >= 4  # the failure is there to remove
    assert raised <= raised_free // 2


def test_setting_is_recorded_with_its_defaults_and_checked():
    """``None`` means 0.3 for LOCO and 0 for the cis model (whose results stay those of
    files fit before); the weight is stored in the heads' training settings; bad values
    and a model without heads are refused before anything is written.
    """
    m = grids.datasets.synthetic_multiome(n_cells=300, n_peaks=200, n_genes=3, seed=0)
    settings = {}
    for model, value in (("loco", None), ("cis", None), ("cis", 0.5)):
        key = f"{model}_{value}"
        grids.tl.fit_surrogate(m, model=model, cis_consistency=value, max_epochs=2,
                               cis_max_epochs=2, progress=False, key_added=key)  # fmt: skip
        entry = m.uns["grids"]["surrogates"][key]
        settings[key] = float(entry["config"]["cis"]["training"]["consistency"])
    assert settings == {"loco_None": 0.3, "cis_None": 0.0, "cis_0.5": 0.5}
    before = set(m.uns["grids"]["surrogates"])
    for kw in ({"cis_consistency": -1.0}, {"cis_consistency": float("nan")},
               {"model": "grids", "cis_consistency": 0.3}):  # fmt: skip
        with pytest.raises(ValueError, match="cis_consistency"):
            grids.tl.fit_surrogate(m, progress=False, key_added="bad", **kw)
    assert set(m.uns["grids"]["surrogates"]) == before


def test_fits_are_repeatable():
    """The penalty draws from its own seeded generator: the same seed, the same heads."""
    m = grids.datasets.synthetic_multiome(n_cells=300, n_peaks=200, n_genes=3, seed=0)
    heads = []
    for key in ("a", "b"):
        grids.tl.fit_surrogate(m, model="loco", max_epochs=2, cis_max_epochs=5, seed=1,
                               progress=False, key_added=key)  # fmt: skip
        heads.append(grids.tl.get_surrogate(m, key).module.cis.state_dict())
    for name, value in heads[0].items():
        assert torch.equal(value, heads[1][name]), name
