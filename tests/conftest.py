import mudata
import pytest

import grids_sc as grids

mudata.set_options(pull_on_update=False)


@pytest.fixture(scope="session")
def sim_small():
    """A small simulated multiome data set with planted CREs (never modified by tests)."""
    return grids.datasets.synthetic_multiome(
        n_cells=1200, n_peaks=800, n_genes=8, n_celltypes=3, seed=3
    )


@pytest.fixture(scope="session")
def sim_fitted(sim_small):
    """``sim_small`` with a surrogate fitted under the key ``surrogate`` (copy per test)."""
    m = sim_small.copy()
    grids.tl.fit_surrogate(m, groupby="celltype", max_epochs=25, progress=False, seed=0)
    return m


@pytest.fixture
def fitted(sim_fitted):
    return sim_fitted.copy()
