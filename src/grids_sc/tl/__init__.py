"""Tools: fit the surrogate, predict expression, measure fidelity, explain genes by CRE subsets."""

from .._engine import TaskError
from ._attribute import attribute
from ._crispr import crispr_pairs, evaluate_crispr
from ._evaluate import evaluate
from ._explain import explain
from ._fidelity import surrogate_fidelity
from ._interventional import interventional_fidelity
from ._links import link_peaks
from ._predict import predict_expression
from ._surrogate import fit_surrogate, get_surrogate

__all__ = [
    "TaskError",
    "attribute",
    "crispr_pairs",
    "evaluate",
    "evaluate_crispr",
    "explain",
    "fit_surrogate",
    "get_surrogate",
    "interventional_fidelity",
    "link_peaks",
    "predict_expression",
    "surrogate_fidelity",
]
