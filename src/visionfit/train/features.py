"""Train only the head on backbone features computed once.

With a frozen backbone and a training view that does not change between epochs (`--augment
none`, or no random crop, flip, rotation or erasing), the backbone gives every image the same features every epoch.
So compute them once, in eval mode without gradients, and train the head on them: an
epoch then costs a few matrix products instead of a full forward pass per image.

    cached = cache_features_if_useful(net, prepared, config, device, dist)   # or None
    trainer = Trainer(HeadOnFeatures(net), optimizer, scheduler, cached.train, cached.val, ...)

The trained head lives inside `net` all along, so the model files are complete models.
Differences from uncached training, by design: dropout inside the frozen backbone is off
(eval mode), and a forced cache (--cache-features on random augmentation) sees the eval
view of each image.
"""
import contextlib
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..data.loader import BatchLoader, EpochOrder
from ..data.prepare import default_workers
from ..models.transfer import find_head
from .trainer import amp_dtype

HEAD_CHECK_TOLERANCE = 1e-3  # head(features) vs full forward, relative; beyond it the model does more after its head


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
    """BatchLoader's seeded order, sharding and batch count, over rows of cached features."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, train: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        super().__init__(len(labels), batch_size, train, seed, rank, world_size)
        self.features, self.labels = features, labels

    def __iter__(self):
        order = self.indices().to(self.features.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.features[index], self.labels[index]


def cache_features_if_useful(net: nn.Module, prepared, config, device: torch.device, dist) -> CachedFeatures | None:
    """Cached features when the backbone stays frozen and the training view is fixed (or
    --cache-features insists); None means train on images as usual."""
    t = config.train
    if config.model.freeze != "backbone" or t.unfreeze_after is not None or t.cache_features is False:
        return None
    if t.cache_features is None and not prepared.preset.train_is_deterministic:
        return None
    if not prepared.preset.train_is_deterministic:
        print("--cache-features: the head trains on each image's eval view (random augmentation is off)", file=sys.stderr)
    cached = cache_features(net, prepared, config.data.batch_size, device, amp_dtype(t.amp, device), t.seed,
                            dist.rank, dist.world_size, default_workers(config.data.workers))
    if cached is None:
        print("not caching features: this model does more after its classification layer; training on images",
              file=sys.stderr)
    return cached


def cache_features(model: nn.Module, prepared, batch_size: int, device: torch.device, amp_dtype=None, seed: int = 0,
                   rank: int = 0, world_size: int = 1, workers: int = 0) -> CachedFeatures | None:
    """Features of the train and val stores (the eval view of each image), or None when the
    model's output is not head(features), e.g. SqueezeNet pools after its classifier conv."""
    started = time.perf_counter()
    head_name, head = find_head(model)
    common = dict(preset=prepared.preset, batch_size=batch_size, train=False, device=device, workers=workers)
    train_x, train_y, exact = _features(model, head, BatchLoader(prepared.train, **common), amp_dtype)
    if not exact:
        return None
    val = None
    if prepared.val is not None and len(prepared.val):
        val_x, val_y, _ = _features(model, head, BatchLoader(prepared.val, **common), amp_dtype)
        val = FeatureLoader(val_x, val_y, batch_size, False, seed, rank, world_size)
    train = FeatureLoader(train_x, train_y, batch_size, True, seed, rank, world_size)
    seconds = time.perf_counter() - started
    print(f"cached {head_name} input features of {len(train_x)} train + {len(val.labels) if val else 0} val "
          f"images {tuple(train_x.shape[1:])} in {seconds:.1f} s", file=sys.stderr)
    return CachedFeatures(train, val, seconds)


@torch.no_grad()
def _features(model: nn.Module, head: nn.Module, loader: BatchLoader, amp_dtype):
    """(inputs of `head` for every image, labels, whether head(inputs) is the model's output)."""
    captured = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].float()))
    was_training = model.training
    model.eval()
    features, labels, exact = [], [], True
    try:
        for x, y in loader:
            autocast = torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with autocast:
                logits = model(x)
                if not features:  # the first batch checks that the head is the model's last step
                    again = head(captured[0]).float()
                    exact = again.shape == logits.shape and torch.allclose(
                        again, logits.float(), rtol=HEAD_CHECK_TOLERANCE, atol=HEAD_CHECK_TOLERANCE)
            if not exact:
                break
            features.append(captured[0])
            labels.append(y)
            captured.clear()
    finally:
        hook.remove()
        model.train(was_training)
    if not exact:
        return None, None, False
    return torch.cat(features), torch.cat(labels), True
