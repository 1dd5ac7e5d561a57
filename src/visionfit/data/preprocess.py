"""The eval preprocessing, stated completely and implemented once.

    spec = Preprocess(size=224, channels=3, resize="shorter", resize_side=256, interpolation="bicubic",
                      mean=IMAGENET_MEAN, std=IMAGENET_STD)
    pixels = spec.apply(decoded_hwc_uint8)       # 224 x 224 x 3 uint8, what the model is shown

Validation during training, `eval`, `predict`, `export --check` and `serve` all pass every
image through `Preprocess.apply`, so they show the model the same pixels. The spec travels
in every model file and ONNX file (`describe()`), complete enough for a consumer with only
Pillow and numpy to reproduce it exactly: decode, resize, center crop, scale, normalise.

Resizing is Pillow's `Image.resize` on uint8 pixels (antialiased when shrinking): the
resampler a consumer of the metadata is most likely to have, so their pixels equal ours.
"""
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ModelError

# resize rule -> what it does, for messages and the metadata.
RESIZE_RULES = {
    "shorter": "the shorter side to resize_side, aspect ratio kept (longer = floor(longer * resize_side / shorter)), "
               "then a center crop of crop_size x crop_size",
    "both": "both sides to resize_side x resize_side (aspect ratio not kept), then a center crop of crop_size x crop_size",
}
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
DECODING = ("EXIF orientation applied; transparent pixels composited over black; 16-bit grey scaled by 1/257 "
            "and rounded; then RGB, or for 1 channel the luminance of Pillow's convert('L') "
            "((R*19595 + G*38470 + B*7471 + 32768) >> 16)")
SPEC_FORMAT = "visionfit-preprocess/1"
MAX_SIDE = 8192  # a bound on what a file may ask for: larger sides are typos or crafted files


@dataclass(frozen=True)
class Preprocess:
    """Decoded uint8 pixels -> the model's input, as a value (see the module docstring)."""

    size: int  # crop side: the model's input is size x size
    channels: int  # 1 (luminance) or 3 (RGB)
    resize: str  # a key of RESIZE_RULES
    resize_side: int  # pixels; >= size
    interpolation: str  # a key of INTERPOLATIONS
    mean: tuple[float, ...]  # per channel, on the 0..1 scale
    std: tuple[float, ...]

    def __post_init__(self):
        problem = _problem(self)
        if problem:
            raise ModelError(f"invalid preprocessing: {problem}")

    @classmethod
    def for_crop(cls, size: int, channels: int, crop_fraction: float, interpolation: str, mean, std) -> "Preprocess":
        """The ImageNet recipe: shorter side to floor(size / crop_fraction), then the center crop (0.875: 256 -> 224)."""
        return cls(size, channels, "shorter", math.floor(size / crop_fraction), interpolation, tuple(mean), tuple(std))

    @classmethod
    def squash(cls, size: int, channels: int, interpolation: str, mean, std) -> "Preprocess":
        """Small images: both sides to size (MNIST-like sets, where there is nothing to crop away)."""
        return cls(size, channels, "both", size, interpolation, tuple(mean), tuple(std))

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the resize step, before the crop."""
        if self.resize == "both":
            return self.resize_side, self.resize_side
        shorter, longer = min(height, width), max(height, width)
        # torchvision's Resize(int) rule, so a consumer using it gets the same size.
        long_side = max(self.resize_side, int(longer * self.resize_side / shorter))
        return (self.resize_side, long_side) if height <= width else (long_side, self.resize_side)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """H x W x channels uint8 of any size -> size x size x channels uint8."""
        height, width = pixels.shape[:2]
        target = self.resized_shape(height, width)
        if target != (height, width):
            pixels = pil_resize(pixels, target, self.interpolation)
            height, width = target
        # round() halves to even, as torchvision's CenterCrop (and numpy's round) do.
        top, left = round((height - self.size) / 2), round((width - self.size) / 2)
        return np.ascontiguousarray(pixels[top : top + self.size, left : left + self.size])

    def summary(self) -> str:
        """One line for people: 'shorter side to 256 (bilinear), center crop 224, 3 channels, mean ... std ...'."""
        resize = f"shorter side to {self.resize_side}" if self.resize == "shorter" else f"both sides to {self.resize_side}"
        crop = f", center crop {self.size}" if self.resize_side != self.size else ""
        numbers = lambda values: ",".join(f"{v:.4g}" for v in values)  # noqa: E731
        return (f"{resize} ({self.interpolation}){crop}, {self.channels} channel{'s' if self.channels > 1 else ''}, "
                f"mean {numbers(self.mean)} std {numbers(self.std)}")

    def to_dict(self) -> dict:
        """The machine-readable fields, plain JSON types (what from_dict reads back)."""
        return {"size": self.size, "channels": self.channels, "resize": self.resize, "resize_side": self.resize_side,
                "interpolation": self.interpolation, "mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> dict:
        """to_dict plus the words a consumer needs to reproduce it: model files and ONNX metadata carry this."""
        return {
            "format": SPEC_FORMAT, **self.to_dict(),
            "decode": DECODING,
            "channel_order": "RGB" if self.channels == 3 else "L (luminance)",
            "resize_rule": RESIZE_RULES[self.resize],
            "resize_library": "Pillow Image.resize on uint8 pixels (antialiased when shrinking)",
            "crop": "center: top = round((height - size) / 2), left = round((width - size) / 2), halves to even "
                    "(Python's and numpy's round, torchvision's CenterCrop)",
            "value_range": "pixel / 255, then (value - mean) / std per channel",
            "layout": "N x C x size x size float32",
        }

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocess":
        """Read back to_dict/describe output (from a model file: checked, never trusted)."""
        if not isinstance(values, dict):
            raise ModelError(f"invalid preprocessing: expected a mapping, got {type(values).__name__}")
        missing = [key for key in ("size", "channels", "resize", "resize_side", "interpolation", "mean", "std")
                   if key not in values]
        if missing:
            raise ModelError(f"invalid preprocessing: missing {', '.join(missing)}")
        mean, std = values["mean"], values["std"]
        if not (isinstance(mean, list) and isinstance(std, list)):
            raise ModelError("invalid preprocessing: mean and std must be lists of numbers")
        return cls(values["size"], values["channels"], values["resize"], values["resize_side"],
                   values["interpolation"], tuple(mean), tuple(std))


@dataclass(frozen=True)
class WeightsPreprocessing:
    """What starting weights say about their input (a pretrained set's own eval recipe)."""

    size: int | None = None
    channels: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str | None = None  # "shorter" or "both"
    crop_fraction: float | None = None  # crop side / resize side (timm's crop_pct)
    interpolation: str | None = None


def pil_resize(pixels: np.ndarray, height_width: tuple[int, int], interpolation: str) -> np.ndarray:
    """H x W x C uint8 -> height x width x C uint8 with Pillow's resampler (C is 1 or 3)."""
    grey = pixels.shape[-1] == 1
    image = Image.fromarray(pixels[..., 0] if grey else pixels)
    resized = np.asarray(image.resize(height_width[::-1], INTERPOLATIONS[interpolation]))
    return resized[..., None] if grey else resized


def _problem(spec: Preprocess) -> str | None:
    """What is wrong with a spec (it may come from a file), or None."""
    for name in ("size", "resize_side", "channels"):
        value = getattr(spec, name)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} must be an integer, not {value!r}"
    if spec.channels not in (1, 3):
        return f"channels must be 1 or 3, not {spec.channels}"
    if not 1 <= spec.size <= spec.resize_side <= MAX_SIDE:
        return f"sizes must satisfy 1 <= size ({spec.size}) <= resize_side ({spec.resize_side}) <= {MAX_SIDE}"
    if spec.resize not in RESIZE_RULES:
        return f"resize must be one of {', '.join(RESIZE_RULES)}, not {spec.resize!r}"
    if spec.interpolation not in INTERPOLATIONS:
        return f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {spec.interpolation!r}"
    for name in ("mean", "std"):
        values = getattr(spec, name)
        if len(values) != spec.channels or not all(_finite_number(v) for v in values):
            return f"{name} must be {spec.channels} finite numbers, not {list(values)!r}"
    if not all(v > 0 for v in spec.std):
        return f"std values must be > 0, not {list(spec.std)!r}"
    return None


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
