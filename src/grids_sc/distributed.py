r"""Data-parallel surrogate fits with ``torchrun``: one process per device, any number of machines.

::

    # 2 processes on this machine (CPU: gloo; with GPUs each process takes one: nccl)
    torchrun --nproc-per-node 2 -m grids_sc.distributed fit data.h5mu fitted.h5mu \\
        --groupby celltype

    # 2 machines with 4 GPUs each (run on both; the first is the rendezvous host)
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint host0:29500 \\
        -m grids_sc.distributed fit data.h5mu fitted.h5mu --groupby celltype

Every process reads ``INPUT``, fits with :func:`grids_sc.tl.fit_surrogate` (``distributed=True``)
and checks that all processes ended with the same weights; the first process writes
``OUTPUT``. In Python, call ``grids.tl.fit_surrogate(mdata, ...)`` in a script started by
``torchrun``: it detects the launch and fits data-parallel.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence

import torch.distributed as dist

from ._engine import MODELS
from ._records import read_surrogate
from .model._parallel import setup, teardown

TRAIN_OPTIONS = (
    ("--model", str, "surrogate architecture"),
    ("--groupby", str, "cell annotation conditioning the discriminator / the split"),
    ("--rna", str, "RNA modality"),
    ("--atac", str, "ATAC modality"),
    ("--layer", str, "ATAC layer (default .X)"),
    ("--rna-layer", str, "RNA layer (default .X)"),
    ("--max-epochs", int, "most epochs per phase"),
    ("--cis-max-epochs", int, "most epochs of the cis heads"),
    ("--batch-size", int, "cells per step, over all processes"),
    ("--lr", float, "learning rate"),
    ("--patience", int, "early-stopping patience"),
    ("--seed", int, "seed of the split and the training"),
    ("--key-added", str, "key in .uns['grids']['surrogates']"),
)


def _fit_defaults() -> dict:
    """``fit_surrogate``'s defaults, so that the two entry points cannot drift apart."""
    from .tl import fit_surrogate

    return {
        name: p.default
        for name, p in inspect.signature(fit_surrogate).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc-per-node N -m grids_sc.distributed",
        description="Data-parallel surrogate fit (torch.distributed); the first process writes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit a surrogate on INPUT and write OUTPUT (.h5mu)")
    fit.add_argument("input", help="paired multiome .h5mu")
    fit.add_argument("output", help="where the first process writes the fitted .h5mu")
    fit.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    defaults = _fit_defaults()
    for flag, kind, text in TRAIN_OPTIONS:
        default = defaults[flag[2:].replace("-", "_")]
        extra = {"choices": MODELS} if flag == "--model" else {}
        fit.add_argument(
            flag, type=kind, default=default, help=f"{text} (default: {default})", **extra
        )
    return parser


def weights_agree(record: dict) -> bool:
    """Whether every process of the group holds the same weights as this one."""
    from ._engine import weights_token

    token = weights_token(record)
    tokens: list = [None] * dist.get_world_size()
    dist.all_gather_object(tokens, token)
    return len(set(tokens)) == 1


def fit(args: argparse.Namespace) -> int:
    """The ``fit`` command on this process; returns the exit status."""
    import mudata

    from ._mudata import local_options
    from .tl import fit_surrogate

    parallel, started = setup(args.device)
    try:
        with local_options():
            mdata = mudata.read_h5mu(args.input)
        fit_surrogate(
            mdata,
            rna=args.rna,
            atac=args.atac,
            groupby=args.groupby,
            layer=args.layer,
            rna_layer=args.rna_layer,
            model=args.model,
            max_epochs=args.max_epochs,
            cis_max_epochs=args.cis_max_epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            seed=args.seed,
            device=args.device,
            distributed=True,
            progress=not args.no_progress,
            key_added=args.key_added,
        )
        record = read_surrogate(mdata, args.key_added).module_record
        if not weights_agree(record):
            print(f"error: rank {parallel.rank} ended with other weights", file=sys.stderr)
            return 1
        if parallel.main:
            with local_options():
                mdata.write(args.output)
            print(
                f"fitted {args.model!r} surrogate on {parallel.world} processes "
                f"({parallel.device.type}); all processes hold the same weights; "
                f"wrote {args.output}"
            )
        dist.barrier()
        return 0
    finally:
        teardown(started)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m grids_sc.distributed`` (started by ``torchrun``)."""
    args = _parser().parse_args(argv)
    try:
        return fit(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
