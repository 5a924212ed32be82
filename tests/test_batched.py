"""The batched engine (``explain(batched=True)``) finds what the one-task-at-a-time search
finds: the same selected peaks, traces, deltas and columns, for every surrogate kind, both
move kinds, closing and opening, several restarts, several groups and batches, and genes of
several chromosomes in one batch (a LOCO gene's state leaves out its own chromosome).
"""

import warnings

import numpy as np
import pytest
import torch

import grids_sc as grids
from grids_sc._engine import make_batches
from grids_sc._engine._batched import _GROUP_EVALUATORS
from grids_sc.search import EmbeddingSumProblem, run_search
from grids_sc.search._batched import run_searches
from grids_sc.tl._surrogate import get_surrogate

TOL = 1e-6


@pytest.fixture(scope="module")
def sim():
    return grids.datasets.synthetic_multiome(
        n_cells=500, n_peaks=400, n_genes=6, n_celltypes=2, seed=5, n_chromosomes=3
    )


@pytest.fixture(scope="module")
def fits(sim):
    out = {}
    for model in ("cis", "grids", "loco"):
        m = sim.copy()
        grids.tl.fit_surrogate(
            m, model=model, groupby="celltype", max_epochs=4, cis_max_epochs=15,
            progress=False, seed=0,
        )  # fmt: skip
        out[model] = m
    return out


def _explain(m, batched, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = grids.tl.explain(
            m, list(m["rna"].var_names), L=4, groupby="celltype", restarts=2, n_steps=40,
            progress=False, copy=True, batched=batched, batch_size=4, **kw,
        )  # fmt: skip
    # the evaluators a group's batches shared (two batches of 4 and 2 tasks here) are let go
    assert not _GROUP_EVALUATORS
    return out


CASES = [
    ("cis", "pair", "close", "first_order"),
    ("cis", "single", "open", "greedy"),
    ("grids", "pair", "open", "first_order"),
    ("grids", "single", "close", "greedy"),
    ("cis", "pair", "close", "first_order+integrated_gradients"),
    ("loco", "pair", "close", "first_order"),
    ("loco", "single", "open", "greedy"),
]


@pytest.mark.parametrize(("model", "moves", "perturb", "init"), CASES)
def test_batched_equals_one_at_a_time(fits, model, moves, perturb, init):
    m = fits[model]
    kw = dict(moves=moves, perturb=perturb, init=init)
    ref, bat = _explain(m, False, **kw), _explain(m, True, **kw)
    a, b = ref.uns["grids"]["explain"], bat.uns["grids"]["explain"]
    assert len(a) == 12 and sorted(a) == sorted(b)  # 6 genes x 2 groups, all in both
    groups = {rec["group"] for rec in a.values()}
    assert len(groups) == 2
    # the first batch holds genes of two chromosomes
    chrom = m["rna"].var["chrom"].astype(str)
    assert chrom.iloc[:4].nunique() == 2
    n_bitwise = 0
    for key, ra in a.items():
        rb = b[key]
        assert list(ra["selected"]) == list(rb["selected"]), key
        np.testing.assert_allclose(ra["restart_traces"], rb["restart_traces"], atol=TOL)
        assert ra["best_restart"] == rb["best_restart"]
        np.testing.assert_allclose(ra["restart_scores"], rb["restart_scores"], atol=TOL)
        for k, v in ra["delta"].items():
            np.testing.assert_allclose(v, rb["delta"][k], atol=TOL, err_msg=f"{key} {k}")
        for k in ("alone", "restored", "frequency"):
            np.testing.assert_allclose(ra["per_peak"][k], rb["per_peak"][k], atol=TOL)
        np.testing.assert_allclose(ra["per_cell"]["after"], rb["per_cell"]["after"], atol=TOL)
        n_bitwise += np.array_equal(ra["restart_traces"], rb["restart_traces"], equal_nan=True)
    va, vb = ref["atac"].var, bat["atac"].var
    assert list(va.columns) == list(vb.columns)
    for col in va.columns:
        if va[col].dtype.kind == "f":
            np.testing.assert_allclose(va[col], vb[col], atol=TOL, equal_nan=True)
        else:
            assert (va[col] == vb[col]).all(), col
    # the arithmetic is the same, so the traces are bit-identical on the CPU
    assert n_bitwise == len(a)


def test_run_searches_equals_run_search(fits):
    """The search-level runner: many problems of one group's cells together."""
    m = fits["cis"]
    module = get_surrogate(m, "surrogate").module
    x = m["atac"].X[:150].tocsr()
    x.data[:] = 1
    genes = list(range(3))
    base = module.incremental(x, [0], 0.0)
    probs = [
        EmbeddingSumProblem(module, x, [g], 0.0, 1.0, model=base if g == 0 else base.for_genes([g]))
        for g in genes
    ]
    alone = [
        run_search(EmbeddingSumProblem(module, x, [g], 0.0, 1.0), 5, restarts=2, moves="pair")
        for g in genes
    ]
    together = run_searches(
        probs, 5, candidates=[None] * len(genes), restarts=2, moves="pair", seed=0
    )
    for r1, r2 in zip(alone, together):
        assert np.array_equal(r1.selection, r2.selection)
        for t1, t2 in zip(r1.traces, r2.traces):
            assert np.array_equal(t1, t2)


def test_batches_and_threshold(fits):
    m = fits["grids"]
    from grids_sc._engine import BATCH_MIN_TASKS, use_batches
    from grids_sc._engine._plan import Task

    tasks = [
        Task(f"g{i}", [f"g{i}"], np.array([i]), grp, np.arange(20), np.ones(5, bool), f"k{i}{grp}")
        for grp in ("a", "b")
        for i in range(5)
    ]
    batches = make_batches(tasks, 3)
    assert [len(b.tasks) for b in batches] == [3, 2, 3, 2]
    assert all(len({t.group for t in b.tasks}) == 1 for b in batches)
    assert len({b.run for b in batches}) == 1 and batches[0].run  # one call, one name
    assert make_batches(tasks, 3)[0].run != batches[0].run
    assert not use_batches(None, BATCH_MIN_TASKS - 1) and use_batches(None, BATCH_MIN_TASKS)
    assert use_batches(True, 1) and not use_batches(False, 100)
    with pytest.raises(ValueError, match="batch_size"):
        grids.tl.explain(m, "gene0", L=3, batch_size=0, copy=True, progress=False)
    assert torch.get_num_threads() >= 1


def test_compact_storage(fits, monkeypatch):
    """A call with many tasks keeps its selections in its records (no ``.var`` columns);
    explain_df, evaluate and the track plot read them as they read the columns.
    """
    import matplotlib

    matplotlib.use("Agg")
    from grids_sc import _records

    m = fits["cis"]
    kw = dict(L=4, groupby="celltype", n_steps=10, progress=False, copy=True, window=100_000)
    genes = list(m["rna"].var_names)[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        wide = grids.tl.explain(m, genes, **kw)  # 6 tasks < 100: columns, as before
        monkeypatch.setattr(_records, "VAR_COLUMNS_MAX_TASKS", 5)
        compact = grids.tl.explain(m, genes, **kw)  # 6 tasks >= 5: compact by default
        forced = grids.tl.explain(m, genes, var_columns=True, **kw)
    n_cols = len(m["atac"].var.columns)
    assert len(wide["atac"].var.columns) == n_cols + 6 * 3
    assert len(compact["atac"].var.columns) == n_cols
    assert len(forced["atac"].var.columns) == n_cols + 6 * 3
    for key in wide.uns["grids"]["explain"]:
        rec = compact.uns["grids"]["explain"][key]
        assert rec["peak_scores"]["n_scored"] == rec["n_candidates_in_window"]
        a, b = grids.get.explain_df(wide, key), grids.get.explain_df(compact, key)
        assert list(a["peak"]) == list(b["peak"])
        np.testing.assert_array_equal(a["score"], b["score"])
        # the kept scores are those of the column for the kept peaks, NaN elsewhere
        cols = _records.peak_columns(compact["atac"], key, rec)
        full = wide["atac"].var[f"{key}_score"].to_numpy()
        kept = np.isfinite(cols["score"])
        np.testing.assert_array_equal(cols["score"][kept], full[kept])
        assert (cols["rank"] > 0).sum() == 4
    e1 = grids.tl.evaluate(wide, key_added="e").drop(columns=["key"], errors="ignore")
    e2 = grids.tl.evaluate(compact, key_added="e").drop(columns=["key"], errors="ignore")
    assert e1.shape == e2.shape
    key = next(iter(compact.uns["grids"]["explain"]))
    axes = grids.pl.track(compact, key, show=False)
    assert axes is not None


def test_storing_results_checks_the_store_once(fits, monkeypatch):
    """A call opens ``uns['grids']`` once to store its results: the checks of the whole store
    do not grow with its tasks (they grew by two per result, quadratic in a genome-wide call),
    and a result that replaces an earlier one under its key still warns.
    """
    from grids_sc import _records

    calls = []
    check = _records._needs_migration
    monkeypatch.setattr(_records, "_needs_migration", lambda root: calls.append(1) or check(root))
    m = fits["loco"].copy()
    names = list(m["rna"].var_names)
    kw = dict(L=3, groupby="celltype", n_steps=5, progress=False)
    counts = []
    for genes in (names[:1], names):
        calls.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            grids.tl.explain(m, genes, copy=True, **kw)
        counts.append(len(calls))
    assert counts[0] == counts[1]
    grids.tl.explain(m, names[0], groups="type0", **kw)
    with pytest.warns(UserWarning, match="replaced the earlier selection record"):
        grids.tl.explain(m, names[0], groups="type0", **kw)


def test_executor_runs_batches(fits):
    """With an executor each worker call runs a whole batch; the results are the serial ones."""
    from concurrent.futures import ThreadPoolExecutor

    m = fits["grids"]
    kw = dict(L=3, groupby="celltype", n_steps=15, moves="single", progress=False, copy=True)
    genes = list(m["rna"].var_names)[:4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = grids.tl.explain(m, genes, batched=False, **kw)
        with ThreadPoolExecutor(2) as pool:
            par = grids.tl.explain(m, genes, batched=True, batch_size=3, executor=pool, **kw)
    a, b = ref.uns["grids"]["explain"], par.uns["grids"]["explain"]
    assert list(a) == list(b) and len(a) == 8
    for key in a:
        assert list(a[key]["selected"]) == list(b[key]["selected"])
        np.testing.assert_array_equal(a[key]["trace"], b[key]["trace"])


def test_peak_columns_are_the_dense_columns():
    """A result's per-peak columns travel sparse (a genome-wide call holds thousands) and
    give back the dense ``.var`` columns; the compact record keeps the best scores and the
    selected peaks'.
    """
    from grids_sc._engine._selection import PeakColumns
    from grids_sc._records import compact_peak_scores

    rng = np.random.default_rng(0)
    n = 500
    score = np.where(rng.random(n) < 0.3, rng.normal(size=n), np.nan)
    selected = rng.choice(np.flatnonzero(np.isfinite(score)), 6, replace=False)
    freq = np.where(rng.random(n) < 0.05, 0.5, 0.0)
    cols = PeakColumns.from_dense(selected, score, freq)
    dense = cols.dense()
    rank = np.zeros(n, dtype=np.int64)
    rank[selected] = np.arange(1, 7)
    np.testing.assert_array_equal(dense["rank"], rank)
    np.testing.assert_array_equal(dense["selected"], rank > 0)
    np.testing.assert_array_equal(dense["score"], score)
    np.testing.assert_array_equal(dense["frequency"], freq)
    np.testing.assert_array_equal(cols.score_of(selected), score[selected])
    assert "frequency" not in PeakColumns.from_dense(selected, score).dense()
    names = np.asarray([f"p{i}" for i in range(n)])
    kept = compact_peak_scores(names, cols.scored, cols.score, cols.selected)
    finite = np.flatnonzero(np.isfinite(score))
    best = finite[np.argsort(-score[finite], kind="stable")[:100]]
    keep = np.union1d(best, selected)
    np.testing.assert_array_equal(kept["peak"], names[keep])
    np.testing.assert_array_equal(kept["score"], score[keep])
    assert kept["n_scored"] == len(finite)
