"""From a config's data section to decoded stores and the preprocessing preset.

This is the one place where the defaults that depend on the data are decided:
channel count, input size, normalisation statistics and the augmentation recipe.
"""
import dataclasses
import os
from dataclasses import dataclass

import torch

from ..errors import DataError
from .decode import guess_channels
from .samples import DatasetSplits, Samples
from .sources import limit_per_class, resolve, settle_validation
from .store import ImageStore, LazyImages, build_store, channel_stats, lazy_store
from .transforms import EVAL_CROP_FRACTION, SMALL_IMAGE_SIDE, Preset

RAGGED_STORE_MARGIN = 1.25  # photos are kept at 1.25x the eval resize side: room for random crops


@dataclass
class PreparedData:
    splits: DatasetSplits
    preset: Preset
    train: ImageStore
    val: ImageStore | None
    test: ImageStore | None


def resolve_splits(data_cfg, seed: int) -> DatasetSplits:
    """The splits a run trains on, scanned and made safe before anything is decoded.

    A path or name goes through sources.resolve; DatasetSplits given directly keep their own
    validation but get the same checks: one class is refused, and validation or test images
    that are also training images are left out of them.
    """
    if isinstance(data_cfg.data, DatasetSplits):
        splits = settle_validation(data_cfg.data, seed)
    else:
        splits = resolve(data_cfg.data, images=data_cfg.images, val_data=data_cfg.val_data,
                         val_split=data_cfg.val_split, seed=seed, download_dir=data_cfg.download_dir,
                         label_column=data_cfg.label_column, image_column=data_cfg.image_column)
    if data_cfg.max_per_class and splits.train is not None:
        splits = dataclasses.replace(splits, train=limit_per_class(splits.train, data_cfg.max_per_class, seed))
    return splits


def require_training_data(splits: DatasetSplits) -> None:
    if splits.train is None or not len(splits.train) or not splits.train.labelled:
        raise DataError(f"{splits.name} has no labelled training images; a CSV without a label column can only be predicted on")


def data_channels(samples: Samples) -> int:
    """1 for grey data, 3 for colour (the model's input channels unless --channels says otherwise)."""
    if samples.images is not None:
        return 1 if samples.images.ndim == 3 or samples.images.shape[-1] == 1 else 3
    return guess_channels(samples.paths)


def prepare_data(data_cfg, splits: DatasetSplits, channels: int, model_size: int, pretrained_stats=None) -> PreparedData:
    """Decode every split once and settle the preset (see module docstring).

    model_size: the architecture's natural input side, used for photos and when the
    user gives no --image-size. pretrained_stats: (mean, std) that pretrained weights expect.
    """
    workers = default_workers(data_cfg.workers)
    size = data_cfg.image_size or model_size
    # Small natural sizes leave photos at full size unless the user chose a size.
    max_side = store_max_side(size) if data_cfg.image_size or model_size > SMALL_IMAGE_SIDE else None
    train = _store(data_cfg, splits.train, channels, max_side, workers)
    small = train.uniform and max(train.image_shape[1:]) <= SMALL_IMAGE_SIDE
    mean, std = _statistics(data_cfg, train, channels, pretrained_stats)
    preset = Preset(
        size=size, channels=channels, mean=mean, std=std, small=small,
        flip=data_cfg.flip if data_cfg.flip is not None else not small,
        rotation=data_cfg.rotation,
        pad=(data_cfg.pad if data_cfg.pad is not None else size // 8) if small else 0,
    )
    val, test = (None if s is None else eval_store(_store(data_cfg, s, channels, max_side, workers), preset)
                 for s in (splits.val, splits.test))
    return PreparedData(splits, preset, train, val, test)


def store_max_side(size: int) -> int:
    """Shorter side photos are decoded to for a model input of `size`: the eval resize side
    plus room for random crops. Training, evaluation and prediction all decode this way."""
    return int(size / EVAL_CROP_FRACTION * RAGGED_STORE_MARGIN)


def _store(data_cfg, samples: Samples, channels: int, max_side: int | None, workers: int) -> ImageStore:
    if data_cfg.cache == "none":
        return lazy_store(samples, channels, max_side)
    return build_store(samples, channels, max_side=max_side, workers=workers)


def eval_store(store: ImageStore, preset: Preset) -> ImageStore:
    """Apply the deterministic eval pipeline once, so evaluation batches come from one tensor.

    Uniform stores are already batch-friendly; lazy (uncached) stores stay lazy.
    """
    if store.uniform or isinstance(store.images, LazyImages):
        return store
    transform = preset.eval_transform()
    images = torch.stack([transform(image) for image in store.images])
    return ImageStore(images=images, labels=store.labels, origin=store.origin, skipped=store.skipped, eval_ready=True)


def default_workers(requested: int | None) -> int:
    if requested is not None:
        return requested
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _statistics(data_cfg, train: ImageStore, channels: int, pretrained_stats):
    if data_cfg.mean is not None and data_cfg.std is not None:
        return _per_channel(data_cfg.mean, channels), _per_channel(data_cfg.std, channels)
    if pretrained_stats is not None:
        mean, std = pretrained_stats
        return _per_channel(mean, channels), _per_channel(std, channels)
    mean, std = channel_stats(train)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def _per_channel(values, channels: int) -> tuple[float, ...]:
    values = [float(v) for v in values]
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:
        return tuple(values * channels)
    return (round(sum(values) / len(values), 4),)  # RGB statistics for a grey input: their mean
