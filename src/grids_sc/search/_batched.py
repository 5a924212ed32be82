"""Many GRIDS searches run together: the batched runner of a genome-wide ``explain``.

Each search is the request generator of :func:`~grids_sc.search._run.search_requests` (the
same code as :func:`~grids_sc.search.run_search`, which answers its requests one at a time).
:func:`run_searches` advances all searches in lock-step: every live search has one question
pending (first-order scores, exact values of its candidate moves, pair effects, the value of
a selection); the questions are grouped by kind and each kind is answered for all searches
in one call (:class:`BatchAnswers`); a search leaves the batch when it has converged (its
generator returns its :class:`~grids_sc.search.SearchResult`). Every answer equals the one
the search would get alone, so the results are those of :func:`run_search`.

First-order scores of problems that share their cells (the genes of one group, their
evaluators built with :meth:`~grids_sc.model.IncrementalSurrogate.for_genes`) come from one
sparse product of the cells' accessibility with all their gradients; the other questions
are answered problem by problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ._optimizer import answer
from ._problem import SubsetProblem
from ._run import SearchResult, search_requests


class BatchAnswers:
    """Answers the pending questions of many searches, one call per kind of question.

    Parameters
    ----------
    problems
        The search problem of each search.
    validations
        The validation problem of each search (``None`` entries: none).
    """

    def __init__(
        self, problems: Sequence[SubsetProblem], validations: Sequence[SubsetProblem | None]
    ) -> None:
        self.problems, self.validations = list(problems), list(validations)

    def __call__(self, kind: str, pending: dict[int, tuple]) -> dict[int, object]:
        """``{search: answer}`` for the ``pending`` requests ``{search: request}`` of one
        ``kind``.
        """
        if kind == "first_order":
            idx = list(pending)
            probs = [self.problems[i] for i in idx]
            many = getattr(type(probs[0]), "first_order_many", None)
            if many is not None and all(type(p) is type(probs[0]) for p in probs):
                with torch.no_grad():
                    ds = many(probs, [pending[i][1] for i in idx])
                return {i: d.cpu() for i, d in zip(idx, ds)}
        return {i: answer(self.problems[i], r, self.validations[i]) for i, r in pending.items()}


def run_searches(
    problems: Sequence[SubsetProblem],
    size: int,
    *,
    candidates: Sequence[torch.Tensor | None],
    validations: Sequence[SubsetProblem | None] | None = None,
    on_steps: Sequence[Callable | None] | None = None,
    inits: Sequence | None = None,
    answers: Callable[[str, dict], dict] | None = None,
    **options,
) -> list[SearchResult]:
    """Run one GRIDS search per problem, all together; the results equal
    :func:`~grids_sc.search.run_search` on each problem alone.

    Parameters
    ----------
    problems
        The search problem of each search.
    size
        ``L``, the selection size (the same for all).
    candidates
        Each search's candidate mask (``None``: all features).
    validations
        Each search's validation problem (restarts are ranked on it).
    on_steps
        Each search's ``on_step`` hook (see :func:`~grids_sc.search.run_search`).
    inits
        Each search's ``init`` (its starts, e.g. other methods' selections), overriding
        ``options["init"]``.
    answers
        ``answers(kind, {search: request}) -> {search: answer}``; default
        :class:`BatchAnswers`.
    **options
        ``n_candidates``, ``n_steps``, ``restarts``, ``seed``, ``moves``, ``pair_pool``,
        ``init``, ``min_z`` as :func:`~grids_sc.search.run_search` takes them.
    """
    n = len(problems)
    validations = list(validations) if validations is not None else [None] * n
    on_steps = list(on_steps) if on_steps is not None else [None] * n
    if inits is not None:
        options = {k: v for k, v in options.items() if k != "init"}
    answers = answers if answers is not None else BatchAnswers(problems, validations)
    gens = [
        search_requests(
            problems[i],
            size,
            candidates=candidates[i],
            validate=validations[i] is not None,
            on_step=on_steps[i],
            **options,
            **({} if inits is None else {"init": inits[i]}),
        )
        for i in range(n)
    ]
    results: list[SearchResult | None] = [None] * n
    pending: dict[int, tuple] = {}

    def advance(i: int, reply=None, first: bool = False) -> None:
        try:
            pending[i] = next(gens[i]) if first else gens[i].send(reply)
        except StopIteration as stop:
            pending.pop(i, None)
            results[i] = stop.value

    for i in range(n):
        advance(i, first=True)
    while pending:
        by_kind: dict[str, dict[int, tuple]] = {}
        for i, request in pending.items():
            by_kind.setdefault(request[0], {})[i] = request
        for kind, requests in by_kind.items():
            for i, reply in answers(kind, requests).items():
                advance(i, reply)
    return results
