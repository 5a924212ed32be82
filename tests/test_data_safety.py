"""Data safety and honest failures (issue 17): the user's objects and files are never changed
except where a call says so, and bad input gets one clear error.

One tiny simulated data set and one surrogate per module (fit once, a few epochs); each test
works on a copy and checks the user's object against a snapshot taken before the call.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import warnings

import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import grids_sc as grids

FIT = dict(groupby="celltype", max_epochs=2, cis_max_epochs=5, progress=False, seed=0)
FAST = dict(L=3, n_steps=5, progress=False)


@pytest.fixture(scope="module")
def sim():
    """300 cells, 300 peaks, 4 genes in 2 cell types (never modified)."""
    return grids.datasets.synthetic_multiome(
        n_cells=300, n_peaks=300, n_genes=4, n_celltypes=2, seed=1
    )


@pytest.fixture(scope="module")
def fitted_once(sim):
    m = sim.copy()
    grids.tl.fit_surrogate(m, **FIT)
    return m


@pytest.fixture
def fitted(fitted_once):
    return fitted_once.copy()


# ---- snapshots of everything a user could see ---------------------------------------------
def _matrix(x):
    if sp.issparse(x):
        return (x.format, x.dtype.str, x.shape, x.data.copy(), x.indices.copy(), x.indptr.copy())
    return ("dense", np.asarray(x).dtype.str, np.asarray(x).copy())


def _adata(a):
    return {
        "X": None if a.X is None else _matrix(a.X),
        "layers": {k: _matrix(v) for k, v in a.layers.items()},
        "obs": a.obs.copy(),
        "var": a.var.copy(),
        "uns": copy.deepcopy(dict(a.uns)),
        "obsm": {k: np.asarray(v).copy() for k, v in a.obsm.items()},
    }


def snapshot(m) -> dict:
    """Deep copies of the values, sparse structure, annotations and ``.uns`` of ``m``."""
    return {
        "mod": {k: _adata(v) for k, v in m.mod.items()},
        "obs": m.obs.copy(),
        "var": m.var.copy(),
        "uns": copy.deepcopy(dict(m.uns)),
    }


def _same(a, b, where="") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def assert_unchanged(m, snap: dict) -> None:
    """``m`` holds exactly what ``snap`` recorded (bit for bit, sparse structure included)."""
    _same(snap, snapshot(m), "mdata")


# ---- 3: no global state changed at import -------------------------------------------------
def test_import_changes_no_mudata_option():
    code = (
        "from mudata._core.config import OPTIONS\n"
        "before = dict(OPTIONS)\n"
        "import grids_sc as grids\n"
        "assert OPTIONS == before, OPTIONS\n"
        "m = grids.datasets.synthetic_multiome(n_cells=60, n_peaks=40, n_genes=2, seed=1)\n"
        "grids.pp.binarize(m, copy=True)\n"
        "assert OPTIONS == before, OPTIONS\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "error::FutureWarning"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]


# ---- 1: input matrices come back bit-identical --------------------------------------------
def with_explicit_zeros(x, dtype) -> sp.csr_matrix:
    """``x`` as CSR of ``dtype`` with about 5% explicit zeros stored among the ones."""
    dense = x.toarray()
    stored = (dense != 0) | (np.random.default_rng(0).random(dense.shape) < 0.05)
    rows, cols = np.nonzero(stored)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[0]))])
    out = sp.csr_matrix((dense[rows, cols].astype(dtype), cols, indptr), shape=dense.shape)
    assert (out.data == 0).sum() > 100
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_atac_with_explicit_zeros_is_never_changed(fitted, dtype):
    gene = fitted["rna"].var_names[0]
    clean = grids.tl.predict_expression(fitted, copy=True)["rna"].layers["grids_predicted"]
    fitted["atac"].X = with_explicit_zeros(fitted["atac"].X, dtype)
    snap = snapshot(fitted)
    out = grids.tl.predict_expression(fitted, copy=True)
    assert np.array_equal(out["rna"].layers["grids_predicted"], clean)  # zeros are zeros
    grids.tl.explain(fitted, gene, copy=True, **FAST)
    grids.tl.attribute(fitted, gene, "first_order", L=3, progress=False, copy=True)
    assert_unchanged(fitted, snap)
    grids.tl.explain(fitted, gene, key_added="ex", **FAST)  # writing, not copying
    _same(snap["mod"]["atac"]["X"], _matrix(fitted["atac"].X), "atac X")


def test_fit_leaves_a_float64_matrix_with_explicit_zeros(sim):
    m = sim.copy()
    m["atac"].X = with_explicit_zeros(m["atac"].X, np.float64)
    snap = snapshot(m)
    fit = grids.tl.fit_surrogate(m, copy=True, **{**FIT, "max_epochs": 1, "cis_max_epochs": 1})
    assert "surrogate" in fit.uns["grids"]["surrogates"]
    assert_unchanged(m, snap)


# ---- 2: a view is refused before any work; its parent never changes -----------------------
def _no_work(*args, **kwargs):
    raise AssertionError("computed before refusing the view")


def test_a_view_is_refused_before_any_work_and_its_parent_never_changes(fitted, monkeypatch):
    gene = fitted["rna"].var_names[0]
    grids.tl.explain(fitted, gene, key_added="ex", **FAST)
    snap = snapshot(fitted)
    view = fitted[:200]
    for module, name in [("tl._surrogate", "_fit"), ("tl._explain", "run_plan"),
                         ("tl._attribute", "run_plan"), ("tl._predict", "_predict"),
                         ("tl._fidelity", "_predict")]:  # fmt: skip
        monkeypatch.setattr(sys.modules[f"grids_sc.{module}"], name, _no_work)
    calls = {
        "fit_surrogate": lambda: grids.tl.fit_surrogate(view, **FIT),
        "explain": lambda: grids.tl.explain(view, gene, **FAST),
        "attribute": lambda: grids.tl.attribute(view, gene, "first_order", progress=False),
        "predict_expression": lambda: grids.tl.predict_expression(view),
        "surrogate_fidelity": lambda: grids.tl.surrogate_fidelity(view),
        "interventional_fidelity": lambda: grids.tl.interventional_fidelity(view),
        "evaluate": lambda: grids.tl.evaluate(view),
    }
    for call in calls.values():
        with pytest.raises(ValueError, match=r"view.*mdata = mdata\.copy\(\)"):
            call()
    assert view.is_view
    assert_unchanged(fitted, snap)


def test_copy_true_on_a_view_gives_an_object_of_its_own(fitted):
    gene = fitted["rna"].var_names[0]
    snap = snapshot(fitted)
    out = grids.tl.explain(fitted[:200], gene, key_added="ex", copy=True, **FAST)
    assert not out.is_view and out.n_obs == 200
    assert out.uns["grids"]["explain"]["ex"]["per_cell"]["cell"].max() < 200
    assert_unchanged(fitted, snap)


# ---- 5: a reused key is replaced whole, with a warning; store names are refused -----------
def _columns(m, key):
    return sorted(c for c in m["atac"].var.columns if c.startswith(f"{key}_"))


def test_a_reused_key_holds_exactly_a_fresh_calls_result(fitted_once):
    gene = fitted_once["rna"].var_names[0]
    fresh = fitted_once.copy()
    grids.tl.explain(fresh, gene, key_added="k", restarts=1, **FAST)
    m = fitted_once.copy()
    grids.tl.explain(m, gene, key_added="k", restarts=2, **FAST)
    assert "k_frequency" in m["atac"].var.columns
    with pytest.warns(UserWarning, match="replaced the earlier selection record 'k'"):
        grids.tl.explain(m, gene, key_added="k", restarts=1, **FAST)
    assert _columns(m, "k") == _columns(fresh, "k") == ["k_rank", "k_score", "k_selected"]
    pd.testing.assert_frame_equal(m["atac"].var, fresh["atac"].var)
    a, b = m.uns["grids"]["explain"]["k"], fresh.uns["grids"]["explain"]["k"]
    assert list(a["selected"]) == list(b["selected"]) and a["delta"] == b["delta"]


def test_a_store_name_as_key_replaces_nothing_of_another_kind(fitted):
    """``fit_surrogate(key_added="explain")`` once wiped every explain result; each kind now
    has its own store, so a key clashes only with a record of its own kind.
    """
    gene = fitted["rna"].var_names[0]
    grids.tl.explain(fitted, gene, key_added="ex", **FAST)
    explained = copy.deepcopy(dict(fitted.uns["grids"]["explain"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is replaced, so nothing is said
        grids.tl.fit_surrogate(fitted, key_added="explain", **{**FIT, "max_epochs": 1})
        grids.tl.evaluate(fitted, key_added="surrogates")
    _same(explained, dict(fitted.uns["grids"]["explain"]), "explain store")
    assert set(fitted.uns["grids"]["surrogates"]) == {"surrogate", "explain"}


def test_an_empty_result_key_is_refused_before_any_work(fitted, monkeypatch):
    monkeypatch.setattr(sys.modules["grids_sc.tl._explain"], "run_plan", _no_work)
    snap = snapshot(fitted)
    with pytest.raises(ValueError, match="key_added must be a non-empty string"):
        grids.tl.explain(fitted, fitted["rna"].var_names[0], key_added="", **FAST)
    assert_unchanged(fitted, snap)


# ---- 7: negative expression is refused; the "auto" rule -----------------------------------
@pytest.mark.parametrize("transform", ["auto", "none", "log1p"])
def test_scaled_expression_is_refused_naming_the_layer_to_use(sim, transform, monkeypatch):
    m = sim.copy()
    x = m["rna"].X.toarray()
    m["rna"].X = ((x - x.mean(0)) / x.std(0)).astype(np.float32)  # as sc.pp.scale leaves it
    snap = snapshot(m)
    monkeypatch.setattr(sys.modules["grids_sc.tl._surrogate"], "_fit", _no_work)
    match = r"negative values .*sc\.pp\.scale.*rna_layer=.*layers \['counts'\]"
    with pytest.raises(ValueError, match=match):
        grids.tl.fit_surrogate(m, rna_transform=transform, **FIT)
    assert_unchanged(m, snap)


@pytest.mark.parametrize(
    ("values", "logged", "expected"),
    [
        ([0, 1, 3, 12], False, "log1p"),  # counts, even with a maximum of at most 20
        ([0, 1, 3, 250], False, "log1p"),  # counts
        ([0, 0.5, 3.2, 80.5], False, "log1p"),  # normalised, not logged
        ([0, 0.5, 3.2, 7.9], False, "none"),  # log-scale
        ([0, 1, 3, 12], True, "none"),  # scanpy recorded uns['log1p']
    ],
)
def test_auto_rna_transform_rule(values, logged, expected):
    from grids_sc._inputs import auto_transform

    assert auto_transform(np.asarray(values, dtype=np.float32), logged) == expected


def test_fit_on_small_counts_logs_them(sim):
    m = sim.copy()
    counts = m["rna"].layers["counts"]
    m["rna"].layers["small"] = np.minimum(counts.toarray() if sp.issparse(counts) else counts, 20)
    fit = grids.tl.fit_surrogate(m, rna_layer="small", copy=True, **{**FIT, "max_epochs": 1})
    assert fit.uns["grids"]["surrogates"]["surrogate"]["config"]["data"]["rna_transform"] == "log1p"


# ---- 8: unknown method options raise -------------------------------------------------------
@pytest.mark.parametrize("method", ["first_order", "lime", "correlation"])
def test_unknown_method_options_raise_naming_them(fitted, method, monkeypatch):
    monkeypatch.setattr(sys.modules["grids_sc.tl._attribute"], "run_plan", _no_work)
    snap = snapshot(fitted)
    with pytest.raises(
        TypeError, match=rf"method '{method}' got unknown option\(s\) \['not_an_option'\]"
    ):
        grids.tl.attribute(fitted, "gene0", method, progress=False, not_an_option=1)
    assert_unchanged(fitted, snap)


def test_known_method_options_are_used_and_recorded(fitted):
    grids.tl.attribute(fitted, "gene0", "lime", L=3, progress=False, key_added="l", n_samples=30)
    assert fitted.uns["grids"]["explain"]["l"]["settings"]["n_samples"] == 30
    grids.tl.attribute(fitted, "gene0", "random", L=3, progress=False, key_added="r", seed=4)
    a = grids.tl.attribute(fitted, "gene0", "random", L=3, progress=False, seed=4, copy=True)
    assert list(a.uns["grids"]["explain"]["random_gene0_all"]["selected"]) == list(
        fitted.uns["grids"]["explain"]["r"]["selected"]
    )


# ---- 9: any list-like of gene names --------------------------------------------------------
@pytest.mark.parametrize("kind", [list, np.array, pd.Index, pd.Series, tuple])
def test_genes_as_any_list_like(fitted, kind):
    genes = kind(["gene0", "gene1"])
    grids.tl.attribute(fitted, genes, "random", L=3, progress=False)
    assert list(fitted.uns["grids"]["explain"]) == ["random_gene0_all", "random_gene1_all"]


# ---- 10: no fragmentation warning with many .var columns ----------------------------------
def test_many_var_columns_give_no_fragmentation_warning(fitted):
    var = fitted["atac"].var
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for i in range(150):  # a user's fragmented .var
            var[f"user_{i}"] = float(i)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        for i in range(3):
            grids.tl.attribute(fitted, ["gene0", "gene1"], "random", L=3, groupby="celltype",
                               key_added=f"r{i}", progress=False)  # fmt: skip
    assert sum(c.startswith("r") for c in fitted["atac"].var.columns) == 3 * 4 * 3
    assert fitted["atac"].var["user_149"].eq(149.0).all()


# ---- 6: a gene the surrogate never predicts above 0 ----------------------------------------
@pytest.fixture
def silent(fitted):
    """``fitted`` with a surrogate that predicts 0 for gene3 in every cell (its head's output
    bias far below 0, clamped)."""
    weights = fitted.uns["grids"]["surrogates"]["surrogate"]["weights"]
    b2 = np.array(weights["cis__b2"])
    b2[list(fitted["rna"].var_names).index("gene3")] = -1e4
    weights["cis__b2"] = b2
    return fitted


@pytest.mark.parametrize("method", ["grids", "first_order"])
def test_one_unexpressed_gene_raises_naming_gene_and_group(silent, method):
    snap = snapshot(silent)
    match = r"cannot explain 'gene3' in group 'type1'.*predicts 0 for gene\(s\) \['gene3'\]"
    with pytest.raises(ValueError, match=match):
        if method == "grids":
            grids.tl.explain(silent, "gene3", groupby="celltype", groups="type1", **FAST)
        else:
            grids.tl.attribute(silent, "gene3", method, groupby="celltype", groups="type1",
                               L=3, progress=False)  # fmt: skip
    assert_unchanged(silent, snap)


def test_unexpressed_tasks_are_skipped_with_one_warning_and_recorded(silent):
    with pytest.warns(
        UserWarning, match=r"skipped 2 of 4 .*\('gene3', 'type0'\), \('gene3', 'type1'\)"
    ):
        grids.tl.explain(silent, ["gene0", "gene3"], groupby="celltype", **FAST)
    store = silent.uns["grids"]
    assert list(store["explain"]) == ["grids_gene0_type0", "grids_gene0_type1"]
    assert list(store["skipped"]) == ["grids_gene3_type0", "grids_gene3_type1"]
    assert "predicts 0" in store["skipped"]["grids_gene3_type0"]["reason"]
    assert not [c for c in silent["atac"].var.columns if c.startswith("grids_gene3")]
    assert grids.tl.evaluate(silent)["key"].tolist() == ["grids_gene0_type0", "grids_gene0_type1"]


def test_skipped_tasks_survive_a_file_round_trip(silent, tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        grids.tl.attribute(silent, ["gene0", "gene3"], "random", L=3, progress=False)
    silent.write(tmp_path / "s.h5mu")
    back = mudata.read_h5mu(tmp_path / "s.h5mu")
    rec = back.uns["grids"]["skipped"]["random_gene3_all"]
    assert rec["group"] == "all" and list(rec["gene"]) == ["gene3"]
    grids.tl.attribute(back, "gene0", "random", L=3, progress=False, key_added="again")
    assert set(back.uns["grids"]["explain"]) == {"random_gene0_all", "again"}


# ---- 4: backed data --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backed_file(fitted_once, tmp_path_factory):
    path = tmp_path_factory.mktemp("backed") / "fit.h5mu"
    fitted_once.write(path)
    return path


def _file_state(path):
    return path.stat().st_mtime_ns, path.read_bytes()


def test_explain_attribute_predict_on_backed_data_equal_in_memory(fitted, backed_file, monkeypatch):
    from grids_sc._inputs import BackedRows

    state = _file_state(backed_file)
    backed = mudata.read_h5mu(backed_file, backed="r")
    assert backed.isbacked
    read = []
    getitem = BackedRows.__getitem__
    monkeypatch.setattr(BackedRows, "__getitem__", lambda s, r: read.append(r) or getitem(s, r))
    kw = dict(groupby="celltype", groups="type1", **FAST)
    for m in (fitted, backed):
        grids.tl.explain(m, ["gene0", "gene1"], **kw)
        grids.tl.attribute(m, "gene0", "correlation", L=3, groupby="celltype", groups="type1",
                           progress=False, n_background=20)  # fmt: skip
        grids.tl.predict_expression(m, batch_size=64)
    type1 = np.flatnonzero(fitted.obs["celltype"].to_numpy() == "type1")
    explain_reads = [r for r in read if not isinstance(r, slice)]
    assert explain_reads and all(np.array_equal(r, type1) for r in explain_reads)
    assert [r for r in read if isinstance(r, slice)][0] == slice(0, 64)  # predict: by batch
    for key in ("grids_gene0_type1", "grids_gene1_type1", "correlation_gene0_type1"):
        a, b = fitted.uns["grids"]["explain"][key], backed.uns["grids"]["explain"][key]
        assert list(a["selected"]) == list(b["selected"]) and a["delta"] == b["delta"]
        _same(a["per_cell"], b["per_cell"], key)
    pd.testing.assert_frame_equal(fitted["atac"].var, backed["atac"].var)
    pred = fitted["rna"].layers["grids_predicted"]
    assert np.array_equal(pred, backed["rna"].layers["grids_predicted"])
    assert grids.tl.evaluate(backed).equals(grids.tl.evaluate(fitted))
    backed.file.close()
    assert _file_state(backed_file) == state


def test_functions_that_need_memory_say_so_on_backed_data(backed_file):
    backed = mudata.read_h5mu(backed_file, backed="r")
    snap = snapshot(backed.copy(backed_file.with_name("snap.h5mu")))
    calls = {
        "fit_surrogate": lambda: grids.tl.fit_surrogate(backed, **FIT),
        "surrogate_fidelity": lambda: grids.tl.surrogate_fidelity(backed),
        "interventional_fidelity": lambda: grids.tl.interventional_fidelity(backed),
        "binarize": lambda: grids.pp.binarize(backed),
    }
    for call in calls.values():
        with pytest.raises(ValueError, match=r"backed on disk.*\.to_memory\(\)") as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"copy=True needs the data in memory.*\.to_memory\(\)"):
        grids.tl.explain(backed, "gene0", copy=True, **FAST)
    for name in backed.mod:  # the documented way to load it
        backed.mod[name] = backed[name].to_memory()
    grids.tl.surrogate_fidelity(backed)
    backed_snap = snapshot(backed)
    assert set(backed_snap["uns"]["grids"]) - set(snap["uns"]["grids"]) == {"fidelity"}
