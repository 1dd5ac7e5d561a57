"""MixUp and CutMix on the training batch, on the device, through timm's `Mixup`.

    mixer = batch_mixer(config.train, num_classes, rank)     # None when --mixup and --cutmix are 0
    mixer.set_epoch(epoch)
    x, targets, labels = mixer(x, y)   # x mixed in place; targets N x K, rows sum to 1; labels N

Each batch is, with probability --mix-prob, either MixUp-blended (lam ~ Beta(--mixup)) or
CutMix-pasted (lam ~ Beta(--cutmix), then corrected to the pasted area) with the batch in
reverse order; with both on, each batch picks one of the two at even odds (timm's batch
mode). The targets are the same blend of one-hot labels, without label smoothing: the task
smooths them once (cross_entropy's label_smoothing on soft targets gives exactly what timm's
Mixup(label_smoothing=...) followed by SoftTargetCrossEntropy gives, tests/train/test_mixing.py).
`labels` is, per image, the class with the larger mixing weight: the one training accuracy
and the confusion tally count it as.

An odd batch (the last of an epoch, or an odd --batch-size) mixes all but its last image,
which keeps its own label: timm pairs image i with image N-1-i and needs N even.
"""
import contextlib

import numpy as np
import torch

from ..data.loader import epoch_seed


def mixing_enabled(train_cfg) -> bool:
    """Whether the run mixes batches: --mixup or --cutmix above 0, and --mix-prob above 0."""
    return ((train_cfg.mixup or 0) > 0 or (train_cfg.cutmix or 0) > 0) and (train_cfg.mix_prob or 0) > 0


def batch_mixer(train_cfg, num_classes: int, rank: int = 0) -> "BatchMixer | Unmixed":
    """The run's mixer: a BatchMixer when mixing is on, else the identity."""
    if not mixing_enabled(train_cfg):
        return Unmixed()
    return BatchMixer(train_cfg.mixup or 0.0, train_cfg.cutmix or 0.0, train_cfg.mix_prob, num_classes,
                      train_cfg.seed, rank)


def describe_mixing(train_cfg) -> str | None:
    """One line for the start of a run, or None without mixing."""
    if not mixing_enabled(train_cfg):
        return None
    parts = [f"{name} alpha {alpha:g}" for name, alpha in (("MixUp", train_cfg.mixup), ("CutMix", train_cfg.cutmix))
             if alpha]
    return (f"mixing: {' or '.join(parts)} on {train_cfg.mix_prob:.0%} of batches; training accuracy counts each "
            "image as the class with the larger mixing weight")


class Unmixed:
    """The batch as it comes: the targets are the labels."""

    def set_epoch(self, epoch: int) -> None:
        pass

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        return x, y, y


class BatchMixer:
    """timm's Mixup in batch mode, drawing from a generator seeded per (seed, epoch, rank), so a
    resumed run mixes exactly as an uninterrupted one."""

    def __init__(self, mixup: float, cutmix: float, prob: float, num_classes: int, seed: int = 0, rank: int = 0):
        from timm.data.mixup import Mixup, mixup_target  # timm takes seconds to import: only runs that mix pay

        self.one_hot = mixup_target  # with its default lam=1: plain one-hot rows
        self.mixup = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, prob=prob, switch_prob=0.5, mode="batch",
                           correct_lam=True, label_smoothing=0.0, num_classes=num_classes)
        self.num_classes, self.seed, self.rank = num_classes, seed, rank
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.random = np.random.RandomState(epoch_seed(self.seed, epoch, self.rank) % 2**32)

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        """(x mixed in place, soft targets N x K in float32, the dominant class of each image)."""
        even = len(x) - len(x) % 2
        targets = self.one_hot(y, self.num_classes)  # one-hot; the odd image out keeps it
        if even:
            with numpy_random(self.random):
                _, targets[:even] = self.mixup(x[:even], y[:even])  # x[:even] is a view: mixed in place
        return x, targets, targets.argmax(1)


@contextlib.contextmanager
def numpy_random(state: np.random.RandomState):
    """Run the block on `state` in place of numpy's global generator (timm's Mixup draws from the
    global one), then put the global one back as it was: nothing else's randomness moves."""
    saved = np.random.get_state()
    np.random.set_state(state.get_state())
    try:
        yield
    finally:
        state.set_state(np.random.get_state())
        np.random.set_state(saved)
