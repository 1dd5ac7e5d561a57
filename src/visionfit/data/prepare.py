"""From a dataset and an input plan to decoded stores and the preset.

    plan = plan_input(config.data, splits, natural_size, weights)     # decided before decoding
    prepared = prepare_data(config.data, splits, plan)               # decode once; statistics

`plan_input` is where the defaults that depend on the data or the starting weights are
decided (channels, input size, the small-image or photo recipe, the eval resize rule), each
with the reason, so the run can say what it chose. `prepare_data` decodes every split once:
training images at the plan's storage size (room for random crops), validation and test
images through the eval preprocessing itself, so validation sees what `predict` sees.
"""
import dataclasses
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..errors import DataError
from .decode import guess_channels
from .disk_cache import cached_store, disk_cache_for
from .memory import estimate_store_bytes, require_store_memory
from .preprocess import Preprocess, WeightsPreprocessing, pil_resize
from .samples import DatasetSplits, Samples
from .scan import with_scan
from .sources import limit_per_class, resolve, settle_validation
from .store import ImageStore, build_store, channel_stats, lazy_store
from .augment import AUGMENT_LEVELS, LEVELS
from .transforms import EVAL_CROP_FRACTION, SMALL_IMAGE_SIDE, Preset

RAGGED_STORE_MARGIN = 1.25  # photos are stored at 1.25x the eval resize side: room for random crops
MAX_STORED_SIDE = 16384  # pixels: the largest side a plan may ask to decode or store images at
MAX_PAD = 64
DEFAULT_INTERPOLATION = "bilinear"


@dataclass(frozen=True)
class InputPlan:
    """Everything about the model's input except statistics still to be measured."""

    channels: int
    size: int
    small: bool  # the small-image recipe (pad + random crop) rather than the photo one (random resized crop)
    resize: str
    resize_side: int
    interpolation: str
    store_shape: tuple[int, int] | None  # small images: every training image is stored at this (h, w)
    store_side: int | None  # photos: training images are stored with this shorter side (at most)
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None  # (mean, std) when known before decoding
    flip: bool
    rotation: float
    pad: int
    notes: tuple[str, ...] = ()  # what was decided from the data or the weights, and why
    augment: str = "light"  # the --augment level the parts below come from (augment.py)
    resized_crop: bool = True
    auto_augment: str | None = None
    color_jitter: float = 0.0
    erasing: float = 0.0

    def __post_init__(self):
        # A plan is read back from a run's record to resume it: a file, so nothing it says is trusted.
        sides = [self.size, self.resize_side, *(self.store_shape or ()), *([self.store_side] if self.store_side else [])]
        if not all(isinstance(side, int) and 1 <= side <= MAX_STORED_SIDE for side in sides):
            raise ValueError(f"image sides {sides} must be whole numbers from 1 to {MAX_STORED_SIDE}")
        if not (isinstance(self.pad, int) and 0 <= self.pad <= MAX_PAD and 0 <= float(self.rotation) <= 180):
            raise ValueError(f"pad {self.pad!r} and rotation {self.rotation!r} are out of range")
        if self.augment not in LEVELS:
            raise ValueError(f"augment {self.augment!r} is not one of {', '.join(LEVELS)}")

    def preprocess(self, mean, std) -> Preprocess:
        return Preprocess(self.size, self.channels, self.resize, self.resize_side, self.interpolation,
                          tuple(mean), tuple(std))

    def preset(self, mean, std) -> Preset:
        """The preset of this plan once the statistics are known: eval preprocessing and augmentation."""
        return Preset(self.preprocess(mean, std), small=self.small, flip=self.flip, rotation=self.rotation,
                      pad=self.pad, resized_crop=self.resized_crop, auto_augment=self.auto_augment,
                      color_jitter=self.color_jitter, erasing=self.erasing)


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
                         label_column=data_cfg.label_column, image_column=data_cfg.image_column,
                         multi_label=data_cfg.multi_label)
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


def plan_input(data_cfg, train: Samples, natural_size: int, weights: WeightsPreprocessing | None = None) -> InputPlan:
    """The input the run will use. Flags win, then the starting weights' own recipe, then the data.

    The recipe follows the majority of the training images: one odd-sized image never
    switches a set of 28-pixel digits to the photo recipe (it is resized to the majority's
    size instead, and the notes say so).
    """
    weights = weights or WeightsPreprocessing()
    notes = []
    channels = data_cfg.channels or weights.channels or data_channels(train)
    size = data_cfg.image_size or weights.size or natural_size
    common_hw, common_count, total = _majority_size(train)
    small = max(common_hw) <= SMALL_IMAGE_SIDE
    kind = "small images (squashed for eval; pad + random crop to augment)" if small else \
        "photos (shorter side and center crop for eval; random resized crop to augment)"
    notes.append(f"{kind}: {common_count:,} of {total:,} training images are {common_hw[0]}x{common_hw[1]}")
    if small and common_count < total:
        notes.append(f"{total - common_count:,} training images of other sizes are resized to "
                     f"{common_hw[0]}x{common_hw[1]} when decoded")
    resize = data_cfg.resize or weights.resize or ("both" if small else "shorter")
    crop_fraction = data_cfg.crop_fraction or weights.crop_fraction or (1.0 if resize == "both" else EVAL_CROP_FRACTION)
    resize_side = max(size, int(size / crop_fraction))
    interpolation = data_cfg.interpolation or weights.interpolation or DEFAULT_INTERPOLATION
    stats = _known_stats(data_cfg, weights, channels)
    level = data_cfg.augment or "light"  # set by the recipe (resolve_recipe) before a run plans its input
    parts = AUGMENT_LEVELS[level]
    flip = data_cfg.flip if data_cfg.flip is not None else parts["crop"] and not small
    pad = (data_cfg.pad if data_cfg.pad is not None else size // 8 * parts["crop"]) if small else 0
    return InputPlan(
        channels=channels, size=size, small=small, resize=resize, resize_side=resize_side,
        interpolation=interpolation, store_shape=common_hw if small else None,
        store_side=None if small else int(resize_side * RAGGED_STORE_MARGIN), stats=stats,
        flip=flip, rotation=data_cfg.rotation, pad=pad, notes=tuple(notes), augment=level,
        resized_crop=parts["crop"], auto_augment=parts["auto_augment"], color_jitter=parts["color_jitter"],
        erasing=parts["erasing"],
    )


def prepare_data(data_cfg, splits: DatasetSplits, plan: InputPlan) -> PreparedData:
    """Decode every split once (see the module docstring) and settle the preset."""
    workers = default_workers(data_cfg.workers)
    require_store_memory(estimate_store_bytes(splits, plan, data_cfg.cache))
    train = _train_store(data_cfg, splits.train, plan, workers)
    mean, std = plan.stats or _measured_stats(train, plan.channels)
    preset = plan.preset(mean, std)
    val, test = (None if s is None else eval_store(data_cfg, s, preset, workers, label)
                 for s, label in ((splits.val, "val"), (splits.test, "test")))
    return PreparedData(splits, preset, train, val, test)


def eval_store(data_cfg, samples: Samples, preset: Preset, workers: int, label: str = "images") -> ImageStore:
    """Images decoded at full size and put through the eval preprocessing once: evaluation
    batches come from one size x size tensor, with exactly the pixels `predict` would use.
    With --cache none they are decoded on access, through the same preprocessing."""
    apply = preset.preprocess.apply
    if data_cfg.cache == "none" and samples.paths is not None:
        return lazy_store(samples, preset.channels, prepare=apply, eval_ready=True)
    build = partial(build_store, samples, preset.channels, workers=workers, prepare=apply, eval_ready=True, label=label)
    return cached_store(samples, {"eval": preset.preprocess.to_dict()}, build, disk_cache_for(data_cfg))


def _train_store(data_cfg, samples: Samples, plan: InputPlan, workers: int) -> ImageStore:
    if plan.small:
        shape = plan.store_shape
        prepare = _ResizeTo(shape)
        if data_cfg.cache == "none" and samples.paths is not None:
            return lazy_store(samples, plan.channels, prepare=prepare)
        build = partial(build_store, samples, plan.channels, workers=workers, prepare=prepare, label="train")
        return cached_store(samples, _train_spec(plan), build, disk_cache_for(data_cfg))
    if data_cfg.cache == "none":
        return lazy_store(samples, plan.channels, max_side=plan.store_side)
    build = partial(build_store, samples, plan.channels, max_side=plan.store_side, workers=workers, label="train")
    return cached_store(samples, _train_spec(plan), build, disk_cache_for(data_cfg))


def _train_spec(plan: InputPlan) -> dict:
    """What the training store's pixels depend on besides the files (the disk cache's key)."""
    return {"train": {"channels": plan.channels, "shape": plan.store_shape, "shorter_side": plan.store_side,
                      "interpolation": DEFAULT_INTERPOLATION}}


class _ResizeTo:
    """Odd-sized images of a small-image set, squashed to the set's common (h, w) when decoded."""

    def __init__(self, height_width: tuple[int, int]):
        self.height_width = height_width

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.shape[:2] == self.height_width:
            return pixels
        return pil_resize(pixels, self.height_width, DEFAULT_INTERPOLATION)


def _majority_size(samples: Samples) -> tuple[tuple[int, int], int, int]:
    """((h, w) shared by the most training images, how many share it, how many were looked at),
    from the scan's header sizes (unreadable files left out)."""
    if samples.images is not None:
        return tuple(samples.images.shape[1:3]), len(samples), len(samples)
    scan = with_scan(samples).scan
    sizes = [(int(h), int(w)) for (w, h), fault in zip(scan.sizes, scan.faults) if fault is None]
    if not sizes:
        raise DataError(f"none of the {len(samples)} training images could be read; check the data "
                        f"(first: {samples.paths[0]})")
    (common, count), = Counter(sizes).most_common(1)
    return common, count, len(sizes)


def _known_stats(data_cfg, weights: WeightsPreprocessing, channels: int):
    if data_cfg.mean is not None and data_cfg.std is not None:
        return _per_channel(data_cfg.mean, channels), _per_channel(data_cfg.std, channels)
    if weights.mean is not None and weights.std is not None:
        return _per_channel(weights.mean, channels), _per_channel(weights.std, channels)
    return None


def _measured_stats(train: ImageStore, channels: int):
    mean, std = channel_stats(train)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def default_workers(requested: int | None) -> int:
    if requested is not None:
        return requested
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _per_channel(values, channels: int) -> tuple[float, ...]:
    values = [float(v) for v in values]
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:
        return tuple(values * channels)
    return (round(sum(values) / len(values), 4),)  # RGB statistics for a grey input: their mean
