"""JPEG files decoded on the GPU (nvjpeg, through torchvision.io.decode_jpeg) into a store.

    pixels, left_over = decode_jpegs(paths, spec, sizes, device)   # uint8 N x C x size x size
    store = gpu_store(samples, spec, device, workers)              # what build_store makes, JPEGs by nvjpeg

For the training store of a run on a CUDA device: its images are cropped at random anyway,
so the few levels by which torch's resampler differs from Pillow's do not matter there.
Validation, test, predict, export and serve keep Pillow's exact pixels (Preprocess.apply).
The geometry is Preprocess's own (resized_shape, then the center crop), so the two paths
crop the same part of every image. Files nvjpeg cannot take (not a JPEG, corrupt, more
pixels than MAX_GPU_PIXELS by their header) are handed back for the Pillow path, which
decodes what it can and reports the rest.
"""
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import progress
from ..errors import DataError
from .preprocess import Preprocess
from .samples import Samples
from .scan import with_scan
from .store import ImageStore, load_row

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
CHUNK = 64  # files decoded per call: enough to keep nvjpeg busy, few enough to bound GPU memory
MAX_GPU_PIXELS = 64 * 2**20  # by the header; bigger files take the Pillow path, which decodes them reduced


def is_jpeg(path: str | Path) -> bool:
    """True when the file starts like a JPEG (its name may say otherwise)."""
    try:
        with open(path, "rb") as file:
            return file.read(3) == JPEG_MAGIC
    except OSError:
        return False


def decode_jpegs(paths: list, spec: Preprocess, sizes: list[tuple[int, int]], device: torch.device,
                 chunk: int = CHUNK) -> tuple[torch.Tensor, list[int]]:
    """(uint8 N x C x size x size on the CPU, the rows left for the Pillow path).

    sizes: each file's (width, height) from its header (data/scan.py), so nothing is decoded
    that claims more than MAX_GPU_PIXELS. A left-over row's pixels are zeros until the caller
    fills or drops it.
    """
    with warnings.catch_warnings():  # torchvision 0.29 points image decoding to TorchCodec, which has no nvjpeg batch API
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg, read_file  # imported when a GPU run needs it

    mode = ImageReadMode.GRAY if spec.channels == 1 else ImageReadMode.RGB
    pixels = torch.zeros((len(paths), spec.channels, spec.size, spec.size), dtype=torch.uint8)
    rows = [row for row, (path, (width, height)) in enumerate(zip(paths, sizes))
            if width * height <= MAX_GPU_PIXELS and is_jpeg(path)]
    left_over = sorted(set(range(len(paths))) - set(rows))
    for start in range(0, len(rows), chunk):
        batch = rows[start : start + chunk]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            images = _decode_batch([read_file(str(paths[row])) for row in batch], mode, device, decode_jpeg)
        for row, image in zip(batch, images):
            if image is None:
                left_over.append(row)
            else:
                pixels[row] = presize_tensor(image, spec).cpu()
    return pixels, sorted(left_over)


def _decode_batch(datas: list[torch.Tensor], mode, device: torch.device, decode_jpeg) -> list[torch.Tensor | None]:
    """Decode a batch in one call; if one file breaks it, each file alone (None where it fails)."""
    try:
        return list(decode_jpeg(datas, mode=mode, device=device, apply_exif_orientation=True))
    except RuntimeError:
        return [_decode_one(data, mode, device, decode_jpeg) for data in datas]


def _decode_one(data: torch.Tensor, mode, device: torch.device, decode_jpeg) -> torch.Tensor | None:
    try:
        return decode_jpeg(data, mode=mode, device=device, apply_exif_orientation=True)
    except RuntimeError:
        return None


def presize_tensor(image_chw: torch.Tensor, spec: Preprocess) -> torch.Tensor:
    """uint8 C x H x W (any device) -> uint8 C x size x size: Preprocess's geometry with torch's
    antialiased resampler (the same crop as Preprocess.apply; pixels within a few levels)."""
    height, width = image_chw.shape[-2:]
    target = spec.resized_shape(height, width)
    if target != (height, width):
        nearest = spec.interpolation == "nearest"
        # "nearest-exact" samples pixel centres, as Pillow's NEAREST does; plain "nearest" does not.
        resized = F.interpolate(image_chw[None].float(), size=target, mode="nearest-exact" if nearest else
                                spec.interpolation, antialias=not nearest, align_corners=None if nearest else False)
        image_chw = resized[0].round().clamp(0, 255).to(torch.uint8)
        height, width = target
    top, left = round((height - spec.size) / 2), round((width - spec.size) / 2)
    return image_chw[:, top : top + spec.size, left : left + spec.size]


def decodes_on_gpu(device: torch.device | None, samples: Samples) -> bool:
    """Whether a training store of these samples is decoded by nvjpeg: files, on a CUDA device."""
    return device is not None and device.type == "cuda" and samples.paths is not None


def gpu_store(samples: Samples, spec: Preprocess, device: torch.device, workers: int, eval_ready: bool = False,
              label: str = "images") -> ImageStore:
    """The store `build_store(samples, spec.channels, prepare=spec.apply)` makes, its JPEGs decoded
    by nvjpeg on `device`; the other files (and those nvjpeg refuses) through Pillow on `workers`
    threads, with the same skipping and reporting of unreadable files."""
    scan = with_scan(samples).scan
    unusable = (2**31, 2**31)  # a scan fault: left to the Pillow path, which reports it
    sizes = [tuple(size) if fault is None else unusable for size, fault in zip(scan.sizes.tolist(), scan.faults)]
    with progress.bar(total=len(samples), desc=f"decoding {label} (nvjpeg)") as bar:
        pixels, left_over = decode_jpegs(samples.paths, spec, sizes, device)
        bar.update(len(samples) - len(left_over))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            loaded = list(pool.map(lambda row: load_row(samples, row, spec.channels, None, spec.apply), left_over))
        bar.update(len(left_over))
    keep = np.ones(len(samples), dtype=bool)
    skipped = []
    for row, result in zip(left_over, loaded):
        if isinstance(result, DataError):
            log.warning("skipping an image: %s", result)
            skipped.append((samples.origin[row], str(result)))
            keep[row] = False
        else:
            pixels[row] = result
    if not keep.any():
        raise DataError(f"none of the {len(samples)} images could be read (first: {skipped[0][1]}); check the data")
    rows = np.flatnonzero(keep)
    return ImageStore(pixels[torch.from_numpy(rows)] if len(rows) < len(samples) else pixels,
                      torch.from_numpy(samples.labels[rows].copy()), [samples.origin[i] for i in rows], skipped,
                      eval_ready)
