"""Write the LOCO compatibility fixture: run with grids-sc at commit 976601a (before the heads'
keep margin), with this repository's checkout of that commit on ``PYTHONPATH``::

    git worktree add ../grids-976601a 976601a
    cd ../grids-976601a && PYTHONPATH=$PWD/src python \
        /path/to/tests/data/loco_976601a/make_loco.py /path/to/tests/data/loco_976601a/loco.h5mu

It writes a small simulated data set with a ``model="loco"`` surrogate and an ``explain``
record, reads the file back and stores every cell's predictions and the explain table.
``tests/test_loco.py`` checks that the current package reads the same file into the same
numbers.
"""

import os
import sys

import mudata
import numpy as np

import grids_sc as grids

mudata.set_options(pull_on_update=False)
out = sys.argv[1]
ref = os.path.splitext(out)[0]

m = grids.datasets.synthetic_multiome(n_cells=300, n_peaks=240, n_genes=4, n_celltypes=2, seed=7)
grids.tl.fit_surrogate(
    m, model="loco", groupby="celltype", max_epochs=8, cis_max_epochs=40, progress=False, seed=0
)
g = m["rna"].var_names[0]
grids.tl.explain(m, g, L=4, groupby="celltype", groups="type0", window=250_000, n_steps=5)
m.write(out)

r = mudata.read_h5mu(out)
p = grids.tl.predict_expression(r, copy=True, device="cpu")
np.savez_compressed(ref + "_predictions.npz", pred=np.asarray(p["rna"].layers["grids_predicted"]))
grids.get.explain_df(r, list(r.uns["grids"]["explain"])[0]).to_csv(
    ref + "_explain_df.csv", index=False
)
