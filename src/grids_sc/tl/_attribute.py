"""``grids.tl.attribute``: baseline peak rankings, stored like ``explain``'s results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from mudata import MuData

from .. import _records as records
from ..attribution import METHODS, SCORERS, correlation_z
from ._executor import check_executor
from ._explain import (
    DIRECTION,
    _device,
    _plan,
    _Task,
    _write,
    check_objective,
    problems,
    run_plan,
    selection_record,
)
from ._inputs import peak_chromosomes, rna_values

EXPENSIVE = ("lime", "sage", "fimap")
MIN_BACKGROUND = 50


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
    window: int | None = None,
    max_features: int = 2000,
    split_seed: int = 2023,
    device: str = "auto",
    seed: int = 0,
    key_added: str | None = None,
    executor=None,
    worker_threads: int | None = 1,
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
    split_seed, device, seed, key_added, executor, worker_threads, progress, copy
        As in :func:`~grids_sc.tl.explain` (default keys ``{method}_{gene}_{group}``); with an
        executor, each (gene, group) is one task.
    max_features
        ``lime``, ``sage`` and ``fimap`` cost grows with the candidates: above this many, they
        rank only the top ``max_features`` candidates by ``first_order`` (the others score
        NaN); the number used is stored in the settings.
    **method_kwargs
        Passed to the method (e.g. ``n_samples`` for LIME, ``nt_samples`` for SmoothGrad,
        ``n_steps`` for integrated gradients, ``epochs``/``sparsity`` for FIMAP,
        ``n_permutations`` for SAGE, ``n_background`` for correlation).

    Returns
    -------
    MuData or None
        ``None`` (or the copy). Each record holds what ``explain`` stores (``selected``,
        ``delta``, ``per_cell``, ``per_peak``, ``settings`` with ``method``), plus ``scores``
        of the candidates.
    """
    params = records.call_params(locals())
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    check_objective(perturb, direction, L)
    if method in EXPENSIVE and max_features < L:
        raise ValueError(f"max_features ({max_features}) must be at least L ({L})")
    executor = check_executor(executor, worker_threads)
    plan = _plan(mdata, gene, L, groupby, groups, key, window, key_added, method)
    dev = _device(device, executor)
    settings = {
        "L": int(L),
        "perturb": perturb,
        "direction": direction,
        "window": None if window is None else int(window),
        "split_seed": int(split_seed),
        "seed": int(seed),
        "groupby": groupby,
        "surrogate": key,
        "method": method,
        **{k: v for k, v in method_kwargs.items() if isinstance(v, (int, float, str, bool))},
    }
    if method == "correlation":
        _correlation_inputs(mdata, plan)
    results = run_plan(
        plan, attribute_task, settings, (dev, method_kwargs, max_features), executor,
        worker_threads, method, progress,
    )  # fmt: skip
    return _write(mdata, plan, results, copy, params)


def attribute_task(
    module, rows, task: _Task, settings: dict, dev, method_kwargs: dict, max_features: int
) -> tuple[dict, dict]:
    """One attribution run: the surrogate, the group's CSR rows, the task and the settings ->
    the record (selected peaks by index) and the ``.var`` columns. Runs on workers.
    """
    method, L, seed = settings["method"], settings["L"], settings["seed"]
    cells, local, probs = problems(module, rows, task, settings, dev)
    mask = task.candidates
    feats = np.flatnonzero(mask)
    task_settings = dict(settings)
    if method in EXPENSIVE and len(feats) > max_features:
        first = SCORERS["first_order"](probs["train"], feats)
        feats = np.sort(feats[np.argsort(-first, kind="stable")[:max_features]])
    task_settings["n_ranked"] = int(len(feats))
    if method == "correlation":
        scores = _correlation(rows, task, local["train"], feats, settings, method_kwargs)
    else:
        scores = SCORERS[method](probs["train"], feats, seed=seed, L=L, **method_kwargs)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise FloatingPointError(f"{method} gave non-finite scores for {task.name!r}")
    order = np.argsort(-scores, kind="stable")[:L]
    full = np.full(len(mask), np.nan)
    full[feats] = scores
    extra = {"scores": full[mask]}
    return selection_record(task, feats[order], full, cells, probs, task_settings, extra)


def _expression(mdata: MuData, plan) -> np.ndarray:
    """Observed expression of the model's genes on the scale the surrogate was fit on."""
    a_rna = mdata.mod[plan.rna]
    y, _ = rna_values(a_rna, plan.fitted.rna_layer, plan.fitted.rna_transform, plan.rna)
    cols = a_rna.var_names.get_indexer(plan.fitted.genes)
    return np.asarray(y[:, cols], dtype=np.float64)


def _correlation_inputs(mdata: MuData, plan) -> None:
    """Give each task what the correlation method needs: the observed expression of its
    genes in its group's cells and the background peaks (accessibility-matched peaks are
    drawn from them).
    """
    y_all = _expression(mdata, plan)
    chrom, chrom_names = peak_chromosomes(mdata.mod[plan.atac], plan.atac)
    rna_var = mdata.mod[plan.rna].var
    for task in plan.tasks:
        gene_chroms = set()
        if "chrom" in rna_var:
            names = set(rna_var.loc[task.genes, "chrom"].astype(str))
            gene_chroms = {i for i, c in enumerate(chrom_names) if c in names}
        if not gene_chroms:  # no coordinates: the candidates' own chromosomes are excluded
            gene_chroms = set(np.unique(chrom[task.candidates]).tolist())
        background = ~np.isin(chrom, list(gene_chroms))
        if background.sum() < MIN_BACKGROUND:  # one chromosome: the peaks outside the window
            background = ~task.candidates
        if background.sum() < MIN_BACKGROUND:  # no window and no gene coordinates: all peaks
            background = np.ones(len(chrom), dtype=bool)
        task.inputs = {
            "expression": y_all[np.ix_(task.cells, task.gene_index)],
            "background": background,
        }


def _correlation(rows, task: _Task, train: np.ndarray, feats, settings, kwargs) -> np.ndarray:
    """Background z-scores of the candidates, signed so that high means the perturbation
    moves expression the wanted way (closing a positively linked peak lowers expression).
    """
    y = task.inputs["expression"][train]
    sd = y.std(0)
    y = ((y - y.mean(0)) / np.where(sd > 0, sd, 1.0)).mean(1)
    _, z = correlation_z(
        rows[train], y, feats, task.inputs["background"], seed=settings["seed"], **kwargs
    )
    want = DIRECTION[settings["direction"]] * (1.0 if settings["perturb"] == "close" else -1.0)
    return want * z
