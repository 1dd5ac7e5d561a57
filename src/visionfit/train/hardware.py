"""How a training run uses the machine it got: memory format, compilation, CPU threads.

    channels_last, note = run_memory_format(config, net, prepared, device, dist.enabled, caching)  # a CPU: timed
    trained = compiled(net) if config.train.compile else net
    note = share_cores_with_workers(busy_workers(train_loader))     # devices.py; None: threads unchanged

Mixed precision (amp_dtype, loss_scaler) is the trainer's, beside the autocast it drives.
"""
from pathlib import Path

import torch
from torch import nn

from ..data.disk_cache import cache_folder
from ..data.loader import BatchLoader
from .memory_format import cpu_memory_format

# Shapes specialised, never dynamic: a run meets few shapes (the batch, the epoch's last batch,
# the eval batches), each compiled once, where dynamic=None's default recompiles the first
# change as a dynamic-shape graph (slower kernels, and pages of sympy warnings in the log).
COMPILE_OPTIONS = dict(dynamic=False)


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """--channels-last as given, or by default on CUDA (tensor cores want NHWC), without timing anything."""
    return device.type == "cuda" if setting is None else setting


def channels_last_for(setting: bool | None, net: nn.Module, shape: tuple[int, int, int, int], steps: int,
                      device: torch.device, timed: bool, remember_in: Path | None) -> tuple[bool, str | None]:
    """(channels_last, why) for a training run: --channels-last as given; unset, on for CUDA, and
    on a CPU whichever format memory_format.py times faster for this model and batch `shape`
    over `steps` steps, where `timed` (the trainer passes False for runs it cannot time alike:
    distributed, compiled, or training a head on cached features)."""
    if setting is not None or device.type != "cpu" or not timed:
        return use_channels_last(setting, device), None
    choice = cpu_memory_format(net, shape, steps, remember_in)
    return choice.channels_last, choice.note


def run_memory_format(config, net: nn.Module, prepared, device: torch.device, distributed: bool,
                      caching: str | None) -> tuple[bool, str | None]:
    """channels_last_for a training run's config and data: its batch shape, the steps it is about to
    take, timed unless distributed, compiled or caching features, the verdict remembered in the
    cache folder unless --no-disk-cache."""
    train, size = config.train, prepared.preset.size
    shape = (config.data.batch_size, prepared.preset.channels, size, size)
    steps = train.epochs * max(1, len(prepared.train) // config.data.batch_size)
    timed = not (distributed or train.compile or caching)
    remember_in = cache_folder() if config.data.disk_cache else None
    return channels_last_for(train.channels_last, net, shape, steps, device, timed, remember_in)


def compiled(model: nn.Module) -> nn.Module:
    """--compile: torch.compile with COMPILE_OPTIONS."""
    return torch.compile(model, **COMPILE_OPTIONS)


def busy_workers(train_loader: BatchLoader) -> int:
    """DataLoader workers busy through every training epoch: none on the batched path."""
    return 0 if train_loader.batched else train_loader.workers
