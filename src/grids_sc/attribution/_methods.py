"""Peak-ranking baselines for the GRIDS objective, on a subset problem's cells.

Every method returns one score per candidate peak: higher means perturbing the peak (closing
or opening it, as the problem says) moves the objective further in the wanted direction.
Gradient methods use Captum; ``sage`` uses the ``sage-importance`` package; ``fimap`` trains a
perturbation-mask generator; ``correlation`` needs no model (see :mod:`._correlation`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ..search import EmbeddingSumProblem
from ._correlation import correlation_z
from ._window import WindowObjective

METHODS = (
    "random",
    "saliency",
    "first_order",
    "smoothgrad",
    "integrated_gradients",
    "lime",
    "sage",
    "fimap",
    "correlation",
)


def random_scores(problem: EmbeddingSumProblem, features: np.ndarray, *, seed: int = 0):
    """Uniform random scores (a seeded random ranking)."""
    return np.random.default_rng(seed).random(len(features))


def saliency_scores(problem: EmbeddingSumProblem, features: np.ndarray):
    """Vanilla saliency: the gradient of the group objective with respect to each peak's
    accessibility, summed over the cells, signed so that high means moving the peak towards
    the perturbed value moves the objective the wanted way (``(1 - 2p) g_j``).

    This is the saliency map of Simonyan et al. as Captum's ``Saliency`` computes it (with
    ``abs=False``: the sign says which way a peak acts), of the objective at the observed
    states. It does not ask whether a peak is open in a cell, so it ranks by sensitivity,
    not by effect; :func:`first_order_scores` weighs each cell's gradient by the change the
    perturbation makes there. Sparse: O(nnz), genome-wide candidate sets included.
    """
    g = problem.input_gradient()
    scores = (1.0 - 2.0 * problem.p) * g[torch.as_tensor(features, device=g.device)]
    return scores.detach().cpu().numpy()


def first_order_scores(problem: EmbeddingSumProblem, features: np.ndarray):
    """``-d_j``, where ``d_j = sum_c (p - x_cj) dObjective/dx_cj`` is the first-order change of
    the objective from perturbing peak ``j`` alone (gradient times the change; for closing,
    Captum's ``InputXGradient``).

    The top ``L`` of these is where GRIDS's search starts (``explain(init="first_order")``),
    so it is the baseline that shows what the search adds. Sparse: O(nnz).
    """
    d = problem.first_order(torch.empty(0, dtype=torch.long, device=problem.device))
    return -d[torch.as_tensor(features, device=d.device)].detach().cpu().numpy()


def _gradient_times_change(problem, fwd, grads: torch.Tensor) -> np.ndarray:
    """Score from per-cell gradients: ``-sign * mean_c g_cj (p - x_cj)``."""
    change = problem.p - fwd.x
    return (-problem.sign * (grads * change).mean(0)).detach().cpu().numpy()


def smoothgrad_scores(
    problem: EmbeddingSumProblem,
    features: np.ndarray,
    *,
    seed: int = 0,
    nt_samples: int = 16,
    stdev: float = 0.15,
    batch_cells: int = 512,
):
    """SmoothGrad (Captum ``NoiseTunnel`` over ``Saliency``, signed): gradients averaged over
    Gaussian-noised window states, times each peak's perturbation.
    """
    from captum.attr import NoiseTunnel, Saliency

    fwd = WindowObjective(problem, features)
    torch.manual_seed(seed)
    nt = NoiseTunnel(Saliency(fwd))
    grads = []
    for s in range(0, problem.n_cells, batch_cells):
        cells = fwd.all_cells()[s : s + batch_cells]
        grads.append(
            nt.attribute(
                fwd.x[cells].clone(),
                nt_type="smoothgrad",
                nt_samples=nt_samples,
                stdevs=stdev,
                abs=False,
                additional_forward_args=(cells,),
            )
        )
    return _gradient_times_change(problem, fwd, torch.cat(grads))


def integrated_gradients_scores(
    problem: EmbeddingSumProblem,
    features: np.ndarray,
    *,
    n_steps: int = 32,
    batch_cells: int = 256,
):
    """Integrated gradients (Captum) from the perturbed state (all candidates at ``p``) to
    each cell's observed state; ``sign * mean_c a_cj`` (the attributions of a cell sum to
    its prediction minus the prediction with every candidate perturbed).
    """
    from captum.attr import IntegratedGradients

    fwd = WindowObjective(problem, features)
    ig = IntegratedGradients(fwd)
    attr = []
    for s in range(0, problem.n_cells, batch_cells):
        cells = fwd.all_cells()[s : s + batch_cells]
        inputs = fwd.x[cells].clone()
        attr.append(
            ig.attribute(
                inputs,
                baselines=torch.full_like(inputs, problem.p),
                n_steps=n_steps,
                additional_forward_args=(cells,),
                internal_batch_size=batch_cells,
            )
        )
    return (problem.sign * torch.cat(attr).mean(0)).detach().cpu().numpy()


class _MaskObjective(nn.Module):
    """The group objective as a function of a keep-mask over the window (1 = observed,
    0 = perturbed), one exact problem value per mask row.
    """

    def __init__(self, problem: EmbeddingSumProblem, features: np.ndarray) -> None:
        super().__init__()
        self.problem = problem
        self.features = torch.as_tensor(np.asarray(features), dtype=torch.long)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        vals = [
            self.problem.value(self.features[row.cpu() < 0.5].to(self.problem.device))
            for row in mask
        ]
        return torch.tensor(vals, dtype=torch.float32)


def lime_scores(
    problem: EmbeddingSumProblem,
    features: np.ndarray,
    *,
    seed: int = 0,
    n_samples: int = 1000,
    alpha: float = 1e-3,
):
    """LIME (Captum ``Lime``): a ridge surrogate of the group objective over random keep-masks
    of the candidates (each mask evaluated exactly); the score is each peak's coefficient.
    """
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    f = _MaskObjective(problem, features)
    torch.manual_seed(seed)
    lime = Lime(f, interpretable_model=SkLearnRidge(alpha=alpha))
    ones = torch.ones(1, len(features))
    coef = lime.attribute(ones, baselines=torch.zeros_like(ones), n_samples=n_samples)
    # keeping a peak raises the objective by its coefficient: perturbing it lowers it so much
    return coef.reshape(-1).detach().cpu().numpy()


def sage_scores(
    problem: EmbeddingSumProblem,
    features: np.ndarray,
    *,
    seed: int = 0,
    n_permutations: int | None = None,
    batch_size: int = 256,
):
    """SAGE (the ``sage-importance`` package): Shapley values of each candidate for the loss
    ``F^2`` (distance of the relative prediction from zero) over the cells, a removed peak set
    to the perturbed value ``p``. The score is the loss increase of removing (perturbing) a
    peak for ``direction="up"`` and its decrease for ``"down"``.
    """
    import sage

    fwd = WindowObjective(problem, features)
    n_w = len(features)

    def model(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            cells = torch.as_tensor(x[:, 0], dtype=torch.long)
            u = torch.as_tensor(x[:, 1:], dtype=torch.float32)
            return fwd(u, cells).cpu().numpy()

    imputer = _CellImputer(model, n_w, problem.p)
    estimator = sage.PermutationEstimator(imputer, "mse", random_state=seed)
    x = np.hstack(
        [np.arange(problem.n_cells, dtype=np.float64)[:, None], fwd.x.cpu().numpy().astype(float)]
    )
    expl = estimator(
        x,
        np.zeros(problem.n_cells),
        batch_size=batch_size,
        n_permutations=n_permutations,
        detect_convergence=n_permutations is None,
        bar=False,
    )
    return -problem.sign * np.asarray(expl.values, dtype=np.float64)


class _CellImputer:
    """A ``sage`` imputer over inputs ``[cell, window states]``: removed window peaks are set
    to the perturbed value and the cell column is always kept (``sage``'s grouped imputer
    does the same through a dense inclusion matrix of every group, quadratic in the window).
    """

    def __init__(self, model, n_features: int, value: float) -> None:
        self.model, self.num_groups, self.value = model, n_features, value

    def __call__(self, x: np.ndarray, S: np.ndarray) -> np.ndarray:  # noqa: N803 (sage's name)
        x_ = x.copy()
        x_[:, 1:][~S] = self.value
        return self.model(x_)


class _MaskGenerator(nn.Module):
    """FIMAP's generator: a cell's window states -> per-peak perturbation probabilities."""

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU())
        self.out = nn.Linear(hidden, n_features)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, -3.0)  # start with almost nothing perturbed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.net(x)))


def fimap_scores(
    problem: EmbeddingSumProblem,
    features: np.ndarray,
    *,
    seed: int = 0,
    L: int = 10,
    epochs: int = 300,
    lr: float = 1e-2,
    sparsity: float = 1.0,
    batch_cells: int = 512,
):
    """FIMAP: train a generator of per-cell perturbation masks ``m`` that moves the
    prediction (``sign * F(x + m (p - x))``) under a budget of ``L`` perturbed peaks per cell
    (penalty ``sparsity * relu(sum_j m_j - L) / L``); the score is the mean mask of each peak.
    """
    fwd = WindowObjective(problem, features)
    torch.manual_seed(seed)
    gen = _MaskGenerator(len(features)).to(problem.device)
    params = list(gen.parameters())
    opt = torch.optim.Adam(gen.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    n = problem.n_cells
    for _ in range(epochs):
        cells = torch.as_tensor(rng.permutation(n)[:batch_cells], device=problem.device)
        x = fwd.x[cells]
        m = gen(x)
        u = x + m * (problem.p - x)
        over = torch.relu(m.sum(1) - L) / max(L, 1)
        loss = problem.sign * fwd(u, cells).mean() + sparsity * over.mean()
        # gradients of the generator only: the surrogate's parameters are left untouched
        for p, g in zip(params, torch.autograd.grad(loss, params)):
            p.grad = g
        opt.step()
    with torch.no_grad():
        masks = torch.cat([gen(fwd.x[s : s + batch_cells]) for s in range(0, n, batch_cells)])
        # a peak already at p in a cell cannot move it: weight by the cells it can change
        weight = (fwd.x != problem.p).float()
        return ((masks * weight).mean(0)).cpu().numpy()


#: what the engine passes to a scorer that takes it (the call's own ``seed`` and ``L``)
ENGINE_ARGUMENTS = ("seed", "L")


def method_options(method: str) -> tuple[str, ...]:
    """The options a method takes through ``attribute(**method_kwargs)``: its scorer's
    keyword arguments less those the engine passes.
    """
    func = correlation_z if method == "correlation" else SCORERS[method]
    params = inspect.signature(func).parameters.values()
    return tuple(
        p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in ENGINE_ARGUMENTS
    )


def check_method_options(method: str, options: Mapping) -> None:
    """Raise a ``TypeError`` naming the options ``method`` does not take."""
    known = method_options(method)
    unknown = [k for k in options if k not in known]
    if unknown:
        raise TypeError(
            f"method {method!r} got unknown option(s) {unknown}; it takes "
            + (", ".join(known) if known else "no options")
        )


def engine_arguments(func, **values) -> dict:
    """Those of ``values`` (``seed``, ``L``) that ``func`` takes."""
    params = inspect.signature(func).parameters
    return {k: v for k, v in values.items() if k in params}


SCORERS = {
    "random": random_scores,
    "saliency": saliency_scores,
    "first_order": first_order_scores,
    "smoothgrad": smoothgrad_scores,
    "integrated_gradients": integrated_gradients_scores,
    "lime": lime_scores,
    "sage": sage_scores,
    "fimap": fimap_scores,
}
