"""Train only the head on backbone features computed once.

With a frozen backbone and a training view that does not change between epochs (`--augment
none`, or no random crop, flip, rotation or erasing), the backbone gives every image the same features every epoch.
So compute them once, in eval mode without gradients, and train the head on them: an
epoch then costs a few matrix products instead of a full forward pass per image. When a
horizontal flip is the only random operation, each image has just two views: the features
of both are cached, and each epoch picks one per image at random (seeded by the epoch, as
the image loader's flips are), so flipping costs nothing either. Such a view is what a frozen
backbone trains on unless augmentation was asked for (resolve.py's _frozen_backbone_view); with
augmentation, the start-up summary states its cost (uncached_cost).

    mode = caching_mode(config, preset)                                      # "fixed", "mirrored" or None
    cached = cache_features_if_useful(net, prepared, config, device, dist)   # or None
    trainer = Trainer(HeadOnFeatures(net), optimizer, scheduler, cached.train, cached.val, ...)

The trained head lives inside `net` all along, so the model files are complete models.
The seconds spent caching count in the first epoch's time and images/s (CachingTime), so
metrics.csv compares with an uncached run. Differences from uncached training, by design:
dropout inside the frozen backbone is off (eval mode), and a forced cache (--cache-features
on random augmentation other than flip) sees the eval view of each image.
"""
import contextlib
import time
from dataclasses import dataclass

import torch
from torch import nn

from .. import progress
from ..data.loader import BatchLoader, EpochOrder, epoch_seed
from ..data.prepare import default_workers
from ..models.transfer import find_head
from .mixing import mixing_enabled
from .trainer import amp_dtype

HEAD_CHECK_TOLERANCE = 1e-3  # head(features) vs full forward, relative; beyond it the model does more after its head
MIRROR_STREAM = 0x5EED_F11B  # the per-epoch flip draws get a stream of their own, apart from the shuffle's
# The flag that turns each random operation off (the photo recipe's random resized crop has none).
TURNED_OFF_BY = {"random crop": "--pad 0", "flip": "--no-flip", "rotation": "--rotation 0"}


@dataclass
class CachedFeatures:
    train: "FeatureLoader"
    val: "FeatureLoader | None"
    seconds: float  # spent computing them, once


class HeadOnFeatures(nn.Module):
    """The model as the trainer sees it while training on cached features: features -> head.

    The complete model is held as `_orig_mod`, the attribute checkpoints.unwrap looks
    through (it is torch.compile's), so best.safetensors and last.ckpt get the complete
    model, backbone and trained head, exactly as after an uncached run.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self._orig_mod = model
        self.head_name = find_head(model)[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self._orig_mod.get_submodule(self.head_name)(features)


class FeatureLoader(EpochOrder):
    """BatchLoader's seeded order (shuffled or class-balanced), sharding and batch count, over
    rows of cached features.

    With `mirrored` (the features of each image's mirror), each epoch uses the mirror's for a
    seeded half of the images: the cached equivalent of a random horizontal flip.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, train: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, mirrored: torch.Tensor | None = None, sampler: str = "shuffle"):
        super().__init__(len(labels), batch_size, train, seed, rank, world_size, sampler, labels.cpu())
        self.features, self.labels, self.mirrored = features, labels, mirrored

    def mirror_choice(self) -> torch.Tensor:
        """bool per image (not per position, so every process agrees): this epoch, its mirror's features."""
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch) ^ MIRROR_STREAM)
        return torch.rand(self.size, generator=generator) < 0.5

    def __iter__(self):
        device = self.features.device
        order = self.indices().to(device)
        flipped = self.mirror_choice().to(device) if self.mirrored is not None else None
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.features[index]
            if flipped is not None:
                use_mirror = flipped[index].view(-1, *[1] * (x.ndim - 1))
                x = torch.where(use_mirror, self.mirrored[index], x)
            yield x, self.labels[index]


class CachingTime:
    """Adds the seconds spent caching features to the first epoch this process trains, and
    recomputes its images/s, so metrics.csv compares honestly with a run on images."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if not self.seconds:
            return
        images = metrics["images_per_s"] * metrics["seconds"]
        metrics["seconds"] += self.seconds
        metrics["images_per_s"] = images / metrics["seconds"]
        self.seconds = 0.0


def caching_mode(config, preset) -> str | None:
    """How the head trains on cached features: "fixed" (one view per image), "mirrored" (the
    view and its mirror: flip is the only random operation), or None (on images, as usual)."""
    t = config.train
    if config.model.freeze != "backbone" or t.unfreeze_after is not None or t.cache_features is False:
        return None
    if mixing_enabled(t):  # mixing changes every batch's pixels (config.py refuses --cache-features with it)
        return None
    random_ops = preset.random_ops()
    if not random_ops:
        return "fixed"
    if random_ops == ("flip",):
        return "mirrored"
    return "fixed" if t.cache_features else None


def not_caching_hint(config, preset) -> str | None:
    """Why a frozen backbone's features are not cached, and the flags that would cache them;
    None when they are cached, or the user said --no-cache-features."""
    t = config.train
    if config.model.freeze != "backbone" or t.unfreeze_after is not None or t.cache_features is not None:
        return None
    if caching_mode(config, preset) is not None:
        return None
    if mixing_enabled(t):  # config.py refuses --cache-features with mixing; here it was only the default
        return "not caching features: --mixup/--cutmix mix the images of every batch; training on images"
    random_ops = preset.random_ops()
    flags = [TURNED_OFF_BY[op] for op in random_ops if op in TURNED_OFF_BY and op != "flip"]
    off = f"; or turn them off ({' '.join(flags)}; flip alone is cached too)" if flags else ""
    return (f"hint: the backbone is frozen, but its features are not cached because training draws a "
            f"{' + '.join(random_ops)} per image each epoch (a full forward pass per image per epoch); "
            f"--cache-features trains the head on each image's eval view instead (much faster){off}")


def uncached_cost(config, preset) -> str | None:
    """What training on images costs a backbone that stays frozen, for the start-up summary: it
    runs on every train and val image every epoch instead of once, so about `epochs` times the
    backbone compute (the head's few matrix products aside). None when its features are cached,
    the backbone trains, the user said --no-cache-features, or a single epoch costs the same."""
    t = config.train
    if (config.model.freeze != "backbone" or t.unfreeze_after is not None or t.cache_features is False
            or t.epochs < 2 or caching_mode(config, preset) is not None):
        return None
    mixing = mixing_enabled(t)  # config.py refuses --cache-features with mixing: nothing faster to offer
    offer = "" if mixing else "; --cache-features trains the head on each image's eval view, computed once"
    return (f"not cached: {'MixUp/CutMix' if mixing else 'augmentation'} runs the frozen backbone on every image "
            f"every epoch, about {t.epochs}x the compute of cached features (one forward per image per epoch, "
            f"not once){offer}")


def cache_features_if_useful(net: nn.Module, prepared, config, device: torch.device, dist) -> CachedFeatures | None:
    """Cached features when the backbone stays frozen and the training view is fixed or only
    flips (or --cache-features insists); None means train on images as usual."""
    t = config.train
    mode = caching_mode(config, prepared.preset)
    if mode is None:
        hint = not_caching_hint(config, prepared.preset)
        if hint and dist.is_main:
            progress.note(hint)
        return None
    if mode == "fixed" and not prepared.preset.train_is_deterministic and dist.is_main:
        progress.note("--cache-features: the head trains on each image's eval view (random augmentation is off)")
    cached = cache_features(net, prepared, config.data.batch_size, device, amp_dtype(t.amp, device), t.seed,
                            dist.rank, dist.world_size, default_workers(config.data.workers), mirrored=mode == "mirrored",
                            sampler=config.data.sampler)
    if cached is None and dist.is_main:
        progress.note("not caching features: this model does more after its classification layer; training on images")
    return cached


def cache_features(model: nn.Module, prepared, batch_size: int, device: torch.device, amp_dtype=None, seed: int = 0,
                   rank: int = 0, world_size: int = 1, workers: int = 0, mirrored: bool = False,
                   sampler: str = "shuffle") -> CachedFeatures | None:
    """Features of the train and val stores (the eval view of each image, and of its mirror for
    the training images when `mirrored`), or None when the model's output is not
    head(features), e.g. SqueezeNet pools after its classifier conv."""
    started = time.perf_counter()
    head_name, head = find_head(model)
    common = dict(preset=prepared.preset, batch_size=batch_size, train=False, device=device, workers=workers)
    views = 2 if mirrored else 1
    train_x, train_y = _features(model, head, BatchLoader(prepared.train, **common), amp_dtype, views, "train")
    if train_x is None:
        return None
    val = None
    if prepared.val is not None and len(prepared.val):
        val_x, val_y = _features(model, head, BatchLoader(prepared.val, **common), amp_dtype, 1, "val")
        val = FeatureLoader(val_x[0], val_y, batch_size, False, seed, rank, world_size)
    train = FeatureLoader(train_x[0], train_y, batch_size, True, seed, rank, world_size,
                          mirrored=train_x[1] if mirrored else None, sampler=sampler)
    seconds = time.perf_counter() - started
    both = " (each image and its mirror)" if mirrored else ""
    progress.note(f"cached {head_name} input features of {len(train_y)} train{both} + "
                  f"{len(val.labels) if val else 0} val images {tuple(train_x.shape[2:])} in {seconds:.1f} s")
    return CachedFeatures(train, val, seconds)


@torch.no_grad()
def _features(model: nn.Module, head: nn.Module, loader: BatchLoader, amp_dtype, views: int, label: str):
    """(inputs of `head` for every image, views x N x ..., and the labels), or (None, None) when
    head(inputs) is not the model's output. View 1 is the eval view; view 2 its mirror."""
    captured = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].float()))
    was_training = model.training
    model.eval()
    features, labels = [], []
    try:
        with progress.bar(total=loader.size, desc=f"caching {label} features") as bar:
            for x, y in loader:
                batch = []
                for view in (x, x.flip(-1))[:views]:
                    logits = _forward(model, view, amp_dtype)
                    if not features and not batch and not _head_is_last(head, captured[0], logits, amp_dtype):
                        return None, None
                    batch.append(captured.pop())
                features.append(torch.stack(batch))
                labels.append(y)
                bar.update(len(y))
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(features, dim=1), torch.cat(labels)


def _forward(model: nn.Module, x: torch.Tensor, amp_dtype) -> torch.Tensor:
    autocast = torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with autocast:
        return model(x)


def _head_is_last(head: nn.Module, features: torch.Tensor, logits: torch.Tensor, amp_dtype) -> bool:
    """Whether head(features) is the model's output: checked on the first batch."""
    autocast = torch.autocast(features.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with autocast:
        again = head(features).float()
    return again.shape == logits.shape and torch.allclose(again, logits.float(), rtol=HEAD_CHECK_TOLERANCE,
                                                          atol=HEAD_CHECK_TOLERANCE)
