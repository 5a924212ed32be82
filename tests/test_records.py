"""The records module: one store per kind, a header on every record, typed reading, migration."""

import warnings

import mudata
import numpy as np
import pytest

import grids_sc as grids
from grids_sc import _records as records

GENE = "gene0"


def _explained(fitted):
    grids.tl.explain(fitted, GENE, L=3, n_steps=3, window=250_000, progress=False)
    grids.tl.attribute(fitted, GENE, "random", L=3, window=250_000, progress=False)
    return fitted


def test_every_record_has_a_header_and_the_call_params(fitted, tmp_path):
    m = _explained(fitted)
    grids.tl.evaluate(m)
    grids.tl.surrogate_fidelity(m)
    grids.tl.interventional_fidelity(m)
    m.write(tmp_path / "r.h5mu")
    back = mudata.read_h5mu(tmp_path / "r.h5mu")
    root = back.uns["grids"]
    assert set(root) == {"surrogates", "explain", "evaluations", "fidelity", "interventional"}
    for store, recs in root.items():
        for key, rec in recs.items():
            assert rec["kind"] in records.STORES and records.STORES[rec["kind"]] == store
            assert int(rec["format_version"]) == records.FORMAT_VERSION
            assert str(rec["package_version"]) == grids.__version__
            assert isinstance(rec["params"], dict), (store, key)
    explain_params = root["explain"][f"grids_{GENE}_all"]["params"]
    assert explain_params["L"] == 3 and explain_params["window"] == 250_000
    assert explain_params["groupby"] is None  # None stays None through .h5mu
    assert root["explain"][f"grids_{GENE}_all"]["settings"]["groupby"] is None
    assert root["surrogates"]["surrogate"]["params"]["model"] == "loco"  # the default
    assert root["surrogates"]["surrogate"]["config"]["data"]["layer"] is None
    # typed reading
    sel = records.read_selection(back, f"random_{GENE}_all")
    assert sel.method == "random" and sel.genes == [GENE] and sel.group == "all"
    assert sel.window == 250_000 and len(sel.selected) == 3
    sur = records.read_surrogate(back, "surrogate")
    assert sur.model == "loco" and sur.layer is None and sur.rna == "rna"


def test_user_keys_cannot_clash_with_store_names(sim_small):
    m = sim_small.copy()
    fit = {"max_epochs": 2, "cis_max_epochs": 2, "progress": False, "seed": 0}
    grids.tl.fit_surrogate(m, key_added="explain", **fit)
    grids.tl.explain(m, GENE, L=2, key="explain", n_steps=2, progress=False)
    grids.tl.evaluate(m, key_added="surrogates")
    assert set(m.uns["grids"]["surrogates"]) == {"explain"}
    assert set(m.uns["grids"]["explain"]) == {f"grids_{GENE}_all"}
    assert set(m.uns["grids"]["evaluations"]) == {"surrogates"}
    grids.tl.predict_expression(m, key="explain")  # the surrogate is still readable


def test_format_1_layout_is_migrated_on_read_without_changing_the_object():
    v1 = {
        "surrogate": {
            "model": "cis",
            "config": {
                "architecture": {"n_peaks": 3, "cis": {}},
                "data": {"rna": "rna", "atac": "atac", "layer": "", "rna_layer": "",
                         "groupby": "", "rna_transform": "log1p"},
                "cis": {"max_peaks": np.int64(-1), "window": 1},
            },
            "weights": {}, "peaks": np.array(["p"]), "genes": np.array(["g"]),
            "split": {"train": np.array(["c"])},
        },
        "explain": {"r": {"gene": "g", "group": "all", "selected": np.array(["p"]),
                          "settings": {"window": np.int64(-1), "groupby": "", "method": "grids"}}},
        "evaluation": {"key": np.array(["r"]), "method": np.array(["grids"])},
    }  # fmt: skip

    class Obj:
        uns = {"grids": v1}
        is_view = False

    obj = Obj()
    migrated = records.migrate(v1)
    assert set(migrated) == {"surrogates", "explain", "evaluations"}
    sur = migrated["surrogates"]["surrogate"]
    assert sur["config"]["architecture"]["chrom_norm"] == "layer"  # what 0.1.0 fits used
    assert sur["config"]["data"]["layer"] is None and sur["config"]["cis"]["max_peaks"] is None
    sel = migrated["explain"]["r"]["settings"]
    assert sel["window"] is None and sel["groupby"] is None
    assert migrated["evaluations"]["evaluation"]["kind"] == "evaluation"
    # reading migrates a copy; the object keeps its layout until something is written
    assert records.keys(obj, "surrogate") == ["surrogate"]
    assert "surrogate" in obj.uns["grids"] and "surrogates" not in obj.uns["grids"]
    records.upgrade(obj)
    assert set(obj.uns["grids"]) == {"surrogates", "explain", "evaluations"}


def test_replacing_a_result_warns_and_leaves_no_stale_columns(fitted):
    grids.tl.explain(fitted, GENE, L=3, n_steps=3, restarts=2, progress=False, key_added="k")
    assert "k_frequency" in fitted["atac"].var
    with pytest.warns(UserWarning, match="replaced the earlier selection record 'k'"):
        grids.tl.explain(fitted, GENE, L=3, n_steps=3, restarts=1, progress=False, key_added="k")
    assert "k_frequency" not in fitted["atac"].var
    assert {"k_selected", "k_rank", "k_score"} <= set(fitted["atac"].var)


def test_writing_into_a_view_is_refused_and_the_parent_is_unchanged(fitted):
    view = fitted[: fitted.n_obs // 2]
    before = set(fitted.uns["grids"]["surrogates"])
    with pytest.raises(ValueError, match=r"mdata.copy\(\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grids.tl.explain(view, GENE, L=2, n_steps=2, progress=False)
    assert "explain" not in fitted.uns["grids"]
    assert set(fitted.uns["grids"]["surrogates"]) == before


def test_logger_says_what_was_added(fitted, caplog):
    with caplog.at_level("INFO", logger="grids_sc"):
        grids.tl.explain(fitted, GENE, L=2, n_steps=2, progress=False)
    text = caplog.text
    assert "added 1 result(s) to .uns['grids']['explain']" in text
    assert "explain: 1 task(s) (" in text
