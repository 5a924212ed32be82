"""Files written by grids-sc 0.1.0 load, predict, tabulate and plot as they did then.

The fixture under ``tests/data/v0.1.0`` was written at tag ``v0.1.0`` by ``make_v010.py`` (both
surrogate kinds, two ``explain`` records and an ``attribute`` record), together with what 0.1.0
made of it on reading it back.
"""

import io
import json
import shutil
from pathlib import Path

import matplotlib
import mudata
import numpy as np
import pandas as pd
import pytest

import grids_sc as grids
from plot_summary import summary

matplotlib.use("Agg")

DATA = Path(__file__).parent / "data" / "v0.1.0"


@pytest.fixture
def old(tmp_path):
    path = tmp_path / "v010.h5mu"
    shutil.copy(DATA / "v010.h5mu", path)
    return mudata.read_h5mu(path)


@pytest.mark.parametrize("key", ["surrogate", "paper"])
def test_predictions_identical(old, key):
    ref = np.load(DATA / "v010_predictions.npz")[key]
    out = grids.tl.predict_expression(old, key=key, copy=True, device="cpu")
    np.testing.assert_allclose(out["rna"].layers["grids_predicted"], ref, rtol=1e-6, atol=1e-6)


def test_tables_identical(old):
    ref = pd.read_csv(DATA / "v010_explain_df.csv")
    frames = [grids.get.explain_df(old, k).assign(key=k) for k in old.uns["grids"]["explain"]]
    got = pd.concat(frames).reset_index(drop=True)
    got = pd.read_csv(io.StringIO(got.to_csv(index=False)))  # same dtypes as ref
    pd.testing.assert_frame_equal(got[ref.columns], ref)
    links = pd.read_csv(io.StringIO(grids.get.links(old).to_csv(index=False)))
    pd.testing.assert_frame_equal(links[ref.columns], pd.read_csv(DATA / "v010_links.csv"))


def test_plots_identical(old):
    with open(DATA / "v010_plots.json") as fh:
        ref = json.load(fh)
    keys = list(old.uns["grids"]["explain"])
    got = {
        "track": summary(grids.pl.track(old, keys, show=False)),
        "delta": summary(grids.pl.delta(old, "grids_gene0_type0", show=False)),
        "trace": summary(grids.pl.trace(old, "grids_gene0_type0", show=False)),
        "interactions": summary(grids.pl.interactions(old, "grids_gene0_type0", show=False)),
    }
    assert json.loads(json.dumps(got)) == ref
    matplotlib.pyplot.close("all")


def test_old_file_round_trips(old, tmp_path):
    """An old file read, written by this version and read again keeps its predictions."""
    old.write(tmp_path / "again.h5mu")
    again = mudata.read_h5mu(tmp_path / "again.h5mu")
    ref = np.load(DATA / "v010_predictions.npz")["surrogate"]
    out = grids.tl.predict_expression(again, copy=True, device="cpu")
    np.testing.assert_allclose(out["rna"].layers["grids_predicted"], ref, rtol=1e-6, atol=1e-6)
