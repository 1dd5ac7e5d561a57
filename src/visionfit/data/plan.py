"""The input plan: what the model is fed and how training images are stored, decided before decoding.

    plan = plan_input(config.data, splits.train, natural_size, weights)

Flags win, then the starting weights' own recipe, then the data: channels, input size, the
small-image or photo recipe, the eval resize rule, the augmentation's parts and the storage
of training images (prepare.py's docstring), each decision with the reason in `notes`, so
the run can say what it chose. A run's record keeps the plan; resuming reads it back.
"""
from collections import Counter
from dataclasses import dataclass

from ..errors import ConfigError, DataError
from .augment import AUGMENT_LEVELS, LEVELS
from .decode import guess_channels
from .preprocess import Preprocess, WeightsPreprocessing
from .samples import Samples
from .scan import with_scan
from .transforms import EVAL_CROP_FRACTION, SMALL_IMAGE_SIDE, Preset

RAGGED_STORE_MARGIN = 1.25  # --presize 0: photos are stored at 1.25x the eval resize side: room for random crops
PRESIZE_MARGIN = 1.15  # photos are stored as squares of 1.15x the input side (258 for 224): room for random crops
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
    store_side: int | None  # photos kept whole (--presize 0): training images are stored with this shorter side (at most)
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
    # Photos with a random resized crop: training images are stored as presize x presize squares.
    # None otherwise, and in the records of runs from before it existed (they stored photos whole).
    presize: int | None = None

    def __post_init__(self):
        # A plan is read back from a run's record to resume it: a file, so nothing it says is trusted.
        sides = [self.size, self.resize_side, *(self.store_shape or ()),
                 *(side for side in (self.store_side, self.presize) if side is not None)]
        if not all(isinstance(side, int) and 1 <= side <= MAX_STORED_SIDE for side in sides):
            raise ValueError(f"image sides {sides} must be whole numbers from 1 to {MAX_STORED_SIDE}")
        if not (isinstance(self.pad, int) and 0 <= self.pad <= MAX_PAD and 0 <= float(self.rotation) <= 180):
            raise ValueError(f"pad {self.pad!r} and rotation {self.rotation!r} are out of range")
        if self.augment not in LEVELS:
            raise ValueError(f"augment {self.augment!r} is not one of {', '.join(LEVELS)}")

    @property
    def trains_on_eval_view(self) -> bool:
        """Photos without a random resized crop: training starts from each image's eval view
        (Preset.train_starts_from_eval_view), so the training store holds exactly that."""
        return not self.small and not self.resized_crop

    def geometry(self, size: int | None = None) -> Preprocess:
        """The eval resize and center crop (at `size` instead of the input size when given, the
        presized store's), for decoding: apply() reads no statistics, which may be unmeasured yet."""
        side = size or self.size
        return Preprocess(side, self.channels, self.resize, size or self.resize_side, self.interpolation,
                          (0.0,) * self.channels, (1.0,) * self.channels)

    def preprocess(self, mean, std) -> Preprocess:
        return Preprocess(self.size, self.channels, self.resize, self.resize_side, self.interpolation,
                          tuple(mean), tuple(std))

    def preset(self, mean, std) -> Preset:
        """The preset of this plan once the statistics are known: eval preprocessing and augmentation."""
        return Preset(self.preprocess(mean, std), small=self.small, flip=self.flip, rotation=self.rotation,
                      pad=self.pad, resized_crop=self.resized_crop, auto_augment=self.auto_augment,
                      color_jitter=self.color_jitter, erasing=self.erasing)


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
    resized_crop = parts["crop"] and (small or data_cfg.pad != 0)  # photos: --pad 0 turns their crop off too
    if parts["crop"] and not resized_crop:
        notes.append("pad 0 (--pad, a recipe's, or a frozen backbone's default): no random resized crop either; training starts from each photo's "
                     "eval view (stored as such)")
    presize = _presize(data_cfg.presize, size, resized_crop and not small, notes)
    return InputPlan(
        channels=channels, size=size, small=small, resize=resize, resize_side=resize_side,
        interpolation=interpolation, store_shape=common_hw if small else None,
        store_side=int(resize_side * RAGGED_STORE_MARGIN) if resized_crop and not small and presize is None else None,
        stats=stats, flip=flip, rotation=data_cfg.rotation, pad=pad, notes=tuple(notes), augment=level,
        resized_crop=resized_crop, auto_augment=parts["auto_augment"], color_jitter=parts["color_jitter"],
        erasing=parts["erasing"], presize=presize,
    )


def _presize(asked: int | None, size: int, resized_crop: bool, notes: list) -> int | None:
    """The side of the squares photos are stored at for random resized crops (--presize, by
    default PRESIZE_MARGIN x the input side), or None: no such crop, or --presize 0 (whole photos)."""
    if not resized_crop:
        if asked:
            notes.append(f"--presize {asked} unused: training images are stored at their eval view or own size")
        return None
    if asked is None:
        return round(size * PRESIZE_MARGIN)
    if asked and asked < size:  # Config.validate checks a given --image-size; this, one the weights chose
        raise ConfigError(f"--presize must be 0 or at least the input size ({size}), not {asked}: random resized "
                          f"crops are cut from the stored square")
    return asked or None


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


def _per_channel(values, channels: int) -> tuple[float, ...]:
    values = [float(v) for v in values]
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:
        return tuple(values * channels)
    return (round(sum(values) / len(values), 4),)  # RGB statistics for a grey input: their mean
