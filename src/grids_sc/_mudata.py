"""MuData's options, set only for the package's own updates and copies.

Importing grids-sc changes no global option. Where the package itself builds, copies or
updates a MuData it sets ``pull_on_update=False`` for that operation only (modality columns
are not copied into the global ``obs``/``var``, mudata's announced default) and puts the
user's setting back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import mudata

T = TypeVar("T")


@contextlib.contextmanager
def local_options() -> Iterator[None]:
    """``pull_on_update=False`` inside the block; the caller's options afterwards."""
    with mudata.set_options(pull_on_update=False):
        yield


def check_copy(data, copy: bool) -> None:
    """Refuse ``copy=True`` on backed data (a copy in memory would load every matrix)."""
    if copy and getattr(data, "isbacked", False):
        raise ValueError(
            "copy=True needs the data in memory, but mdata is backed on disk (read with "
            "backed='r'): write into it (copy=False; results go to .uns, .var and layers in "
            "memory), or load it with mdata.mod[name] = mdata[name].to_memory()"
        )


def copy_of(data: T) -> T:
    """``data.copy()`` (a MuData or an AnnData) under :func:`local_options`."""
    check_copy(data, True)
    with local_options():
        return data.copy()
