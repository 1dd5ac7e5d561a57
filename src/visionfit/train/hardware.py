"""How a training run uses the machine it got: memory format, compilation, CPU threads.

    channels_last = use_channels_last(config.train.channels_last, device)
    trained = compiled(net) if config.train.compile else net
    note = share_cores_with_workers(busy_workers(train_loader))     # devices.py; None: threads unchanged

Mixed precision (amp_dtype, loss_scaler) is the trainer's, beside the autocast it drives.
"""
import torch
from torch import nn

from ..data.loader import BatchLoader

# Shapes specialised, never dynamic: a run meets few shapes (the batch, the epoch's last batch,
# the eval batches), each compiled once, where dynamic=None's default recompiles the first
# change as a dynamic-shape graph (slower kernels, and pages of sympy warnings in the log).
COMPILE_OPTIONS = dict(dynamic=False)


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """--channels-last as given, or by default on CUDA only (tensor cores want NHWC; CPUs gain little)."""
    return device.type == "cuda" if setting is None else setting


def compiled(model: nn.Module) -> nn.Module:
    """--compile: torch.compile with COMPILE_OPTIONS."""
    return torch.compile(model, **COMPILE_OPTIONS)


def busy_workers(train_loader: BatchLoader) -> int:
    """DataLoader workers busy through every training epoch: none on the batched path."""
    return 0 if train_loader.batched else train_loader.workers
