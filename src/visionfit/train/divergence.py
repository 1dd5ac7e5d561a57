"""Stop a run whose loss or weights stop being finite numbers, before it writes them.

    watch = LossWatch(device, dist)
    watch.start_epoch(epoch)
    watch.note(step, loss, lr)        # every step; raises TrainingDiverged when it reads a bad loss
    watch.check()                     # at the end of the epoch, before validation
    watch.latest                      # the newest loss read so far (for a progress bar: no read of its own)

Only a non-finite *loss* is divergence. An fp16 GradScaler meets inf gradients as a
matter of course and skips those steps itself; that is not looked at here.
"""
import math

import torch
from torch import nn

from ..errors import TrainingDiverged
from .distributed import Distributed

CHECK_EVERY_STEPS = 50  # on a GPU, reading the losses waits for the queued work; every 50 steps hides that
NO_STEP = math.inf  # the step of the first bad loss while every loss so far was finite


class LossWatch:
    """Finds the first step of the epoch whose training loss was nan or inf.

    On one CPU process reading a loss costs nothing (there is no device to wait for), so each
    loss is read as it comes and the run stops before that step's backward. On a GPU, or
    across processes, a read waits for the queued work (or for the other processes): `note`
    then only copies the loss into a window of CHECK_EVERY_STEPS slots on the device (one
    tiny copy, no wait), read when it is full and at the end of the epoch. Either way the
    step reported is the first bad one, not the one where it was read.
    """

    def __init__(self, device: torch.device, dist: Distributed):
        self.device, self.dist = device, dist
        self.every = 1 if device.type == "cpu" and not dist.enabled else CHECK_EVERY_STEPS
        self.latest: float | None = None

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch  # 0-based, as the trainer counts
        self.lrs: list[float] = []  # per step, to name the lr of the bad one
        self.window = torch.zeros(self.every, device=self.device)  # losses not read yet; unused slots stay 0
        self.window_start, self.noted = 0, 0  # the 0-based step of the window's first slot; slots filled

    def note(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """Record `loss` of 0-based `step` (steps come in order); read the losses when it is time to."""
        self.lrs.append(lr)
        if self.every == 1:
            value = self.latest = loss.item()
            if not math.isfinite(value):
                self._diverged(step, value)
            return
        self.window[step - self.window_start] = loss.detach()
        self.noted += 1
        if self.noted == self.every:
            self.check()

    def check(self) -> None:
        """Raise TrainingDiverged if any process has seen a non-finite loss this epoch (syncs);
        else start a fresh window."""
        step, value = self._first_across_processes()
        if step != NO_STEP:
            self._diverged(int(step), value)
        self.window.zero_()
        self.window_start, self.noted = self.window_start + self.noted, 0

    def _diverged(self, step: int, value: float) -> None:
        raise TrainingDiverged("training loss", self.epoch + 1, self.lrs[step], step=step + 1, value=value)

    def _first_in_window(self) -> torch.Tensor:
        """[0-based step, loss] of this process's first non-finite loss in the window, or [NO_STEP, 0],
        in float32 (MPS has no float64): exact for step indices up to 2**24."""
        bad = ~self.window.isfinite()
        slot = bad.int().argmax()  # the first bad slot (0 when none is bad)
        step = torch.where(bad[slot], slot + self.window_start, NO_STEP)
        return torch.stack((step.float(), torch.where(bad[slot], self.window[slot], 0.0)))

    def _first_across_processes(self) -> tuple[float, float]:
        """The earliest [step, loss] of all processes, so that every process stops together; in the
        same read, this process's newest loss becomes `latest`."""
        rows = torch.zeros(self.dist.world_size, 3, device=self.device)
        newest = self.window[max(self.noted - 1, 0)].reshape(1)
        rows[self.dist.rank] = torch.cat((self._first_in_window(), newest))
        rows = self.dist.sum(rows).tolist()  # each process fills only its own row: a gather made of a sum
        step, value, _ = min(rows, key=lambda row: row[0])
        if self.noted:
            self.latest = rows[self.dist.rank][2]
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
