"""The settings of a selection call: the choices the CLI reuses and the frozen settings object
that travels to the workers and is recorded with each result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

import numpy as np

Model = Literal["grids", "cis", "loco"]
Perturb = Literal["close", "open"]
Direction = Literal["down", "up"]
Moves = Literal["pair", "single"]

MODELS: tuple[str, ...] = get_args(Model)  # fit_surrogate(model=)
PERTURB: dict[str, float] = {"close": 0.0, "open": 1.0}  # the value a perturbed peak is set to
DIRECTION: dict[str, float] = {"down": 1.0, "up": -1.0}  # the sign of the objective
MOVES: tuple[str, ...] = get_args(Moves)
MIN_MOVE_Z = 1.0  # explain(min_move_z=): a kept move's gain, in standard errors over the cells
assert set(PERTURB) == set(get_args(Perturb)) and set(DIRECTION) == set(get_args(Direction))


def check_objective(perturb: str, direction: str, L) -> None:
    """Validate the settings of the objective shared by ``explain`` and ``attribute``."""
    if perturb not in PERTURB:
        raise ValueError(f"perturb must be one of {list(PERTURB)}, got {perturb!r}")
    if direction not in DIRECTION:
        raise ValueError(f"direction must be one of {list(DIRECTION)}, got {direction!r}")
    if not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L must be a positive integer, got {L!r}")


@dataclass(frozen=True)
class SelectionSettings:
    """What every (gene, group) task of an ``explain`` or ``attribute`` call shares: the
    payload sent to the workers, and the ``settings`` stored with each result.

    Attributes
    ----------
    method
        ``"grids"`` (the search) or an attribution method.
    surrogate
        Key of the surrogate used.
    L, perturb, direction, window, split_seed, seed, groupby
        As in :func:`grids_sc.tl.explain` (``window``/``groupby``: ``None`` when unused).
    n_candidates, n_steps, restarts, moves, init, min_move_z
        The search's settings (``method="grids"``; ``init``: the starts' names joined by
        ``"+"``).
    max_features, options
        The attribution's prefilter size and its method's keyword arguments.
    """

    method: str
    surrogate: str
    L: int
    perturb: Perturb = "close"
    direction: Direction = "down"
    window: int | None = None
    split_seed: int = 2023
    seed: int = 0
    groupby: str | None = None
    n_candidates: int = 32
    n_steps: int = 500
    restarts: int = 1
    moves: Moves = "pair"
    init: str = "first_order"
    min_move_z: float = MIN_MOVE_Z
    max_features: int = 2000
    options: dict = field(default_factory=dict)

    @classmethod
    def of_call(
        cls,
        method: str,
        surrogate: str,
        L: int,
        perturb: str,
        direction: str,
        window: int | None,
        split_seed: int,
        seed: int,
        groupby: str | None,
        **method_settings,
    ) -> SelectionSettings:
        """The settings of one ``explain`` or ``attribute`` call, from its arguments (numbers
        as plain ints; ``method_settings`` are the search's or the method's fields).
        """
        return cls(
            method=method,
            surrogate=surrogate,
            L=int(L),
            perturb=perturb,
            direction=direction,
            window=None if window is None else int(window),
            split_seed=int(split_seed),
            seed=int(seed),
            groupby=groupby,
            **method_settings,
        )

    @property
    def perturb_value(self) -> float:
        """The value perturbed peaks are set to."""
        return PERTURB[self.perturb]

    @property
    def n_searches(self) -> int:
        """Searches per task: one from each start of ``init``, then ``restarts - 1``."""
        return len(self.init.split("+")) + self.restarts - 1

    @property
    def sign(self) -> float:
        """``+1`` to move expression down, ``-1`` up."""
        return DIRECTION[self.direction]

    def as_record(self) -> dict:
        """The ``settings`` dict stored with a result (the layout of grids-sc 0.1.0, with
        ``None`` for unused options): the search's settings for ``explain``, the method's
        scalar options for ``attribute``.
        """
        out = {
            "L": int(self.L),
            "perturb": self.perturb,
            "direction": self.direction,
            "window": None if self.window is None else int(self.window),
            "split_seed": int(self.split_seed),
            "seed": int(self.seed),
            "groupby": self.groupby,
            "surrogate": self.surrogate,
            "method": self.method,
        }
        if self.method == "grids":
            out.update(
                n_candidates=int(self.n_candidates),
                n_steps=int(self.n_steps),
                restarts=int(self.restarts),
                moves=self.moves,
                init=self.init,
                min_move_z=float(self.min_move_z),
            )
        else:
            out.update(
                {
                    k: v
                    for k, v in self.options.items()
                    if isinstance(v, (int, float, str, bool, np.generic))
                }
            )
        return out

    def to_dict(self) -> dict:
        """Every field as a plain dict."""
        return asdict(self)
