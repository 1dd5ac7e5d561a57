"""Decode one image file into a uint8 array, the same way for every PIL mode.

Training, evaluation and prediction all decode through `load_image`, so an image
looks the same to the model whichever command reads it.
"""
import struct
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

# Modes that hold one grey value per pixel (before any alpha).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
WIDE_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# Modes whose values Image.reduce must not average (palette indices, 1-bit) or cannot (16-bit).
UNAVERAGED_MODES = frozenset({"1", "P", "PA", "I;16", "I;16L", "I;16B", "I;16N"})
# Shorter side a huge image (over PIL's MAX_IMAGE_PIXELS) is decoded to when the caller keeps
# images at full size: far above any input size, far below the gigabytes of the full image.
HUGE_IMAGE_SIDE = 1024

# What PIL raises for a truncated, corrupt or non-image file; we turn each into a DataError
# so one bad file is reported (or skipped by the store) instead of crashing a run.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)

# Warning filters are process-wide and decoding runs on threads: one open at a time changes them.
_OPEN_LOCK = threading.Lock()


def open_image(source) -> Image.Image:
    """PIL's lazy open (it reads the header only), without PIL's DecompressionBombWarning.

    Huge images are decoded reduced here, so the warning would only repeat for each of
    them, or stop the run under `python -W error`. Past twice the limit PIL still raises
    DecompressionBombError, which callers report as an unreadable file.
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(source)


def is_huge(size: tuple[int, int]) -> bool:
    """More pixels than PIL's MAX_IMAGE_PIXELS (its warning limit): never decoded at full size."""
    limit = Image.MAX_IMAGE_PIXELS
    return limit is not None and size[0] * size[1] > limit


class TooManyPixels(DataError):
    """An image whose header claims more pixels than the caller decodes (a decompression bomb,
    or simply too big): refused before any pixel is decoded."""


def load_image(path: str | Path | BinaryIO, channels: int, max_side: int | None = None, max_pixels: int | None = None,
               name: str | None = None) -> np.ndarray:
    """Decode `path` into a uint8 H x W x channels array, ready for a store.

    path: a file, or a binary file object (an upload) that messages call `name`.
    EXIF orientation is applied first, so a phone photo comes out upright.
    Transparent pixels are composited over black (a fully transparent pixel is 0).
    16-bit grey is scaled to 0..255 (value / 257, rounded); 32-bit integer and
    float grey are rounded and clipped to 0..255. channels=1 gives luminance as
    PIL's "L" conversion computes it; channels=3 gives RGB, grey replicated.
    max_side, when given, shrinks the image (antialiased, aspect kept) so its
    shorter side is at most max_side pixels; a huge image is shrunk even without it.
    max_pixels, when given, refuses (TooManyPixels) an image with more, from its header.
    """
    name = str(path) if name is None else name
    try:
        with open_image(path) as image:
            _check_pixel_count(image.size, max_pixels, name)
            pixels = decode(image, max_side)
    except Image.DecompressionBombError as error:
        advice = ("send a smaller image" if max_pixels is not None  # a caller with its own cap: a server
                  else "shrink the file, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it")
        raise TooManyPixels(f"image {name} has more pixels than Pillow decodes safely ({error}); {advice}") from error
    except DECODE_ERRORS as error:
        reason = str(error)
        if not isinstance(path, (str, Path)):
            reason = reason.replace(f" {path!r}", "")  # Pillow names a file object by its repr: noise
        raise DataError(f"cannot read image {name} ({reason}); remove or replace the file") from error
    return match_channels(pixels, channels)


def _check_pixel_count(size: tuple[int, int], max_pixels: int | None, name: str) -> None:
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise TooManyPixels(f"image {name} is {size[0]:,} x {size[1]:,} pixels, more than the {max_pixels:,} "
                            "allowed; send a smaller image")


def decode(image: Image.Image, max_side: int | None = None) -> np.ndarray:
    """An opened image's pixels as uint8 H x W (grey) or H x W x 3, upright, shorter side at most
    max_side (HUGE_IMAGE_SIDE for a huge image when max_side is None). Raises PIL's errors."""
    side = HUGE_IMAGE_SIDE if max_side is None and is_huge(image.size) else max_side
    if side is not None:
        image = _reduced(image, side)
    ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an image that needs no turning
    pixels = _to_uint8(image)
    return pixels if side is None else _shrink(pixels, side)


def _reduced(image: Image.Image, side: int) -> Image.Image:
    """A cheaper image to shrink exactly later: JPEG decodes at 1/2, 1/4 or 1/8 scale almost
    for free (draft keeps both sides >= side); a huge image of another format is reduced by
    a whole factor right after it is read, so no copy or conversion of it exists at full size."""
    image.draft(image.mode, (side, side))
    factor = min(image.size) // side
    if not is_huge(image.size) or factor < 2:
        return image
    if image.mode in UNAVERAGED_MODES:
        return image.resize((image.width // factor, image.height // factor), Image.Resampling.NEAREST)
    return image.reduce(factor)


def _to_uint8(image: Image.Image) -> np.ndarray:
    """The image's pixels as uint8: H x W when grey, H x W x 3 otherwise."""
    if image.mode in WIDE_MODES:
        return _wide_to_uint8(np.asarray(image))
    if _has_alpha(image):
        return _over_black(image)
    target = "L" if _is_grey(image) else "RGB"
    # convert() to the image's own mode is a copy: an image already in it is read as it is.
    return np.asarray(image if image.mode == target else image.convert(target))


def _wide_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit grey -> value / 257 rounded (65535 -> 255); int32 / float -> rounded and clipped."""
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info


def _over_black(image: Image.Image) -> np.ndarray:
    """Composite over black in the image's own colour space, rounding colour * alpha / 255."""
    grey = _is_grey(image)
    with_alpha = np.asarray(image.convert("LA" if grey else "RGBA")).astype(np.uint16)
    colour, alpha = with_alpha[..., :-1], with_alpha[..., -1:]
    blended = ((colour * alpha + 127) // 255).astype(np.uint8)
    return blended[..., 0] if grey else blended


def _is_grey(image: Image.Image) -> bool:
    """A grey mode, or a palette image whose used colours all have R == G == B."""
    if image.mode in GREY_MODES:
        return True
    if image.mode not in ("P", "PA"):
        return False
    palette = np.asarray(image.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
    # Only the entries the pixels use count: encoders often pad palettes with junk colours.
    used = np.unique(np.asarray(image.getchannel(0) if image.mode == "PA" else image))
    colours = palette[used[used < len(palette)]]
    return bool((colours == colours[:, :1]).all())


def _shrink(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Resize (bilinear, antialiased) so the shorter side is at most max_side pixels."""
    height, width = pixels.shape[:2]
    shorter = min(height, width)
    if shorter <= max_side:
        return pixels
    size = (max(1, round(width * max_side / shorter)), max(1, round(height * max_side / shorter)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def match_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """H x W or H x W x C uint8 -> H x W x channels (grey replicated, or RGB -> luminance)."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    return rgb_to_luma(pixels)[..., None]


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luminance of a ... x 3 uint8 array, bit-exact with PIL's convert("L").

    PIL computes (R * 19595 + G * 38470 + B * 7471 + 2**15) >> 16 (weights 0.299,
    0.587, 0.114 in 16-bit fixed point); array sources use this so they match files.
    """
    wide = rgb.astype(np.uint32)
    luma = (wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + 0x8000) >> 16
    return luma.astype(np.uint8)


def spread_picks(count: int, limit: int) -> np.ndarray:
    """Up to `limit` indices spread evenly over range(count), first and last included: a sample
    of a file list that sources build class by class, so every class is looked at."""
    return np.unique(np.linspace(0, count - 1, num=min(limit, count)).round().astype(int))


def guess_channels(paths: list[str | Path], limit: int = 64) -> int:
    """1 when every sampled image is grey, else 3: the default for --channels.

    Samples up to `limit` files spread evenly over the list (sources list files
    class by class, so every class is looked at). Unreadable files are ignored
    here; the store reports them. With nothing readable the answer is 3.
    """
    if not paths:
        return 3
    picks = spread_picks(len(paths), limit)
    seen_grey = []
    for index in picks:
        try:
            with open_image(paths[index]) as image:
                seen_grey.append(_is_grey(image))
        except DECODE_ERRORS:
            continue
    return 1 if seen_grey and all(seen_grey) else 3
