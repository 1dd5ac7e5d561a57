"""Training augmentation around the one eval preprocessing (data/preprocess.py).

A `Preset` holds the eval spec (`Preprocess`: input size, resize rule, mean/std) and the
augmentation strengths. It yields
  - `eval_transform()`: the eval preprocessing on a uint8 C x H x W tensor (Preprocess.apply);
  - `train_transform()`: per-sample torchvision.transforms.v2 augmentation, for stores whose
    images differ in size or are decoded on access, and for ops that only run per image, and
  - `augment_batch`, the same augmentations on a whole uint8 N x C x H x W batch on the
    training device, for stores of equal-size images (MNIST, CIFAR, resized sets), less the
    per-image colour ops (`colour_transform`), which the loader runs between its
    `geometry_batch` and `erase_batch` halves on a CUDA device.
Normalisation happens once, on the device, in `normalize`.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .augment import AUTO_AUGMENTS, colour_ops, erasing_fill, random_erasing
from .preprocess import Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP_FRACTION = 0.875  # photos: resize to size / 0.875, then center-crop size (256 -> 224)
RRC_SCALE = (0.08, 1.0)  # area fraction of a random resized crop (torchvision's default)
RRC_RATIO = (3 / 4, 4 / 3)
RRC_ATTEMPTS = 10  # draws before falling back to the whole image, as torchvision
SMALL_IMAGE_SIDE = 64  # images at most this big get pad + random crop instead of resized crops


@dataclass(frozen=True)
class Preset:
    preprocess: Preprocess  # what evaluation, prediction and export show the model
    small: bool  # pad + random crop (small images) vs random resized crop (photos)
    flip: bool
    rotation: float = 0.0  # degrees, +/-
    pad: int = 0  # pixels, for the random crop of small images
    resized_crop: bool = True  # photos: a random resized crop; off: training starts from the eval view
    auto_augment: str | None = None  # "trivial" (TrivialAugmentWide) or "rand" (RandAugment), per image
    color_jitter: float = 0.0  # brightness, contrast and saturation strength, per image
    erasing: float = 0.0  # probability of erasing a random box (filled with the mean)

    def __post_init__(self):
        # A model file's preset is read back through here: its values are data, checked.
        if self.auto_augment not in AUTO_AUGMENTS:
            raise ValueError(f"auto_augment {self.auto_augment!r} is not one of {AUTO_AUGMENTS}")
        if not (0 <= float(self.color_jitter) <= 1 and 0 <= float(self.erasing) <= 1):
            raise ValueError(f"color_jitter {self.color_jitter!r} and erasing {self.erasing!r} must be in [0, 1]")

    @property
    def size(self) -> int:
        return self.preprocess.size

    @property
    def channels(self) -> int:
        return self.preprocess.channels

    @property
    def mean(self) -> tuple[float, ...]:
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.preprocess.std

    def augmentation(self) -> dict:
        """The training augmentation as plain values (model files and config.yaml keep it)."""
        return {"small": self.small, "flip": self.flip, "rotation": self.rotation, "pad": self.pad,
                "resized_crop": self.resized_crop, "auto_augment": self.auto_augment,
                "color_jitter": self.color_jitter, "erasing": self.erasing}

    def eval_transform(self):
        """uint8 C x H x W of any size -> uint8 C x size x size: Preprocess.apply on a tensor."""
        return _EvalTransform(self.preprocess)

    def train_transform(self):
        """uint8 C x H x W of any size -> randomly augmented uint8 C x size x size. Photos without
        a random resized crop arrive as their eval view (train_starts_from_eval_view): the training
        store holds it, so it is not computed again here."""
        from torchvision.transforms import InterpolationMode, v2  # imported when training needs it

        interpolation = InterpolationMode(self.preprocess.interpolation)
        if self.small:
            steps = [v2.Resize((self.size, self.size), interpolation=interpolation, antialias=True),
                     v2.RandomCrop(self.size, padding=self.pad)]
        elif self.resized_crop:
            steps = [v2.RandomResizedCrop(self.size, scale=RRC_SCALE, ratio=RRC_RATIO, interpolation=interpolation,
                                          antialias=True)]
        else:
            steps = []
        if self.flip:
            steps.append(v2.RandomHorizontalFlip())
        if self.rotation:
            steps.append(v2.RandomRotation(self.rotation))
        steps += colour_ops(self.auto_augment, self.color_jitter, interpolation)
        if self.erasing:
            steps.append(v2.RandomErasing(self.erasing, value=erasing_fill(self.mean)))
        return v2.Compose(steps) if steps else v2.Identity()  # Compose refuses an empty list

    @property
    def train_is_deterministic(self) -> bool:
        """True when training sees each image the same way every epoch (features can be cached)."""
        return not self.random_ops()

    def random_ops(self) -> tuple[str, ...]:
        """The random operations of training, in the order they run ("random resized crop",
        "random crop", "flip", "rotation", ...): what makes an image look different each epoch."""
        if self.small:
            crop = ("random crop",) if self.pad else ()
        else:
            crop = ("random resized crop",) if self.resized_crop else ()
        policy = {"trivial": ("TrivialAugment",), "rand": ("RandAugment",), None: ()}[self.auto_augment]
        colour = policy + (("colour jitter",) if self.color_jitter else ())
        return (crop + (("flip",) if self.flip else ()) + (("rotation",) if self.rotation else ()) + colour
                + (("random erasing",) if self.erasing else ()))

    @property
    def per_sample_ops(self) -> bool:
        """True when training uses an op that only runs image by image (TrivialAugment,
        RandAugment, colour jitter): augment_batch cannot run it; the loader runs it image by
        image on a CUDA device, DataLoader workers do elsewhere."""
        return self.auto_augment is not None or bool(self.color_jitter)

    @property
    def train_starts_from_eval_view(self) -> bool:
        """Photos without a random resized crop: training augments the eval view of each image."""
        return not self.small and not self.resized_crop

    def normalize(self, x_0_255: torch.Tensor) -> torch.Tensor:
        """N x C x H x W pixel values 0..255 (uint8 or float) -> float32, normalised per channel."""
        return normalize(x_0_255, self.mean, self.std)

    def augment_batch(self, x_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The training augmentation, drawn independently per image, on a uint8 batch.

        Returns float32 0..255 values at size x size (normalize() scales them), so that
        bilinear resampling happens once, on the device the batch lives on. Ops that only run
        per image (per_sample_ops) are not here: the loader runs them between geometry_batch
        and erase_batch (on a CUDA device) or feeds such runs through train_transform.
        Photos without a resized crop arrive as their eval view (train_starts_from_eval_view).
        """
        return self.erase_batch(self.geometry_batch(x_uint8, generator), generator)

    def colour_transform(self):
        """The per-image ops of training (TrivialAugmentWide, RandAugment, colour jitter), the same
        colour_ops train_transform runs, as one transform of uint8 C x H x W; None when there are none."""
        from torchvision.transforms import InterpolationMode, v2

        ops = colour_ops(self.auto_augment, self.color_jitter, InterpolationMode(self.preprocess.interpolation))
        return v2.Compose(ops) if ops else None

    def geometry_batch(self, x_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """augment_batch's crop, flip and rotation (train_transform's first steps): float32 0..255, size x size."""
        x = x_uint8.float()
        resampled = not self.small and self.resized_crop
        if self.small:
            x = _resize(x, self.size)
            if self.pad:
                x = _random_crop_padded(x, self.pad, generator)
        if not (resampled or self.flip or self.rotation):
            return x
        if resampled:
            theta = _random_resized_crop_theta(len(x), x.shape[-2:], x.device, generator)
        else:
            theta = _identity(len(x), x.device)
        if self.flip:
            flip = torch.rand(len(x), device=x.device, generator=generator) < 0.5
            theta[:, 0, :2] = torch.where(flip[:, None], -theta[:, 0, :2], theta[:, 0, :2])
        if self.rotation:
            theta = _rotate(theta, self.rotation, generator)
        grid = F.affine_grid(theta, [len(x), x.shape[1], self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def erase_batch(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """augment_batch's last step, random erasing (train_transform's last step too)."""
        if self.erasing:
            x = random_erasing(x, self.erasing, erasing_fill(self.mean), generator)
        return x


def preset_from_meta(meta: dict) -> Preset:
    """The preset a model file records: "preprocess" (the eval spec) + "preset" (augmentation).

    Files of visionfit 0.1.0 have only "preset" (size, channels, mean, std, small, flip, ...),
    whose eval was: photos shorter side to floor(size / 0.875), small images squashed.
    """
    augmentation = meta["preset"]
    spec = meta.get("preprocess")
    if spec is None:
        size, channels = augmentation["size"], augmentation["channels"]
        mean, std = augmentation["mean"], augmentation["std"]
        spec = (Preprocess.squash(size, channels, "bilinear", mean, std) if augmentation["small"] else
                Preprocess.for_crop(size, channels, EVAL_CROP_FRACTION, "bilinear", mean, std))
    else:
        spec = Preprocess.from_dict(spec)
    return Preset(spec, bool(augmentation["small"]), bool(augmentation["flip"]),
                  float(augmentation.get("rotation", 0.0)), int(augmentation.get("pad", 0)),
                  bool(augmentation.get("resized_crop", True)), augmentation.get("auto_augment"),
                  float(augmentation.get("color_jitter", 0.0)), float(augmentation.get("erasing", 0.0)))


def normalize(x_0_255: torch.Tensor, mean, std) -> torch.Tensor:
    """(pixel / 255 - mean) / std per channel, as float32: the one normalisation (the exported
    graph's --with-preprocessing step calls this too)."""
    mean, std = (values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.float32)
                 for values in (mean, std))  # tensors pass as they are: constants a tracer records silently
    mean = mean.to(x_0_255.device).view(1, -1, 1, 1)
    std = std.to(x_0_255.device).view(1, -1, 1, 1)
    return (x_0_255.float() / 255 - mean) / std


class _EvalTransform:
    """Preprocess.apply for uint8 C x H x W tensors (a class, not a closure: DataLoader workers pickle it)."""

    def __init__(self, preprocess: Preprocess):
        self.preprocess = preprocess

    def __call__(self, image_chw: torch.Tensor) -> torch.Tensor:
        pixels = self.preprocess.apply(image_chw.permute(1, 2, 0).numpy())
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy())  # a copy: Pillow's arrays are read-only


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _random_crop_padded(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by `pad` and crop back to the original size at a random offset per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    # One gather over each padded image's flattened pixels: 3x faster on a CPU than indexing
    # with four broadcast index tensors.
    width = w + 2 * pad
    window = (torch.arange(h, device=x.device)[:, None] * width + torch.arange(w, device=x.device)).reshape(1, 1, -1)
    index = (dy * width + dx)[:, None, None] + window  # n,1,h*w: the crop's pixels in the padded image
    return padded.flatten(2).gather(2, index.expand(n, c, h * w)).view(n, c, h, w)


def _identity(n: int, device: torch.device) -> torch.Tensor:
    return torch.eye(2, 3, device=device).repeat(n, 1, 1)


def _random_resized_crop_theta(n, hw, device, generator) -> torch.Tensor:
    """Affine matrices (normalised coordinates) for random resized crops drawn as torchvision's
    RandomResizedCrop draws them: up to RRC_ATTEMPTS (area, log-ratio) draws, the first crop that
    fits the image wins; when none fits, the whole image, its ratio clamped into RRC_RATIO."""
    h, w = hw
    shape = (n, RRC_ATTEMPTS)
    area = torch.empty(shape, device=device).uniform_(*RRC_SCALE, generator=generator) * h * w
    log_ratio = torch.empty(shape, device=device).uniform_(
        math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]), generator=generator
    )
    ratio = torch.exp(log_ratio)
    crop_w, crop_h = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
    fits = (crop_w >= 1) & (crop_w <= w) & (crop_h >= 1) & (crop_h <= h)
    first = fits.float().argmax(dim=1)  # the first attempt that fits (0 when none does)
    crop_w, crop_h = crop_w.gather(1, first[:, None])[:, 0], crop_h.gather(1, first[:, None])[:, 0]
    fallback_w, fallback_h = _whole_image_crop(h, w)
    none_fit = ~fits.any(dim=1)
    crop_w = torch.where(none_fit, torch.full_like(crop_w, fallback_w), crop_w)
    crop_h = torch.where(none_fit, torch.full_like(crop_h, fallback_h), crop_h)
    # Centre anywhere the crop still fits, in -1..1 coordinates (the fallback is centred).
    max_cx = torch.where(none_fit, torch.zeros_like(crop_w), 1 - crop_w / w)
    max_cy = torch.where(none_fit, torch.zeros_like(crop_h), 1 - crop_h / h)
    cx = (torch.rand(n, device=device, generator=generator) * 2 - 1) * max_cx
    cy = (torch.rand(n, device=device, generator=generator) * 2 - 1) * max_cy
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = crop_w / w
    theta[:, 1, 1] = crop_h / h
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    return theta


def _whole_image_crop(h: int, w: int) -> tuple[float, float]:
    """torchvision's fallback: the whole image, narrowed to the nearest allowed aspect ratio."""
    if w / h < RRC_RATIO[0]:
        return float(w), float(round(w / RRC_RATIO[0]))
    if w / h > RRC_RATIO[1]:
        return float(round(h * RRC_RATIO[1])), float(h)
    return float(w), float(h)


def _rotate(theta: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    n = len(theta)
    angle = torch.empty(n, device=theta.device).uniform_(-degrees, degrees, generator=generator)
    angle = angle * math.pi / 180
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)  # n,2,2
    rotated = theta.clone()
    rotated[:, :, :2] = theta[:, :, :2] @ rotation
    return rotated
