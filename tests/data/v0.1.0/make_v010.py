"""Write the 0.1.0 compatibility fixture: run with grids-sc at tag ``v0.1.0`` (commit 7333079).

From a checkout of that tag, with this repository's ``tests`` folder on the path::

    git worktree add ../grids-v010 v0.1.0
    cd ../grids-v010 && PYTHONPATH=$PWD/src python /path/to/tests/data/v0.1.0/make_v010.py \
        /path/to/tests/data/v0.1.0/v010.h5mu

It writes a small simulated data set with both surrogate kinds (``surrogate``: the cis model,
``paper``: the paper's architecture), two ``explain`` records and an ``attribute`` record,
then reads the file back and stores what 0.1.0 made of it: every cell's predictions, the
tidy tables, and the data drawn by four plots. ``tests/test_compat.py`` checks that the
current package reads the same file into the same numbers.
"""

import json
import os
import sys

import matplotlib
import mudata
import numpy as np
import pandas as pd

import grids_sc as grids

matplotlib.use("Agg")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from plot_summary import summary  # noqa: E402  (tests/plot_summary.py)

mudata.set_options(pull_on_update=False)
out = sys.argv[1]
ref = os.path.splitext(out)[0]

m = grids.datasets.synthetic_multiome(n_cells=240, n_peaks=200, n_genes=3, n_celltypes=2, seed=7)
fit = {"groupby": "celltype", "max_epochs": 8, "progress": False, "seed": 0}
grids.tl.fit_surrogate(m, **fit)
grids.tl.fit_surrogate(m, model="grids", key_added="paper", **fit)
task = {"L": 4, "groupby": "celltype", "groups": "type0", "window": 250_000}
g = m["rna"].var_names[0]
grids.tl.explain(m, g, n_steps=5, **task)
grids.tl.explain(m, g, n_steps=5, key="paper", key_added="paper_explain", **task)
grids.tl.attribute(m, g, method="first_order", **task)
m.write(out)

r = mudata.read_h5mu(out)
pred = {}
for key in ("surrogate", "paper"):
    p = grids.tl.predict_expression(r, key=key, copy=True, device="cpu")
    pred[key] = np.asarray(p["rna"].layers["grids_predicted"])
np.savez_compressed(ref + "_predictions.npz", **pred)
frames = [grids.get.explain_df(r, k).assign(key=k) for k in r.uns["grids"]["explain"]]
pd.concat(frames).to_csv(ref + "_explain_df.csv", index=False)
grids.get.links(r).to_csv(ref + "_links.csv", index=False)
keys = list(r.uns["grids"]["explain"])
plots = {
    "track": summary(grids.pl.track(r, keys, show=False)),
    "delta": summary(grids.pl.delta(r, "grids_gene0_type0", show=False)),
    "trace": summary(grids.pl.trace(r, "grids_gene0_type0", show=False)),
    "interactions": summary(grids.pl.interactions(r, "grids_gene0_type0", show=False)),
}
with open(ref + "_plots.json", "w") as fh:
    json.dump(plots, fh)
