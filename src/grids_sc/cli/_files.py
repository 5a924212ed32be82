"""Reading the input ``.h5mu`` and writing outputs whole or not at all."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import uuid
import warnings
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


def check_output(path: str | None, what: str = "output", input_path: str | None = None) -> None:
    """Refuse, before any work, an output that cannot be written: a directory, a missing or
    read-only directory, or the input file itself (unless ``input_path`` is ``None``,
    as for ``--inplace``). ``-`` (stdout) and ``None`` pass.
    """
    if path is None or path == "-":
        return
    real = Path(os.path.realpath(path))
    if real.is_dir():
        raise CLIError(f"{what} {path!r} is a directory")
    if not real.parent.is_dir():
        raise CLIError(f"{what} directory {str(Path(path).parent)!r} does not exist")
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise CLIError(f"{what} directory {str(real.parent)!r} is not writable")
    if real.exists() and not os.access(real, os.W_OK):
        raise CLIError(f"{what} {path!r} is read-only")
    if input_path is not None and real.exists() and os.path.samefile(real, input_path):
        raise CLIError(f"{what} {path!r} is the input file; pass --inplace to rewrite it")


def check_outputs(args) -> None:
    """Check every output path a command was given, before it reads or computes anything."""
    inplace = getattr(args, "inplace", False)
    given = getattr(args, "input", None)
    if inplace:
        check_output(given, "input (--inplace)")
    check_output(getattr(args, "output", None), input_path=given)
    check_output(getattr(args, "table", None), "table", input_path=given)
    check_output(getattr(args, "out", None))  # quickstart


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush ``path`` to disk. A file's failure is an error (its content may not be there);
    a directory's is ignored (some platforms and file systems cannot open or sync one).
    """
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - a directory some platforms cannot open
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - e.g. EINVAL for a directory on some file systems
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[Path]:
    """A temporary file next to ``path``, moved onto it only when the block succeeds.

    A failed run leaves no partial output for a pipeline to mistake for a finished one. A
    symbolic link is followed: its target is replaced and the link kept. The new file gets
    the mode of the file it replaces and is flushed to disk (``fsync``) before the rename.
    The rename makes a new file: other hard links to the old one keep the old content (a
    warning says so). An ``OSError`` or h5py's ``RuntimeError`` while writing (e.g. a full
    disk) becomes one :class:`CLIError` line.
    """
    check_output(path)
    target = Path(os.path.realpath(path))
    # a name of our own, not mkstemp's 0600 file: the output gets the usual permissions
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield Path(tmp)
        _fsync(tmp)
        if target.exists():
            old = target.stat()
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
            if old.st_nlink > 1:
                warnings.warn(
                    f"{path} has {old.st_nlink - 1} other hard link(s); the file is replaced, "
                    "so they keep the old content",
                    UserWarning,
                    stacklevel=3,
                )
        os.replace(tmp, target)
        _fsync(target.parent, directory=True)
    except (OSError, RuntimeError) as err:
        raise CLIError(f"cannot write {path!r}: {err}") from err
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
