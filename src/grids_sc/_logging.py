"""The ``grids_sc`` logger: what each call added where, and how long it took.

As scanpy's ``settings.verbosity``: messages go to the ``grids_sc`` logger of the standard
:mod:`logging` module. Nothing is printed unless the application configured logging or the
user raised the verbosity with :func:`set_verbosity` (``"info"`` prints what each call added
and its time; ``"debug"`` also the search steps). Warnings about the data stay
:mod:`warnings`, so that they show once and can be filtered as usual.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

logger = logging.getLogger("grids_sc")
logger.addHandler(logging.NullHandler())

LEVELS = {"warning": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}
_HANDLER: logging.Handler | None = None


def set_verbosity(level: str | int = "info") -> None:
    """Print the package's messages at ``level`` and above (``"warning"``, ``"info"``,
    ``"debug"`` or a :mod:`logging` level) to standard error.

    Examples
    --------
    >>> import grids_sc as grids
    >>> grids.settings.set_verbosity("info")  # doctest: +SKIP
    """
    global _HANDLER
    if isinstance(level, str):
        if level not in LEVELS:
            raise ValueError(f"level must be one of {list(LEVELS)} or an int, got {level!r}")
        level = LEVELS[level]
    if _HANDLER is None:
        _HANDLER = logging.StreamHandler()
        _HANDLER.setFormatter(logging.Formatter("grids_sc: %(message)s"))
        logger.addHandler(_HANDLER)
    logger.setLevel(level)
    _HANDLER.setLevel(level)


@contextmanager
def timed(what: str):
    """Log ``what`` with the seconds it took, at info level, when the block ends."""
    start = time.perf_counter()
    yield
    logger.info("%s (%.2f s)", what, time.perf_counter() - start)
