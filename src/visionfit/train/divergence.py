"""Stop a run whose loss or weights stop being finite numbers, before it writes them.

    watch = LossWatch(device, dist)
    watch.start_epoch(epoch)
    watch.note(step, loss, lr)        # every step; raises TrainingDiverged when it reads a bad flag
    watch.check()                     # at the end of the epoch, before validation

Only a non-finite *loss* is divergence. An fp16 GradScaler meets inf gradients as a
matter of course and skips those steps itself; that is not looked at here.
"""
import math

import torch
from torch import nn

from ..errors import TrainingDiverged
from .distributed import Distributed

CHECK_EVERY_STEPS = 50  # on a GPU, reading the flag waits for the queued work; every 50 steps hides that
NO_STEP = math.inf  # the flag's step while every loss so far was finite


class LossWatch:
    """Keeps, on the device, the first step of the epoch whose training loss was nan or inf.

    `note` queues a few tiny tensor ops and never waits for the GPU; reading the flag does.
    So the flag is read every step on one CPU process (free there), and every
    CHECK_EVERY_STEPS steps on a GPU or across processes, and at the end of each epoch.
    Either way the step reported is the first bad one, not the one where it was read.
    """

    def __init__(self, device: torch.device, dist: Distributed):
        self.device, self.dist = device, dist
        self.every = 1 if device.type == "cpu" and not dist.enabled else CHECK_EVERY_STEPS

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # 0-based, as the trainer counts
        self.lrs: list[float] = []  # per step, to name the lr of the bad one
        # [step, loss] in float32 (MPS has no float64): exact for step indices up to 2**24
        self.first = torch.full((2,), NO_STEP, dtype=torch.float32, device=self.device)

    def note(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """Record `loss` of 0-based `step`; read the flag when it is time to."""
        self.lrs.append(lr)
        loss = loss.detach().float()
        record = self.first[0].isinf() & ~loss.isfinite()
        self.first = torch.where(record, torch.stack((torch.full_like(loss, step), loss)), self.first)
        if (step + 1) % self.every == 0:
            self.check()

    def check(self) -> None:
        """Raise TrainingDiverged if any process has seen a non-finite loss this epoch (syncs)."""
        step, value = self._first_across_processes()
        if step != NO_STEP:
            step = int(step)
            raise TrainingDiverged("training loss", self.epoch + 1, self.lrs[step], step=step + 1, value=value)

    def _first_across_processes(self) -> tuple[float, float]:
        """The earliest [step, loss] flag of all processes, so that every process stops together."""
        rows = torch.zeros(self.dist.world_size, 2, device=self.device)
        rows[self.dist.rank] = self.first
        rows = self.dist.sum(rows)  # each process fills only its own row: a gather made of a sum
        step, value = rows[rows[:, 0].argmin()].tolist()
        return step, value


def require_finite_validation_loss(metrics: dict) -> None:
    """A nan or inf validation loss means the weights have diverged too: stop the run."""
    if not math.isfinite(metrics["val_loss"]):
        raise TrainingDiverged("validation loss", metrics["epoch"], metrics["lr"], value=metrics["val_loss"])


def require_finite_weights(model: nn.Module, epoch: int, lr: float) -> None:
    """Raise TrainingDiverged unless every floating parameter and buffer is finite (one GPU sync)."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    if tensors and not torch.stack([t.isfinite().all() for t in tensors]).all():
        raise TrainingDiverged("weights", epoch, lr)
