"""``grids.tl.explain``: the GRIDS subset search for the CREs a gene depends on."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence

from mudata import MuData

from .. import _records as records
from .._engine import (
    BATCH_SIZE,
    MIN_MOVE_Z,
    MOVES,
    SelectionSettings,
    check_executor,
    check_objective,
    check_progress,
    explain_batch,
    explain_task,
    init_names,
    make_plan,
    resolve_window,
    run_bar,
    run_batches,
    run_plan,
    step_reporter,
    task_device,
    use_batches,
    write_results,
)
from .._logging import timed
from .._mudata import check_copy
from ._surrogate import get_surrogate


def explain(
    mdata: MuData,
    gene: str | Sequence[str] | Mapping[str, Sequence[str]],
    L: int = 10,
    *,
    groupby: str | None = None,
    groups: str | Sequence[str] | None = None,
    key: str = "surrogate",
    perturb: str = "close",
    direction: str = "down",
    n_candidates: int = 32,
    n_steps: int = 500,
    window: int | str | None = "auto",
    restarts: int = 1,
    moves: str = "pair",
    init: str | Sequence[str] = "first_order",
    min_move_z: float = MIN_MOVE_Z,
    split_seed: int = 2023,
    device: str = "auto",
    seed: int = 0,
    key_added: str | None = None,
    executor=None,
    worker_threads: int | None = 1,
    batched: bool | None = None,
    batch_size: int = BATCH_SIZE,
    var_columns: bool | None = None,
    progress: bool | Callable[[dict], None] = True,
    copy: bool = False,
) -> MuData | None:
    """Find the ``L`` peaks whose joint perturbation moves a gene's predicted expression most.

    GRIDS minimises (``direction="down"``) or maximises (``"up"``) the mean predicted
    expression of the gene over a group's cells with the selected peaks closed
    (``perturb="close"``) or opened (``"open"``), by gradient-guided coordinate descent over
    the index set (:class:`grids_sc.search.GridsOptimizer`). The group's cells are split
    70/10/20 into search, validation and test cells; the search uses the first, restarts are
    ranked on the second, and the effect is reported on the held-out test cells. Selected
    peaks that no search cell can move (closing: closed in every one of them) tie on the
    objective; they are the candidates of that kind with the best signed saliency, which
    says how they act where they are open (held-out cells; see :ref:`dead-slots`).

    Parameters
    ----------
    mdata
        The data the surrogate ``key`` was fit on.
    gene
        A gene; a list of genes (one search each); or a dict ``{name: [genes]}`` of gene sets,
        each searched with the gene-set objective (mean relative change over the set).
    L
        Number of peaks to select.
    groupby
        Cell annotation defining groups (default: all cells form one group, ``"all"``).
    groups
        Group(s) to explain; default all groups of ``groupby`` with at least 10 cells.
    key
        Surrogate under ``mdata.uns['grids']``.
    perturb
        ``"close"`` (set selected peaks to 0) or ``"open"`` (set them to 1).
    direction
        ``"down"`` or ``"up"``: which way expression should move.
    n_candidates
        Swaps evaluated exactly per step.
    n_steps
        Most search steps (the search stops earlier when no swap improves).
    window
        Only peaks within this many bp of the gene body (of any gene of a set) are candidates;
        needs gene coordinates in the RNA ``var``. ``"auto"`` (default): the surrogate's own
        cis window (``cis_window`` of :func:`~grids_sc.tl.fit_surrogate`, 250 kb by default)
        for ``model="cis"`` and ``"loco"``, the window its heads read, and all peaks for the
        paper's ``model="grids"``, which has none. ``None``: all peaks, so peaks far from the
        gene that move it only through the shared cell state (a trans path: marker peaks of
        the cell type) can enter the selection; see :ref:`candidate-window`.
    restarts
        Searches from different starts; the best on validation cells is kept and each peak's
        selection frequency is reported as its confidence. With several ``init`` starts,
        ``restarts - 1`` random restarts follow them.
    moves
        ``"pair"``: each step also tries replacing two selected peaks by two new ones, scored
        by the second-order interaction of the peaks in the surrogate, so redundant (OR)
        peaks that matter only together are found. ``"single"``: one swap per step, the
        paper's coordinate descent.
    init
        Where the search starts: ``"greedy"`` builds the start one peak at a time, each
        addition evaluated exactly given the peaks already chosen
        (:func:`grids_sc.search.greedy_selection`); ``"first_order"`` starts from the top
        ``L`` first-order scores (``attribute(method="first_order")``), as in the paper; an
        attribution method's name (``"integrated_gradients"``, ``"saliency"``,
        ``"smoothgrad"``, ``"lime"``, ``"sage"``, ``"fimap"``) starts from that method's top
        ``L`` on the search cells (as :func:`grids_sc.tl.attribute` ranks them). Several
        starts (a list, or names joined by ``"+"``, e.g.
        ``"first_order+integrated_gradients"``) run one search from each, as restarts: the
        one that does best on the validation cells is kept, and it can only end at or below
        the objective of its own start on the search cells. See :ref:`search-starts`.
    min_move_z
        A move is kept only when its gain on the search cells is at least this many standard
        errors of the cells' gains (the mean change of each cell's prediction against its
        spread over the cells); the search stops at the first best move that does not clear
        it. Moves within the search cells' noise select on that noise and lose on other
        cells, most in small groups; see :ref:`move-noise`. ``0``: every improving move is
        kept (the paper's rule).
    split_seed
        Seed of the search/validation/test split of each group (2023 as in the paper).
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    seed
        Seed of the restarts.
    key_added
        Result key (one run) or key prefix (several runs). Default ``grids_{gene}_{group}``.
    executor
        Where the runs go: ``None`` runs them here one after the other; a
        ``dask.distributed.Client`` or a dask scheduler address (``"tcp://host:8786"``), or
        any ``concurrent.futures.Executor`` whose workers share this machine's file system
        (e.g. ``ProcessPoolExecutor``) runs each (gene, group) as one task. Each worker gets
        the surrogate once and each task only its group's accessibility rows; the results
        are stored here in the order of the serial run and are the same. With an executor,
        ``device`` is resolved on each worker. A failed task raises
        :class:`~grids_sc.tl.TaskError` naming it (the worker's exception is its cause), and
        nothing is written.
    worker_threads
        Torch threads of each task in a worker process (1 avoids oversubscribing cores that
        run one task each); ``None`` leaves the workers' setting. The results are the serial
        run's with as many torch threads; between thread counts a per-cell prediction can
        differ in its last float32 bit (torch splits elementwise ops across threads).
    batched
        Run the (gene, group) searches of one group together (the batched engine: one
        encoder pass per group shared by its genes, their first-order scores from one sparse
        product, genes leaving the batch as they converge) instead of one at a time. The
        results are the same. ``None``: batched when the call has at least 8 tasks.
    batch_size
        Most tasks run together (64); memory grows with it: about ``batch_size`` times a
        task's own (its perturbed per-chromosome sums, ``cells x chromosomes x emb_dim``
        floats per split, and its candidate moves). With an executor each worker runs whole
        batches.
    var_columns
        Write each result's per-peak ATAC ``var`` columns (``{key}_selected``, ``_rank``,
        ``_score``, ``_frequency``). ``None``: only when the call has fewer than 100 (gene,
        group) tasks; a genome-wide call instead keeps each result compactly in its record
        (the selected peaks' scores in ``per_peak['score']``, the 100 best-scored peaks' in
        ``peak_scores``), which :func:`grids_sc.get.explain_df` and the plots read the same
        way (a column over 100,000 peaks is about 1.7 MB per task).
    progress
        ``True``: a progress bar over the runs (with an executor, it advances as runs
        finish), or over the steps of a single run. ``False``: none. A callable (without an
        executor): called after every search step with a dict of ``name``, ``genes``,
        ``group``, ``key``, ``restart``, ``restarts``, ``step`` (0 at the start of each
        restart), ``n_steps``, ``value`` (the search objective) and ``objective`` (the
        relative change of mean predicted expression, as ``trace``). Every step is also
        logged at debug level (``grids.set_verbosity("debug")``). Results do not depend on it.
    copy
        Return a copy with the results instead of writing into ``mdata``.

    Returns
    -------
    MuData or None
        ``None`` (or the copy). Each run writes ``mdata.uns['grids']['explain'][key]`` with
        ``gene``, ``group``, ``selected`` (peaks in order of importance), ``trace``, ``delta``
        (Avg/Rel Δ on search and test cells), ``per_cell``, ``per_peak`` (effect of each peak alone
        and loss of effect when only it is restored; selection frequency) and ``settings``; and
        ATAC ``var`` columns ``{key}_selected``, ``{key}_rank`` (1 = most important, 0 = not
        selected) and ``{key}_score`` (first-order gain of perturbing the peak given the
        selection, relative to mean expression; NaN outside the window), plus
        ``{key}_frequency`` when ``restarts > 1`` (with ``var_columns``: by default only for
        calls of fewer than 100 tasks; see :doc:`/genome_wide`).

    Raises
    ------
    ValueError
        When the call's only (gene, group) has a gene that the surrogate predicts at 0 in
        every search cell of the group (there is nothing to move). In a call over several
        genes or groups such a task is skipped instead, with one warning naming every
        skipped (gene, group), and recorded in ``mdata.uns['grids']['skipped'][key]``
        (``name``, ``gene``, ``group``, ``reason``); the others are stored as usual.
    """
    params = records.call_params(locals())
    # ---- validate everything before writing anything ----------------------------------------
    if not copy:
        records.check_not_view(mdata)
    check_copy(mdata, copy)
    check_objective(perturb, direction, L)
    if moves not in MOVES:
        raise ValueError(f"moves must be one of {list(MOVES)}, got {moves!r}")
    init = "+".join(init_names(init))
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if n_candidates < 1 or n_steps < 0 or restarts < 1:
        raise ValueError("n_candidates and restarts must be at least 1, n_steps at least 0")
    if not (isinstance(min_move_z, numbers.Real) and min_move_z >= 0):
        raise ValueError(f"min_move_z must be a number of at least 0, got {min_move_z!r}")
    executor = check_executor(executor, worker_threads)
    check_progress(progress, executor)
    fitted = get_surrogate(mdata, key, check_genes=False)
    window = resolve_window(window, fitted)
    plan = make_plan(mdata, fitted, gene, L, groupby, groups, window, key_added, "grids")
    dev = task_device(device, executor)
    settings = SelectionSettings.of_call(
        "grids",
        key,
        L,
        perturb,
        direction,
        window,
        split_seed,
        seed,
        groupby,
        n_candidates=int(n_candidates),
        n_steps=int(n_steps),
        restarts=int(restarts),
        moves=moves,
        init=init,
        min_move_z=float(min_move_z),
    )

    # ---- run -----------------------------------------------------------------------------------
    with timed(f"explain: {len(plan.tasks)} task(s)"):
        steps = step_reporter(progress, len(plan.tasks), executor)
        if use_batches(batched, len(plan.tasks)):
            results = run_batches(
                plan, explain_batch, settings, (dev, steps), executor, worker_threads,
                "explain", run_bar(progress), batch_size,
            )  # fmt: skip
        else:
            results = run_plan(plan, explain_task, settings, (dev, steps), executor,
                               worker_threads, "explain", run_bar(progress))  # fmt: skip
    return write_results(mdata, plan, results, copy, params, var_columns)
