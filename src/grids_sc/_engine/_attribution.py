"""Attribution tasks: one baseline ranking of a (gene, group) on a worker, stored in the form
of ``explain``'s results; and the inputs the correlation baseline needs.
"""

from __future__ import annotations

import numpy as np
from mudata import MuData

from .._inputs import peak_chromosomes, rna_values
from ..attribution import correlation_z
from ._plan import Task
from ._selection import Skipped, problems, selection_record, unexpressed
from ._settings import SelectionSettings
from ._starts import scored_features

MIN_BACKGROUND = 50


def attribute_task(
    module, rows, task: Task, settings: SelectionSettings, dev
) -> tuple[dict, dict] | Skipped:
    """One attribution run: the surrogate, the group's CSR rows, the task and the settings ->
    the record (selected peaks by index) and the ``.var`` columns. Runs on workers.
    """
    method, L, method_kwargs = settings.method, settings.L, settings.options
    cells, local, probs = problems(module, rows, task, settings, dev)
    skipped = unexpressed(task, probs)
    if skipped is not None:
        return skipped
    mask = task.candidates
    if method == "correlation":
        feats = np.flatnonzero(mask)
        scores = _correlation(rows, task, local["train"], feats, settings, method_kwargs)
        scores = np.asarray(scores, dtype=np.float64)
    else:
        feats, scores = scored_features(
            method, probs["train"], mask, settings, method_kwargs, task.name
        )
    n_ranked = {"n_ranked": int(len(feats))}
    order = np.argsort(-scores, kind="stable")[:L]
    full = np.full(len(mask), np.nan)
    full[feats] = scores
    extra = {"scores": full[mask]}
    return selection_record(
        task, feats[order], full, cells, probs, settings, extra, more_settings=n_ranked
    )


def _expression(mdata: MuData, plan, rows: np.ndarray) -> np.ndarray:
    """Observed expression of the model's genes in cells ``rows`` (sorted) on the scale the
    surrogate was fit on (only those rows are read from backed data).
    """
    a_rna = mdata.mod[plan.rna]
    fitted = plan.fitted
    y, _ = rna_values(a_rna, fitted.rna_layer, fitted.rna_transform, plan.rna, rows=rows)
    cols = a_rna.var_names.get_indexer(fitted.genes)
    return np.asarray(y[:, cols], dtype=np.float64)


def correlation_inputs(mdata: MuData, plan) -> None:
    """Give each task what the correlation method needs: the observed expression of its
    genes in its group's cells and the background peaks (accessibility-matched peaks are
    drawn from them).
    """
    rows = np.unique(np.concatenate([task.cells for task in plan.tasks]))
    y_rows = _expression(mdata, plan, rows)
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
            "expression": y_rows[np.ix_(np.searchsorted(rows, task.cells), task.gene_index)],
            "background": background,
        }


def _correlation(rows, task: Task, train: np.ndarray, feats, settings, kwargs) -> np.ndarray:
    """Background z-scores of the candidates, signed so that high means the perturbation
    moves expression the wanted way (closing a positively linked peak lowers expression).
    """
    y = task.inputs["expression"][train]
    sd = y.std(0)
    y = ((y - y.mean(0)) / np.where(sd > 0, sd, 1.0)).mean(1)
    _, z = correlation_z(
        rows[train], y, feats, task.inputs["background"], seed=settings.seed, **kwargs
    )
    want = settings.sign * (1.0 if settings.perturb == "close" else -1.0)
    return want * z
