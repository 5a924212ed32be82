"""Progress of a single search: a callable, a bar, debug logging; none changes the result."""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import grids_sc as grids

RUN = dict(L=4, groupby="celltype", groups="type0", n_steps=8, restarts=2, key_added="run")


def _record(m):
    rec = m.uns["grids"]["explain"]["run"]
    return {k: rec[k] for k in ("selected", "trace", "restart_traces", "restart_scores")}, rec


def test_progress_callable_reports_every_step_and_changes_nothing(fitted):
    quiet = fitted.copy()
    grids.tl.explain(quiet, "gene1", progress=False, **RUN)
    seen = []
    grids.tl.explain(fitted, "gene1", progress=seen.append, **RUN)
    (a, rec), (b, _) = _record(fitted), _record(quiet)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert {s["name"] for s in seen} == {"gene1"} and {s["group"] for s in seen} == {"type0"}
    assert {s["key"] for s in seen} == {"run"}
    for r in range(2):
        steps = [s for s in seen if s["restart"] == r]
        assert [s["step"] for s in steps] == list(range(len(steps)))  # 0 = the start
        trace = rec["restart_traces"][r]
        np.testing.assert_allclose([s["objective"] for s in steps], trace[~np.isnan(trace)])
    assert all(s["restarts"] == 2 and s["n_steps"] == 8 for s in seen)


def test_progress_true_shows_a_step_bar_for_one_run(fitted, capsys):
    grids.tl.explain(fitted, "gene1", progress=True, **RUN)
    assert "explain steps" in capsys.readouterr().err


def test_steps_are_logged_at_debug_level(fitted, caplog):
    with caplog.at_level(logging.DEBUG, logger="grids_sc"):
        grids.tl.explain(fitted, "gene1", progress=False, **RUN)
    steps = [r.getMessage() for r in caplog.records if "step" in r.getMessage()]
    assert steps and steps[0].startswith("explain gene1 in type0: restart 1/2, step 0/8")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"progress": "yes"}, "progress must be"),
        ({"progress": print, "executor": "pool"}, "needs executor=None"),
    ],
)
def test_bad_progress_writes_nothing(fitted, kwargs, match):
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match=match):
        if kwargs.get("executor") == "pool":
            kwargs = {**kwargs, "executor": pool}
        grids.tl.explain(fitted, "gene1", **{**RUN, **kwargs})
    assert "explain" not in fitted.uns["grids"]
