"""Optimizers and learning-rate schedules by name.

sgd, adam, adamw and rmsprop are torch's; lamb and lion are timm's. Each takes the groups of
models/transfer.py (optimizer_groups), where biases and norm weights carry weight_decay 0.

Schedules are stepped once per optimizer step (not per epoch), so warmup and decay
are smooth and a resumed run continues from the exact step it stopped at.
"""
import math
import warnings

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from ..registry import Registry

OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
WARMUP_START_FACTOR = 0.01  # warmup ramps the lr linearly from 1% of its value


@OPTIMIZERS.register("sgd")
def sgd(param_groups, train) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        param_groups, lr=train.lr, momentum=train.momentum, nesterov=train.nesterov and train.momentum > 0,
        weight_decay=train.weight_decay, **step_kernels(param_groups),
    )


@OPTIMIZERS.register("adam")
def adam(param_groups, train) -> torch.optim.Optimizer:
    return torch.optim.Adam(param_groups, lr=train.lr, weight_decay=train.weight_decay, **step_kernels(param_groups))


@OPTIMIZERS.register("adamw")
def adamw(param_groups, train) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups, lr=train.lr, weight_decay=train.weight_decay, **step_kernels(param_groups))


@OPTIMIZERS.register("rmsprop")
def rmsprop(param_groups, train) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(param_groups, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay,
                               **step_kernels(param_groups, fusable=False))


# Devices where torch has fused SGD, Adam and AdamW kernels (CPU ones since torch 2.4).
FUSED_DEVICES = {"cuda", "cpu"}


def step_kernels(param_groups, fusable: bool = True) -> dict:
    """How a torch optimizer runs its update. Fused where torch has it (SGD, Adam and AdamW on
    CUDA and the CPU): one kernel per group for all its tensors (lenet_relu's SGD step on a
    CPU core: 0.4 ms fused, 0.8 ms foreach, 1.0 ms torch's default loop), and on CUDA an fp16 GradScaler
    then finds inf gradients on the device instead of reading them back every step.
    Elsewhere foreach: one call per group instead of a Python loop over its tensors."""
    devices = {parameter.device.type for parameter in _parameters(param_groups)}
    return {"fused": True} if fusable and len(devices) == 1 and devices <= FUSED_DEVICES else {"foreach": True}


def _parameters(param_groups):
    for group in param_groups:
        yield from group["params"] if isinstance(group, dict) else [group]


@OPTIMIZERS.register("lamb")
def lamb(param_groups, train) -> torch.optim.Optimizer:
    """timm's LAMB (You et al. 2019): Adam steps scaled per layer by |weights| / |step|, for large
    batches. timm's defaults: betas (0.9, 0.999), eps 1e-6, gradients clipped to global norm 1.
    Wants Adam-like rates, about 1e-3 to 5e-3 (timm trains ResNets with lamb at 5e-3), and
    some --weight-decay (timm's default 0.01; ResNet strikes back used 0.01-0.02)."""
    from timm.optim import Lamb

    return Lamb(param_groups, lr=train.lr, weight_decay=train.weight_decay)


@OPTIMIZERS.register("lion")
def lion(param_groups, train) -> torch.optim.Optimizer:
    """timm's Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of
    an interpolated momentum, betas (0.9, 0.99). Every step has size lr per weight, so it
    wants a 3-10x smaller lr than AdamW (about 1e-4 to 3e-4) and a 3-10x larger
    --weight-decay to keep lr x decay the same (e.g. 0.1 to 0.5)."""
    from timm.optim import Lion

    return Lion(param_groups, lr=train.lr, weight_decay=train.weight_decay)


def build_optimizer(param_groups, train) -> torch.optim.Optimizer:
    """param_groups: a list of {"params": [...], "lr": ...} dicts (or plain parameters)."""
    return OPTIMIZERS.get(train.optimizer)(param_groups, train)


class _Schedule:
    """lr multiplier as a function of the optimizer step: linear warmup, then a decay shape.

    Holds plain numbers only: LambdaLR saves a callable object's __dict__ in its
    state_dict, and a weights_only load accepts nothing but primitives and tensors.
    """

    def __init__(self, shape: str, warmup_steps: int, decay_steps: int = 1, step_every: int = 1, gamma: float = 1.0):
        self.shape, self.warmup_steps = shape, warmup_steps
        self.decay_steps, self.step_every, self.gamma = max(1, decay_steps), step_every, gamma

    def __call__(self, step: int) -> float:
        if self.shape == "fine_tune":  # warmup_steps: the frozen phase; decay_steps: the whole run
            if step < self.warmup_steps:
                return one_cycle(step, self.warmup_steps, **FINE_TUNE_FROZEN)
            return FINE_TUNE_UNFROZEN_LR * one_cycle(step - self.warmup_steps, self.decay_steps - self.warmup_steps,
                                                     **FINE_TUNE_UNFROZEN)
        if step < self.warmup_steps:
            return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * step / self.warmup_steps
        step -= self.warmup_steps
        if self.shape == "step":  # the seeds' StepLR: times gamma every step_size epochs
            return self.gamma ** (step // self.step_every)
        if self.shape == "cosine":  # half a cosine from 1 to 0 over the steps after warmup
            return 0.5 * (1 + math.cos(math.pi * min(step, self.decay_steps) / self.decay_steps))
        return 1.0


@SCHEDULERS.register("none")
def constant(optimizer, train, steps_per_epoch: int) -> LRScheduler:
    return LambdaLR(optimizer, _Schedule("constant", _warmup_steps(train, steps_per_epoch)))


@SCHEDULERS.register("step")
def step(optimizer, train, steps_per_epoch: int) -> LRScheduler:
    schedule = _Schedule("step", _warmup_steps(train, steps_per_epoch), step_every=train.step_size * steps_per_epoch,
                         gamma=train.gamma)
    return LambdaLR(optimizer, schedule)


@SCHEDULERS.register("cosine")
def cosine(optimizer, train, steps_per_epoch: int) -> LRScheduler:
    warmup = _warmup_steps(train, steps_per_epoch)
    return LambdaLR(optimizer, _Schedule("cosine", warmup, decay_steps=train.epochs * steps_per_epoch - warmup))


@SCHEDULERS.register("onecycle")
def onecycle(optimizer, train, steps_per_epoch: int) -> LRScheduler:
    """torch's OneCycleLR (lr up then down, momentum cycled the other way); its own warmup.

    With --unfreeze-after K, fastai's fine_tune instead: one cycle over the K frozen epochs,
    then another over the rest at half the peak (FINE_TUNE_*)."""
    total = train.epochs * steps_per_epoch
    if train.unfreeze_after:
        return LambdaLR(optimizer, _Schedule("fine_tune", train.unfreeze_after * steps_per_epoch, total))
    warmup_fraction = train.warmup_epochs / train.epochs if train.warmup_epochs else 0.3
    return OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=total,
        pct_start=min(max(warmup_fraction, 1 / total), 0.99),
    )


# fastai's Learner.fine_tune (fastai/callback/schedule.py): fit_one_cycle(freeze_epochs, lr,
# pct_start=0.99), then unfreeze and fit_one_cycle(epochs, slice(lr/2/lr_mult, lr/2), pct_start=0.3,
# div=5). fit_one_cycle starts at peak/div, rises on a half cosine, and falls on one to peak/1e5.
# fastai also cycles Adam's beta1 (0.95 -> 0.85 -> 0.95); LambdaLR moves the lr only.
FINE_TUNE_FROZEN = dict(pct_start=0.99, div=25.0)
FINE_TUNE_UNFROZEN = dict(pct_start=0.3, div=5.0)
FINE_TUNE_UNFROZEN_LR = 0.5  # fastai halves base_lr when it unfreezes
ONE_CYCLE_DIV_FINAL = 1e5


def one_cycle(step: int, steps: int, pct_start: float, div: float) -> float:
    """fastai's fit_one_cycle lr multiplier at `step` of `steps`: 1/div up to 1 over pct_start
    of the steps, then down to 1/ONE_CYCLE_DIV_FINAL, both on half cosines."""
    rise = max(1, round(pct_start * steps))
    if step < rise:
        return _cosine_between(1 / div, 1.0, step / rise)
    return _cosine_between(1.0, 1 / ONE_CYCLE_DIV_FINAL, min(1.0, (step - rise) / max(1, steps - rise)))


def _cosine_between(start: float, end: float, position: float) -> float:
    """fastai's SchedCos: from start (position 0) to end (position 1) along half a cosine."""
    return start + (1 + math.cos(math.pi * (1 - position))) * (end - start) / 2


def build_scheduler(optimizer, train, steps_per_epoch: int) -> LRScheduler:
    return SCHEDULERS.get(train.scheduler)(optimizer, train, steps_per_epoch)


def extend_schedule(scheduler: LRScheduler, saved_state: dict) -> None:
    """Load a checkpoint's schedule position into `scheduler`, which was built for this run's
    --epochs: the position (step count) comes from the checkpoint, the shape (decay length,
    one-cycle phases) from the new length, so `--resume --epochs N` extends a run. With the
    same --epochs it is a plain load_state_dict."""
    horizon = {key: value for key, value in scheduler.state_dict().items() if key in _HORIZON_KEYS}
    scheduler.load_state_dict({**saved_state, **horizon})
    with warnings.catch_warnings():  # get_lr outside step() warns; here it is the point
        warnings.simplefilter("ignore", UserWarning)
        rates = scheduler.get_lr()
    for group, lr in zip(scheduler.optimizer.param_groups, rates):
        group["lr"] = lr
    scheduler._last_lr = list(rates)


# State that follows from --epochs rather than from how far the run got (LambdaLR keeps its
# callable's fields under lr_lambdas; OneCycleLR its length and phases).
_HORIZON_KEYS = ("lr_lambdas", "total_steps", "_schedule_phases")


def _warmup_steps(train, steps_per_epoch: int) -> int:
    return round(train.warmup_epochs * steps_per_epoch)
