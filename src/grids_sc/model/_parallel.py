"""Data-parallel training with ``torch.distributed``: one process (rank) per device.

Every rank holds the same data and the same model. Each epoch all ranks draw the same
permutation of the training cells; it is padded to a multiple of the number of ranks (as
``torch.utils.data.DistributedSampler`` does) and rank ``r`` takes every ``world``-th cell from
position ``r``. A step takes ``ceil(batch_size / world)`` cells on every rank, so one step sees
about ``batch_size`` cells in all, as a single process does, and every rank takes the same
number of steps. ``DistributedDataParallel`` averages the gradients; validation losses are
summed over the ranks' shares of the validation cells, so every rank takes the same
early-stopping decision and all ranks end with the same weights.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DataParallel:
    """A process's place among the ranks of a data-parallel fit.

    Attributes
    ----------
    rank, world
        This rank and the number of ranks (``world = 1``: a single process, no communication).
    device
        The device this rank trains on.
    """

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def active(self) -> bool:
        """Whether there is more than one rank."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that shows progress and writes files)."""
        return self.rank == 0

    def shard(self, order: np.ndarray) -> np.ndarray:
        """The rank's share of ``order`` (padded by wrapping to a multiple of ``world``)."""
        if not self.active:
            return order
        n = len(order)
        total = int(math.ceil(n / self.world)) * self.world
        if total > n and n:
            order = np.concatenate([order, np.resize(order, total - n)])
        return order[self.rank :: self.world]

    def batch_size(self, batch_size: int) -> int:
        """Cells per step on this rank for a global step of ``batch_size`` cells."""
        return max(1, int(math.ceil(batch_size / self.world)))

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under ``DistributedDataParallel`` (itself with one rank)."""
        if not self.active:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        # the buffers (peak chromosomes, window pairs) never change: no sync at every step
        params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
        sync = {
            "forward_sync_buffers"
            if "forward_sync_buffers" in params
            else "broadcast_buffers": False
        }
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, **sync)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (returned unchanged with one rank)."""
        if not self.active:
            return values
        out = values.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (picklable Python objects and arrays)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._comm_device)
        return box[0]

    @property
    def _comm_device(self):
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    """Whether the ``torchrun`` environment of more than one process is set."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def want_distributed(distributed: bool | None) -> bool:
    """Resolve ``distributed=None``: on when a process group of more than one rank exists or
    ``torchrun`` started this process among several.
    """
    if distributed is not None:
        return bool(distributed)
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return launched_by_torchrun()


def setup(device: str) -> tuple[DataParallel, bool]:
    """The calling rank's :class:`DataParallel`, starting the process group from the ``torchrun``
    environment when none exists (gloo on the CPU, nccl on CUDA). Returns whether it started
    the group (the caller then ends it with :func:`teardown`).

    ``device``: ``"auto"`` takes this rank's GPU (``LOCAL_RANK``) when CUDA is available,
    else the CPU; ``"cpu"`` or ``"cuda"`` force it.
    """
    if not dist.is_available():  # pragma: no cover - builds without torch.distributed
        raise RuntimeError("distributed=True but this torch build has no torch.distributed")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(
            f"with distributed=True, device must be 'auto', 'cpu' or 'cuda', got {device!r} "
            "(each rank takes its own GPU from LOCAL_RANK)"
        )
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available")
    started = False
    if not dist.is_initialized():
        missing = [
            v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ
        ]
        if missing:
            raise RuntimeError(
                f"distributed=True needs a torch.distributed process group or the torchrun "
                f"environment; {missing} are not set (launch with `torchrun --nproc-per-node N`)"
            )
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        started = True
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count()))
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        if dist.get_backend() == "nccl":
            raise ValueError("the process group uses nccl, which needs device='cuda' or 'auto'")
        dev = torch.device("cpu")
    return DataParallel(rank, world, dev), started


def teardown(started: bool) -> None:
    """End the process group if :func:`setup` started it."""
    if started and dist.is_initialized():
        dist.destroy_process_group()
