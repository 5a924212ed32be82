"""Storing a plan's results: one record per task through the records module, and the tasks'
per-peak ATAC ``var`` columns in one operation.
"""

from __future__ import annotations

import pandas as pd

from .. import _records as records
from .._logging import logger as log
from .._mudata import copy_of
from ._plan import Plan
from ._selection import named_record


def write_results(mdata, plan: Plan, results, copy: bool, params: dict):
    """Store each task's record and ``.var`` columns (in ``mdata`` or a copy)."""
    target = copy_of(mdata) if copy else mdata
    new = {}
    for task, (record, columns) in zip(plan.tasks, results):
        records.write(target, "selection", task.key, named_record(record, plan.peak_names), params)
        new.update({f"{task.key}_{col}": values for col, values in columns.items()})
    a_atac = target.mod[plan.atac]
    columns = pd.DataFrame(new, index=a_atac.var_names)
    records.replace_var_columns(a_atac, [task.key for task in plan.tasks], columns)
    log.info(
        "added %d result(s) to .uns['grids']['explain'] and their columns to .mod[%r].var",
        len(plan.tasks),
        plan.atac,
    )
    return target if copy else None
