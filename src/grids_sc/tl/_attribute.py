"""``grids.tl.attribute``: baseline peak rankings, stored like ``explain``'s results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mudata import MuData

from .. import _records as records
from .._engine import (
    EXPENSIVE,
    SelectionSettings,
    attribute_task,
    check_executor,
    check_objective,
    correlation_inputs,
    make_plan,
    resolve_window,
    run_plan,
    task_device,
    write_results,
)
from .._logging import timed
from .._mudata import check_copy
from ..attribution import METHODS
from ..attribution._methods import check_method_options
from ._surrogate import get_surrogate


def attribute(
    mdata: MuData,
    gene: str | Sequence[str] | Mapping[str, Sequence[str]],
    method: str,
    *,
    L: int = 10,
    groupby: str | None = None,
    groups: str | Sequence[str] | None = None,
    key: str = "surrogate",
    perturb: str = "close",
    direction: str = "down",
    window: int | str | None = "auto",
    max_features: int = 2000,
    split_seed: int = 2023,
    device: str = "auto",
    seed: int = 0,
    key_added: str | None = None,
    executor=None,
    worker_threads: int | None = 1,
    var_columns: bool | None = None,
    progress: bool = True,
    copy: bool = False,
    **method_kwargs,
) -> MuData | None:
    """Rank peaks by a baseline attribution method and select the top ``L``.

    The same objective, cells and split as :func:`grids_sc.tl.explain` (the gene's mean
    predicted expression over a group's cells, moved ``direction`` by setting peaks to the
    ``perturb`` value; search cells for ranking, held-out test cells for the effect), so that
    every method is evaluated and plotted alike: the result is written to
    ``mdata.uns['grids']['explain'][key]`` and to ATAC ``var`` columns in ``explain``'s form.

    Parameters
    ----------
    mdata
        The data the surrogate ``key`` was fit on.
    gene
        As in :func:`~grids_sc.tl.explain`: a gene, a list (one run each) or ``{name: genes}``.
    method
        ``"random"`` (seeded), ``"saliency"`` (the gradient of the objective with respect
        to each peak's accessibility, summed over the cells: the saliency map as Captum's
        ``Saliency`` computes it), ``"first_order"`` (the first-order change of perturbing
        each peak alone, gradient times change: the ranking GRIDS's search starts from),
        ``"smoothgrad"`` (Captum's ``NoiseTunnel`` gradients times each peak's change: a
        smoothed ``first_order``), ``"integrated_gradients"`` and ``"lime"`` (Captum),
        ``"sage"`` (the ``sage-importance`` package), ``"fimap"`` (a learned
        perturbation-mask generator), or ``"correlation"``: the peak–gene Pearson
        correlation over the group's search cells as a z-score against
        accessibility-matched background peaks on other chromosomes (as Signac's
        ``LinkPeaks``; with one chromosome, peaks outside the window; with neither a window
        nor gene coordinates, all peaks), which uses no surrogate to rank (the surrogate still
        measures the selection's effect).
    L
        Peaks selected (the top ``L`` scores).
    groupby, groups, key, perturb, direction, window
        As in :func:`~grids_sc.tl.explain`.
    split_seed, device, seed, key_added, executor, worker_threads, var_columns, progress, copy
        As in :func:`~grids_sc.tl.explain` (default keys ``{method}_{gene}_{group}``); with an
        executor, each (gene, group) is one task.
    max_features
        ``lime``, ``sage`` and ``fimap`` cost grows with the candidates: above this many, they
        rank only the top ``max_features`` candidates by ``first_order`` (the others score
        NaN); the number used is stored in the settings.
    **method_kwargs
        Passed to the method (e.g. ``n_samples`` for LIME, ``nt_samples`` for SmoothGrad,
        ``n_steps`` for integrated gradients, ``epochs``/``sparsity`` for FIMAP,
        ``n_permutations`` for SAGE, ``n_background`` for correlation). An option the method
        does not take raises a ``TypeError`` naming it, before anything runs.

    Returns
    -------
    MuData or None
        ``None`` (or the copy). Each record holds what ``explain`` stores (``selected``,
        ``delta``, ``per_cell``, ``per_peak``, ``settings`` with ``method``), plus ``scores``
        of the candidates.
    """
    params = records.call_params(locals())
    if not copy:
        records.check_not_view(mdata)
    check_copy(mdata, copy)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    check_method_options(method, method_kwargs)
    check_objective(perturb, direction, L)
    if method in EXPENSIVE and max_features < L:
        raise ValueError(f"max_features ({max_features}) must be at least L ({L})")
    executor = check_executor(executor, worker_threads)
    fitted = get_surrogate(mdata, key, check_genes=False)
    window = resolve_window(window, fitted)
    plan = make_plan(mdata, fitted, gene, L, groupby, groups, window, key_added, method)
    dev = task_device(device, executor)
    settings = SelectionSettings.of_call(
        method,
        key,
        L,
        perturb,
        direction,
        window,
        split_seed,
        seed,
        groupby,
        max_features=int(max_features),
        options=dict(method_kwargs),
    )
    if method == "correlation":
        correlation_inputs(mdata, plan)
    with timed(f"attribute ({method}): {len(plan.tasks)} task(s)"):
        results = run_plan(plan, attribute_task, settings, (dev,), executor, worker_threads,
                           method, progress)  # fmt: skip
    return write_results(mdata, plan, results, copy, params, var_columns)
