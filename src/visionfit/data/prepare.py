"""From a dataset and an input plan to decoded stores and the preset.

    plan = plan_input(config.data, splits, natural_size, weights)     # decided before decoding
    prepared = prepare_data(config.data, splits, plan)               # decode once; statistics

`plan_input` (plan.py) is where the defaults that depend on the data or the starting weights
are decided, each with the reason. `prepare_data` decodes every split once:
validation and test images through the eval preprocessing itself, so validation sees what
`predict` sees, and training images as the plan stores them:
  - small images at their common (h, w): padded random crops on the device;
  - photos with a random resized crop as presize x presize squares (the eval resize rule at
    side presize: shorter side, center crop), one uint8 tensor, so the crops are drawn on the
    device for whole batches; with --presize 0 (or a record of an older run) whole, the
    shorter side shrunk to store_side, cropped per image by DataLoader workers;
  - photos without a random resized crop (--augment none, --pad 0) as their eval view, so
    training batches need no per-image work on the CPU.
With --cache none, or when the stores would not fit in RAM, files are decoded the same way
on access instead (memory.py says when).
"""
import dataclasses
import os
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..errors import DataError
from .disk_cache import cached_store, disk_cache_for, recalled_stats, remember_stats
from .gpu_decode import decodes_on_gpu, gpu_store
from .memory import settle_cache
from .plan import DEFAULT_INTERPOLATION, InputPlan
from .preprocess import Preprocess, pil_resize
from .samples import DatasetSplits, Samples
from .sources import resolve
from .validation import limit_per_class, settle_validation
from .store import ImageStore, build_store, channel_stats, lazy_store
from .transforms import Preset


@dataclass
class PreparedData:
    splits: DatasetSplits
    preset: Preset
    train: ImageStore
    val: ImageStore | None
    test: ImageStore | None
    notes: tuple[str, ...] = ()  # what decoding decided, and why (images decoded from disk: too big for RAM)


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
                         label_column=data_cfg.label_column, image_column=data_cfg.image_column,
                         multi_label=data_cfg.multi_label)
    if data_cfg.max_per_class and splits.train is not None:
        splits = dataclasses.replace(splits, train=limit_per_class(splits.train, data_cfg.max_per_class, seed))
    return splits


def require_training_data(splits: DatasetSplits) -> None:
    if splits.train is None or not len(splits.train) or not splits.train.labelled:
        raise DataError(f"{splits.name} has no labelled training images; a CSV without a label column can only be predicted on")


def prepare_data(data_cfg, splits: DatasetSplits, plan: InputPlan, device: torch.device | None = None) -> PreparedData:
    """Decode every split once (see the module docstring) and settle the preset. On a CUDA
    `device`, the training store's JPEGs are decoded there (nvjpeg; gpu_decode.py)."""
    workers = default_workers(data_cfg.workers)
    cache, note = settle_cache(data_cfg.cache, splits, plan)
    data_cfg = dataclasses.replace(data_cfg, cache=cache)
    train = _train_store(data_cfg, splits.train, plan, workers, device)
    mean, std = plan.stats or _train_stats(train, plan.channels)
    preset = plan.preset(mean, std)
    val, test = (None if s is None else eval_store(data_cfg, s, preset, workers, label)
                 for s, label in ((splits.val, "val"), (splits.test, "test")))
    return PreparedData(splits, preset, train, val, test, (note,) if note else ())


def eval_store(data_cfg, samples: Samples, preset: Preset, workers: int, label: str = "images") -> ImageStore:
    """Images decoded at full size and put through the eval preprocessing once: evaluation
    batches come from one size x size tensor, with exactly the pixels `predict` would use.
    With --cache none they are decoded on access, through the same preprocessing."""
    apply = preset.preprocess.apply
    if data_cfg.cache == "none" and samples.paths is not None:
        return lazy_store(samples, preset.channels, prepare=apply, eval_ready=True)
    build = partial(build_store, samples, preset.channels, workers=workers, prepare=apply, eval_ready=True, label=label)
    return cached_store(samples, {"eval": preset.preprocess.to_dict()}, build, disk_cache_for(data_cfg))


def _train_store(data_cfg, samples: Samples, plan: InputPlan, workers: int, device=None) -> ImageStore:
    """The training images as the plan stores them (see the module docstring), decoded once on
    `workers` threads (JPEGs by nvjpeg on a CUDA device), or on access with --cache none."""
    prepare, max_side, eval_ready = _train_storage(plan)
    if data_cfg.cache == "none" and samples.paths is not None:
        return lazy_store(samples, plan.channels, max_side, prepare, eval_ready)
    geometry = getattr(prepare, "__self__", None)  # the Preprocess whose apply() makes a square
    if isinstance(geometry, Preprocess) and decodes_on_gpu(device, samples):
        build = partial(gpu_store, samples, geometry, device, workers, eval_ready, label="train")
        return cached_store(samples, _train_spec(plan, "nvjpeg"), build, disk_cache_for(data_cfg))
    build = partial(build_store, samples, plan.channels, max_side, workers, prepare, eval_ready, label="train")
    return cached_store(samples, _train_spec(plan), build, disk_cache_for(data_cfg))


def _train_spec(plan: InputPlan, decoder: str = "pillow") -> dict:
    """What the training store's pixels depend on besides the files (the disk cache's key):
    not the augmentation, which runs on the stored pixels."""
    storage = ("eval view" if plan.trains_on_eval_view else f"presize {plan.presize}" if plan.presize
               else f"shorter side {plan.store_side}")
    return {"train": {"channels": plan.channels, "shape": plan.store_shape, "storage": storage,
                      "eval": plan.geometry().to_dict() if not plan.small else None,
                      "interpolation": plan.interpolation, "decoder": decoder}}


def _train_storage(plan: InputPlan):
    """(prepare, max_side, eval_ready) of the training store: what each decoded image becomes."""
    if plan.small:
        return _ResizeTo(plan.store_shape), None, False
    if plan.trains_on_eval_view:
        return plan.geometry().apply, None, True
    if plan.presize:
        return plan.geometry(plan.presize).apply, None, False
    return None, plan.store_side, False


class _ResizeTo:
    """Odd-sized images of a small-image set, squashed to the set's common (h, w) when decoded."""

    def __init__(self, height_width: tuple[int, int]):
        self.height_width = height_width

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.shape[:2] == self.height_width:
            return pixels
        return pil_resize(pixels, self.height_width, DEFAULT_INTERPOLATION)


def _train_stats(train: ImageStore, channels: int):
    """The training store's (mean, std): recalled from its disk-cache entry, else measured (and kept there)."""
    recalled = recalled_stats(train)
    if recalled is not None:
        return recalled
    mean, std = _measured_stats(train, channels)
    remember_stats(train, mean, std)
    return mean, std


def _measured_stats(train: ImageStore, channels: int):
    mean, std = channel_stats(train)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def default_workers(requested: int | None) -> int:
    if requested is not None:
        return requested
    return max(0, min(8, (os.cpu_count() or 1) - 1))
