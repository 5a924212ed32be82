"""Storing a plan's results: one record per task through the records module, and the tasks'
per-peak ATAC ``var`` columns in one operation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .. import _records as records
from .._logging import logger as log
from .._mudata import copy_of
from ._plan import Plan
from ._selection import Skipped, named_record


def write_results(mdata, plan: Plan, results, copy: bool, params: dict, var_columns=None):
    """Store each task's record and ``.var`` columns (in ``mdata`` or a copy).

    ``var_columns`` (``None``: when the call has fewer than
    :data:`~grids_sc._records.VAR_COLUMNS_MAX_TASKS` tasks) writes each task's per-peak
    ``.var`` columns; without them each record keeps its selected peaks' scores in
    ``per_peak['score']`` and the best-scored peaks' in ``peak_scores``
    (:func:`~grids_sc._records.compact_peak_scores`), which ``get.explain_df`` and the plots
    read instead.

    A task with nothing to move (:class:`Skipped`: the surrogate predicts 0 for its gene in
    the whole group) is an error when it is the call's only task; among several it is left
    out with one warning naming every skipped (gene, group), recorded in the ``skipped``
    store under its key (an earlier result under that key and its columns are removed).
    """
    skipped = [r for r in results if isinstance(r, Skipped)]
    if skipped and len(plan.tasks) == 1:
        raise ValueError(f"cannot explain {skipped[0].name!r} in group {skipped[0].group!r}: "
                         f"{skipped[0].reason}")  # fmt: skip
    if skipped:
        pairs = ", ".join(f"({s.name!r}, {s.group!r})" for s in skipped)
        warnings.warn(
            f"skipped {len(skipped)} of {len(plan.tasks)} (gene, group) task(s), which the "
            f"surrogate predicts at 0 in every search cell of the group: {pairs}; they are "
            f"listed in mdata.uns['grids']['skipped']",
            UserWarning,
            stacklevel=3,
        )
    if var_columns is None:
        var_columns = len(plan.tasks) < records.VAR_COLUMNS_MAX_TASKS
    target = copy_of(mdata) if copy else mdata
    root = records.open_for_write(target)  # once: each record is put into it
    new = {}
    for task, result in zip(plan.tasks, results):
        if isinstance(result, Skipped):
            records.remove(root, "selection", task.key)
            record = {"name": result.name, "gene": np.asarray(result.genes, dtype=str),
                      "group": result.group, "reason": result.reason}  # fmt: skip
            records.put(root, "skipped", task.key, record, params, stacklevel=4)
            continue
        record, columns = result
        records.remove(root, "skipped", task.key)
        named = named_record(record, plan.peak_names)
        if var_columns:
            new.update({f"{task.key}_{col}": v for col, v in columns.dense().items()})
        else:
            named["per_peak"]["score"] = columns.score_of(record["selected_index"])
            named["peak_scores"] = records.compact_peak_scores(
                plan.peak_names, columns.scored, columns.score, columns.selected
            )
        records.put(root, "selection", task.key, named, params, stacklevel=4)
    a_atac = target.mod[plan.atac]
    columns = pd.DataFrame(new, index=a_atac.var_names)
    records.replace_var_columns(a_atac, [task.key for task in plan.tasks], columns)
    log.info(
        "added %d result(s) to .uns['grids']['explain']%s",
        len(plan.tasks) - len(skipped),
        f" and their columns to .mod[{plan.atac!r}].var" if var_columns else "",
    )
    return target if copy else None
