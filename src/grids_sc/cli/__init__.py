"""The ``grids`` command line: pipeline steps that read and write ``.h5mu`` files."""

from __future__ import annotations

import argparse
import sys
import warnings

from .._mudata import local_options
from ._commands import (
    add_attribute,
    add_evaluate,
    add_explain,
    add_export,
    add_fit,
    add_links,
)
from ._crispr import add_crispr
from ._files import check_outputs
from ._options import CLIError, OneLineParser, one_line, stderr_writer
from ._quickstart import add_parser as add_quickstart

DESCRIPTION = """\
GRIDS: find the cis-regulatory elements a gene depends on in single-cell multiome data.

A pipeline runs the steps on .h5mu files, each reading the previous step's output:

  grids fit data.h5mu -o fit.h5mu --binarize --groupby celltype
  grids explain fit.h5mu -o explained.h5mu -g HLA-DQB1 --groupby celltype \\
      --groups "CD14+ Monocytes" --window 250000
  grids evaluate explained.h5mu --table evaluation.tsv
  grids export explained.h5mu -o links.bedpe
  grids crispr explained.h5mu crispr_pairs.tsv.gz --cell-type K562

Steps that change the MuData need -o/--output (a new file: pipelines track outputs by
name) or --inplace (rewrite the input). Every output path is checked before a step reads
anything. Outputs are written to a temporary file, flushed to disk and moved into place, so
a failed step leaves none behind; a symbolic link is followed (its target is replaced, with
its mode), and other hard links to a replaced file keep the old content. Every option of
the Python function a step runs is an option of the step (max_epochs is --max-epochs;
'none' passes None); see 'grids STEP --help'.
"""

EPILOG = """\
exit status: 0 on success, 1 when the input or a setting is wrong (one line
'grids: error: ...' on stderr), 2 for a malformed command line.
Progress bars and messages go to stderr (-q silences them); tables go to stdout or files.
"""

#: errors reported as one line: bad input or settings, not bugs (those keep their traceback)
INPUT_ERRORS = (CLIError, ValueError, KeyError, TypeError, OSError, FloatingPointError)


def _task_error() -> tuple[type, ...]:
    """A failed (gene, group) task of a distributed run, which names the task and its cause."""
    from .. import tl

    err = getattr(tl, "TaskError", None)
    return (err,) if isinstance(err, type) else ()


def build_parser() -> argparse.ArgumentParser:
    """The ``grids`` parser with all subcommands."""
    from .. import __version__

    common = argparse.ArgumentParser(add_help=False)
    opts = common.add_argument_group("output")
    opts.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or messages on stderr"
    )
    opts.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, show the full Python traceback instead of one line",
    )
    parser = OneLineParser(
        prog="grids",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"grids-sc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")
    add_quickstart(sub, common)
    for add in (
        add_fit,
        add_explain,
        add_attribute,
        add_links,
        add_evaluate,
        add_export,
        add_crispr,
    ):
        add(sub, common)
    return parser


def error_message(err: BaseException) -> str:
    """One line naming the problem (a ``KeyError``'s message without its quotes)."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    else:
        text = str(err) or type(err).__name__
    return one_line(text)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"grids: warning: {one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run ``grids`` with ``argv`` (default: the process's arguments); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else 0
    say = stderr_writer(args.quiet)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            check_outputs(args)  # before any reading or computing
            with local_options():
                args.run(args, say)
        except KeyboardInterrupt:
            print("grids: error: interrupted", file=sys.stderr)
            return 130
        except INPUT_ERRORS + _task_error() as err:
            if args.traceback:
                raise
            print(f"grids: error: {error_message(err)}", file=sys.stderr)
            return 1
    return 0


__all__ = ["build_parser", "main"]
