"""Placeholder replaced by the simulator implementation in this same change."""


def synthetic_multiome(*args, **kwargs):  # noqa: D103
    raise RuntimeError("simulator under construction")


def true_expression(*args, **kwargs):  # noqa: D103
    raise RuntimeError("simulator under construction")
