"""explain / attribute on executors: a local Dask cluster and a process pool give the serial
run's results exactly (the serial run with the workers' one torch thread: torch's CPU kernels
round the vectorised body and the tail of an elementwise op differently, and where a thread's
chunk ends depends on the thread count, so a per-cell prediction can differ in its last
float32 bit between thread counts); bad input fails before anything is submitted; worker
errors name the task.
"""

from concurrent.futures import Executor, Future, ProcessPoolExecutor

import numpy as np
import pytest
import torch

import grids_sc as grids

TASKS = {
    "gene": ["gene0", "gene1"],
    "L": 3,
    "groupby": "celltype",
    "groups": ["type0", "type1"],
    "window": 250_000,
    "n_steps": 8,
    "restarts": 2,
    "progress": False,
}
ATTRIBUTE = {k: v for k, v in TASKS.items() if k not in ("gene", "n_steps", "restarts")}


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as lc, distributed.Client(lc) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="module")
def serial(sim_fitted):
    m = sim_fitted.copy()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' worker_threads=1
    try:
        grids.tl.explain(m, **TASKS)
        grids.tl.attribute(m, "gene2", "correlation", **ATTRIBUTE)
    finally:
        torch.set_num_threads(threads)
    return m


def _run(sim_fitted, executor):
    m = sim_fitted.copy()
    grids.tl.explain(m, executor=executor, **TASKS)
    grids.tl.attribute(m, "gene2", "correlation", executor=executor, **ATTRIBUTE)
    return m


def _assert_same(a, b):
    ra, rb = a.uns["grids"]["explain"], b.uns["grids"]["explain"]
    assert list(ra) == list(rb) and len(ra) == 6  # same keys, stored in the same order
    for key in ra:
        x, y = ra[key], rb[key]
        np.testing.assert_array_equal(x["selected"], y["selected"])
        np.testing.assert_array_equal(x["per_peak"]["alone"], y["per_peak"]["alone"])
        for part in ("before", "after", "cell"):
            np.testing.assert_array_equal(x["per_cell"][part], y["per_cell"][part])
        assert x["delta"] == y["delta"]  # bitwise equal floats
        if "trace" in x:
            np.testing.assert_array_equal(x["trace"], y["trace"])
            np.testing.assert_array_equal(x["restart_traces"], y["restart_traces"])
    va, vb = a["atac"].var, b["atac"].var
    cols = [c for c in va.columns if c.startswith(("grids_", "correlation_"))]
    assert len(cols) == 4 * 4 + 3 * 2  # selected/rank/score(/frequency) of every task
    for c in cols:
        np.testing.assert_array_equal(va[c].to_numpy(), vb[c].to_numpy())


def test_dask_cluster_gives_the_serial_results(sim_fitted, serial, cluster):
    _assert_same(serial, _run(sim_fitted, cluster))
    # a scheduler address connects a client of its own
    m = sim_fitted.copy()
    grids.tl.explain(m, executor=cluster.scheduler.address, **{**TASKS, "gene": "gene1"})
    for g in TASKS["groups"]:
        key = f"grids_gene1_{g}"
        ref = serial.uns["grids"]["explain"][key]
        np.testing.assert_array_equal(m.uns["grids"]["explain"][key]["selected"], ref["selected"])


def test_process_pool_gives_the_serial_results(sim_fitted, serial):
    with ProcessPoolExecutor(2) as pool:
        _assert_same(serial, _run(sim_fitted, pool))


class _Recording(Executor):
    """An executor that runs nothing and remembers what it was given."""

    def __init__(self):
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        fut = Future()
        fut.set_exception(RuntimeError("should not run"))
        return fut


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"gene": "nope"}, KeyError, "not among"),
        ({"gene": "gene0", "L": 10_000}, ValueError, "candidate peaks"),
        ({"gene": "gene0", "worker_threads": 0}, ValueError, "worker_threads"),
        ({"gene": "gene0", "device": "tpu9"}, ValueError, "unknown device"),
    ],
)
def test_bad_input_fails_before_anything_is_submitted(fitted, kwargs, err, match):
    ex = _Recording()
    with pytest.raises(err, match=match):
        grids.tl.explain(fitted, executor=ex, progress=False, **kwargs)
    assert ex.submitted == 0 and "explain" not in fitted.uns["grids"]
    with pytest.raises(TypeError, match="executor must be"):
        grids.tl.attribute(fitted, "gene0", "saliency", executor=object(), progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs workers without CUDA")
def test_worker_error_names_the_task_and_writes_nothing(fitted, cluster):
    # the device is resolved on the workers, which have no GPU
    with pytest.raises(grids.tl.TaskError, match="'gene0' in group 'type0'") as info:
        grids.tl.explain(fitted, "gene0", L=3, groupby="celltype", groups="type0",
                         device="cuda", executor=cluster, progress=False)  # fmt: skip
    assert isinstance(info.value.__cause__, ValueError)
    assert "CUDA is not available" in str(info.value)
    assert (info.value.name, info.value.group) == ("gene0", "type0")
    assert "explain" not in fitted.uns["grids"]
