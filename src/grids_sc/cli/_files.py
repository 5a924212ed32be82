"""Reading the input ``.h5mu`` and writing outputs whole or not at all."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from mudata import MuData

from ._options import CLIError


def read_h5mu(path: str) -> MuData:
    """Read a ``.h5mu`` into memory, with a one-line error for a missing or unreadable file."""
    import mudata

    p = Path(path)
    if not p.exists():
        raise CLIError(f"input file {path!r} not found")
    if p.is_dir():
        raise CLIError(f"input {path!r} is a directory, not a .h5mu file")
    try:
        return mudata.read_h5mu(p)
    except Exception as err:  # h5py and mudata raise many types for a bad file
        raise CLIError(f"cannot read {path!r} as .h5mu: {err}") from err


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[Path]:
    """A temporary file next to ``path``, moved onto it only when the block succeeds.

    A failed run leaves no partial output for a pipeline to mistake for a finished one.
    """
    target = Path(path)
    if target.is_dir():
        raise CLIError(f"output {path!r} is a directory")
    if not target.parent.exists():
        raise CLIError(f"output directory {str(target.parent)!r} does not exist")
    # a name of our own, not mkstemp's 0600 file: the output gets the usual permissions
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_h5mu(mdata: MuData, path: str) -> None:
    """Write ``mdata`` to ``path`` (replacing it only once the whole file is written)."""
    with atomic_path(path) as tmp:
        mdata.write(tmp)


def write_text(path: str, write: Callable) -> None:
    """``write(handle)`` into ``path``, or to stdout for ``-``."""
    if path == "-":
        write(sys.stdout)
        sys.stdout.flush()
        return
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        write(fh)


def output_target(args) -> str | None:
    """The ``.h5mu`` to write: ``--output``, the input with ``--inplace``, or ``None``."""
    if getattr(args, "inplace", False):
        return args.input
    return getattr(args, "output", None)
