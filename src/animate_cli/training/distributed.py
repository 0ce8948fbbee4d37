"""Several processes (GPUs or machines) through ``torchrun``.

``torchrun`` starts one process per device and sets WORLD_SIZE, RANK and LOCAL_RANK (plus MASTER_ADDR/PORT);
:func:`context_from_env` reads them and :func:`init_distributed` joins the process group (NCCL on CUDA, gloo on
CPU). Without those variables everything runs in one process and these helpers do nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from animate_cli.errors import BadInputError


@dataclass(frozen=True)
class DistributedContext:
    """This process's place among ``world_size`` training processes; rank 0 alone writes files."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistributedContext:
    """The context ``torchrun`` describes in the environment, or a single process."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise BadInputError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as set by torchrun)") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise BadInputError(f"RANK {rank} is not within WORLD_SIZE {world_size}")
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size)


def init_distributed(context: DistributedContext, device: torch.device) -> bool:
    """Join the process group if several processes train and none is joined yet; True if this call joined it."""
    if not context.enabled or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)
    return True


def shutdown_distributed(finished: bool = True) -> None:
    """Leave the process group. ``finished``: every process got here normally, so wait for the others first;
    gloo aborts a process whose peer closed its sockets while it was still tearing down. After a failure no
    barrier: the peers may never arrive."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def mean_across(values: dict[str, float], context: DistributedContext, device: torch.device) -> dict[str, float]:
    """The mean of each value over all processes (every process gets it); identity in one process."""
    if not context.enabled or not values:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[name] for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {name: float(v) / context.world_size for name, v in zip(names, tensor.tolist())}


def any_across(flag: bool, context: DistributedContext, device: torch.device) -> bool:
    """True on every process if it is True on any (so all stop at the same step)."""
    if not context.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
