"""The learning-rate range test (Leslie Smith 2015; fastai's `lr_find`): train for about a
hundred steps while the lr grows exponentially, watch the smoothed loss, and suggest a rate.

    sweep = lr_sweep(model, optimizer, batches, loss_fn)     # model and optimizer restored after
    sweep.suggestion, sweep.method                           # e.g. 0.0331, "valley"
    sweep.lrs, sweep.losses                                  # the curve: smoothed loss per step

What is left as it was: the weights and buffers (BatchNorm running statistics included),
gradients, each module's train/eval mode, the optimizer's state and lrs, and the global
random number generators (torch's CPU and CUDA ones, Python's and NumPy's). A sweep is a
look, not a training step.

The suggestion is fastai's `valley` by default (their default since fastai 2.5): the middle
of the longest stretch over which the smoothed loss keeps falling. `steep` (the steepest
descent of the loss against log lr, fastai's older default) is computed too and plotted.
"""
import contextlib
import dataclasses
import copy
import math
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .trainer import set_train_mode

START_LR = 1e-7  # fastai's range: below any useful rate ...
END_LR = 10.0  # ... to far above it (the loss has blown up long before)
# Optimizer steps in the sweep (it stops earlier when the loss diverges): one epoch's, within
# these bounds. fastai sweeps 100; on MNIST's LeNet 100 steps barely leave the starting plateau
# and the suggestion is a guess (98.4% in 3 epochs), 300 see the loss fall (98.8%): RESULTS.md.
MIN_STEPS, MAX_STEPS = 100, 300
SMOOTHING = 0.98  # the loss's exponential moving average keeps this much of its past (fastai's beta)
DIVERGED_FACTOR = 4.0  # stop when the smoothed loss exceeds this multiple of its minimum
SKIP_START_FRACTION = 0.1  # the first tenth of the steps and ...
SKIP_END = 5  # ... the last five are left out of the suggestion, as fastai does (noise, then the blow-up)
METHODS = ("valley", "steep")


@dataclass(frozen=True)
class SweepSettings:
    start_lr: float = START_LR
    end_lr: float = END_LR
    steps: int | None = None  # None: sweep_steps(one epoch's batches)
    suggest: str = "valley"  # which suggestion is `suggestion`: one of METHODS


def sweep_steps(batches_per_epoch: int) -> int:
    """The default sweep length: an epoch's optimizer steps, at least MIN_STEPS and at most MAX_STEPS."""
    return min(MAX_STEPS, max(MIN_STEPS, batches_per_epoch))


@dataclass
class LRSweep:
    """A range test's curve and what it suggests."""

    lrs: list[float]  # the head's lr at each step
    losses: list[float]  # the smoothed (bias-corrected) training loss after each step
    raw_losses: list[float]  # each step's own loss
    suggestions: dict[str, float] = field(default_factory=dict)  # method -> lr
    method: str = "valley"
    stopped: str = ""  # why the sweep ended: "diverged" or "all steps"

    @property
    def suggestion(self) -> float:
        return self.suggestions[self.method]

    @property
    def fall(self) -> float:
        """How far the smoothed loss fell from its start to its lowest, as a fraction of the start:
        near 0 the model hardly learned during the sweep, and the suggestion is a guess."""
        finite = [v for v in self.losses if math.isfinite(v)]
        return 1 - min(finite) / finite[0] if finite and finite[0] > 0 else 0.0


def lr_sweep(model: nn.Module, optimizer: torch.optim.Optimizer, batches, loss_fn, settings=SweepSettings(),
             step=None, autocast=contextlib.nullcontext) -> LRSweep:
    """Run the range test on `model` with `optimizer` over `batches` (an iterable of (x, y), cycled
    until `settings.steps` steps; an object with set_epoch gets a new epoch each pass).

    loss_fn(logits, y) -> loss. step(loss) does the backward pass and the optimizer step (default:
    loss.backward(); optimizer.step()), so a caller can put a GradScaler in between; the forward
    pass runs inside autocast() (mixed precision, as the trainer runs it).
    Every optimizer group's lr grows by the same factor; the head's (the last group) runs from
    start_lr to end_lr and the others keep their ratio to it (a backbone at 0.1x stays at 0.1x).
    """
    if settings.suggest not in METHODS:
        raise ValueError(f"suggest must be one of {METHODS}, not {settings.suggest!r}")
    if settings.steps is None:
        settings = dataclasses.replace(settings, steps=sweep_steps(len(batches)))
    saved = _Snapshot(model, optimizer)
    try:
        lrs, raw = _run(model, optimizer, batches, loss_fn, settings, step or _plain_step(optimizer), autocast)
    finally:
        saved.restore()
    losses = smoothed(raw)
    stopped = "diverged" if len(raw) < settings.steps else "all steps"
    result = LRSweep(lrs, losses, raw, method=settings.suggest, stopped=stopped)
    result.suggestions = suggest(lrs, losses, settings.steps)
    return result


def _run(model, optimizer, batches, loss_fn, settings: SweepSettings, step, autocast) -> tuple[list[float], list[float]]:
    """Train with the growing lr until the steps are done or the smoothed loss diverges."""
    ratios = [group["lr"] / optimizer.param_groups[-1]["lr"] for group in optimizer.param_groups]
    growth = (settings.end_lr / settings.start_lr) ** (1 / max(1, settings.steps - 1))
    lrs, raw, average, best = [], [], 0.0, math.inf
    set_train_mode(model)  # frozen BatchNorm layers stay in eval mode, as in training
    for x, y in _cycled(batches, settings.steps):
        lr = settings.start_lr * growth ** len(lrs)
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(x), y)
        value = loss.item()
        lrs.append(lr)
        raw.append(value)
        if not math.isfinite(value):
            break
        step(loss)
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        current = average / (1 - SMOOTHING ** len(raw))
        best = min(best, current)
        if current > DIVERGED_FACTOR * best:
            break
    optimizer.zero_grad(set_to_none=True)
    return lrs, raw


def _plain_step(optimizer):
    def step(loss):
        loss.backward()
        optimizer.step()
    return step


def _cycled(batches, steps: int):
    """Up to `steps` batches, starting the iterable again (next epoch) when it runs out."""
    given, epoch = 0, 0
    while given < steps:
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        empty = True
        for batch in batches:
            empty = False
            yield batch
            given += 1
            if given == steps:
                return
        if empty:
            raise ValueError("the lr sweep got no batches")
        epoch += 1


def smoothed(raw: list[float]) -> list[float]:
    """Exponential moving average of the losses with bias correction (Adam's, fastai's AvgSmoothLoss):
    the early values are not pulled towards the average's zero start. A non-finite loss stays one."""
    out, average = [], 0.0
    for count, value in enumerate(raw, start=1):
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        out.append(average / (1 - SMOOTHING ** count))
    return out


def suggest(lrs: list[float], losses: list[float], steps: int) -> dict[str, float]:
    """{method: lr} over the curve with its noisy start and blown-up end left out (as fastai
    does), cut at the first non-finite loss; empty when too little of the curve is left."""
    start = int(steps * SKIP_START_FRACTION)
    lrs_kept, kept = np.asarray(lrs[start:-SKIP_END]), np.asarray(losses[start:-SKIP_END], dtype=float)
    finite = np.isfinite(kept)
    end = len(kept) if finite.all() else int(np.argmin(finite))
    lrs_kept, kept = lrs_kept[:end], kept[:end]
    if len(kept) < 2:
        return {}
    return {"valley": float(lrs_kept[valley_index(kept)]), "steep": float(lrs_kept[steepest_index(lrs_kept, kept)])}


def valley_index(losses: np.ndarray) -> int:
    """fastai's `valley`: the longest run of points over which the loss keeps falling (a longest
    decreasing subsequence), and the point about half way along it: late enough that the loss
    falls fast, early enough to stay clear of the minimum, past which training blows up."""
    n = len(losses)
    longest = [1] * n  # length of the longest falling run that ends at i
    for i in range(1, n):
        earlier = [longest[j] for j in range(i) if losses[j] > losses[i]]
        longest[i] = 1 + max(earlier, default=0)
    end = max(range(n), key=lambda i: (longest[i], -i))  # the first place the longest run ends
    start = end - longest[end]
    third = (end - start) / 3
    return max(0, start + int(third) + int(third / 2))


def steepest_index(lrs: np.ndarray, losses: np.ndarray) -> int:
    """fastai's `steep`: where the loss falls fastest against log lr."""
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return int(np.argmin(slopes))


class _Snapshot:
    """Everything a sweep changes, copied before it and put back after it (even when it fails)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer
        self.weights = copy.deepcopy(model.state_dict())  # parameters and buffers: BatchNorm statistics
        self.grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
        self.modes = [m.training for m in model.modules()]
        self.optimizer_state = copy.deepcopy(optimizer.state_dict())
        self.torch_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.python_rng, self.numpy_rng = random.getstate(), np.random.get_state()

    def restore(self) -> None:
        self.model.load_state_dict(self.weights)
        for p, grad in zip(self.model.parameters(), self.grads):
            p.grad = grad
        for m, training in zip(self.model.modules(), self.modes):
            m.training = training
        # load_state_dict replaces the whole state: momentum buffers the sweep made are dropped.
        self.optimizer.load_state_dict(self.optimizer_state)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
