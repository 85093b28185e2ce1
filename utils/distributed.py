"""Distributed (torchrun) helpers: rank discovery, process-group setup, rank-0 gating."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def local_rank() -> int:
    """This process's index on its machine under torchrun (LOCAL_RANK); -1 when not launched by torchrun."""
    return int(os.environ.get("LOCAL_RANK", -1))


def global_rank() -> int:
    """This process's index over all machines (RANK); -1 when not launched by torchrun."""
    return int(os.environ.get("RANK", -1))


def world_size() -> int:
    """The number of processes training together (WORLD_SIZE); 1 without torchrun."""
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """True on rank 0 and in a single-process run: the process that logs, validates and saves."""
    return global_rank() in (-1, 0)


def init_distributed(device: torch.device) -> bool:
    """Join the torchrun process group if launched by torchrun; NCCL on CUDA, gloo on CPU. Returns True if DDP."""
    if world_size() <= 1 or local_rank() < 0:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    """Wait until every process gets here (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's flag on every rank (e.g. early stopping decided on rank 0)."""
    return bool(broadcast_object(flag))


def broadcast_object(value: T) -> T:
    """Rank 0's `value` (any picklable object, e.g. the run directory it claimed) on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any (e.g. a NaN loss on one process: all skip that batch, which
    keeps their gradient all-reduces in step). One all-reduce on `device`; no communication without DDP."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def cleanup_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Let rank 0 do a step first (e.g. build the label cache) while the others wait, then run it on them."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()
