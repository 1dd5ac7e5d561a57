"""torchrun support: the same code path runs with world size 1.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; we read them, join the process group
(NCCL on CUDA, Gloo on CPU), give each process its shard, sum metrics across
processes, and let rank 0 alone write files and print.
"""
import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

STORE_TIMEOUT = datetime.timedelta(minutes=10)  # torch's default for process-group setup


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's `tensor` (N_rank x ...), concatenated along dim 0 in rank order."""
        if not self.enabled:
            return tensor
        sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(self.world_size)]
        dist.all_gather(sizes, torch.tensor([len(tensor)], device=tensor.device))
        longest = int(max(size.item() for size in sizes))
        padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)  # all_gather needs equal shapes: pad, then cut back
        return torch.cat([part[: int(size.item())] for part, size in zip(parts, sizes)])

    def no_sync(self, model: nn.Module):
        """Skip DDP's gradient all-reduce on micro-batches that do not step the optimizer."""
        if self.enabled and isinstance(model, nn.parallel.DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_object(self, value):
        """Rank 0's value on every rank (e.g. the run directory name)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed(device_type: str) -> Distributed:
    """Join the process group when launched by torchrun; a no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if not dist.is_initialized():
        rank = int(os.environ["RANK"])
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo",
                                store=_attempt_store(rank, world_size), rank=rank, world_size=world_size)
    return Distributed(rank=dist.get_rank(), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def _attempt_store(rank: int, world_size: int) -> dist.Store:
    """torchrun's key-value store, under a prefix of its own for each restart attempt.

    Why: under `torchrun --max-restarts`, a restarted group's Gloo/NCCL setup read the
    addresses its dead predecessors had published and timed out connecting to them (seen
    with torch 2.14; pytorch/pytorch#167288 reports it for NCCL). A prefix per attempt keeps
    each group's keys apart. The store is the agent's when torchrun hosts one, else rank 0's,
    as torch's own env:// rendezvous chooses.
    """
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=not agent_hosts and rank == 0, timeout=STORE_TIMEOUT)
    return dist.PrefixStore(f"visionfit/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
