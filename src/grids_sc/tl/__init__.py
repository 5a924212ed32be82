"""Tools: fit the surrogate, predict expression, measure fidelity, explain genes by CRE subsets."""

__all__: list[str] = []
