"""Decode every image once and keep the decoded uint8 pixels in RAM.

Decoding a JPEG costs far more than augmenting it, so a store pays that cost once
per run instead of once per epoch. uint8 keeps it 4x smaller than float.
"""
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import progress
from ..errors import DataError
from .decode import load_image, match_channels
from .samples import Samples

log = logging.getLogger(__name__)

Prepare = Callable[[np.ndarray], np.ndarray]  # H x W x C uint8 -> the uint8 image to store
STATS_CHUNK = 64  # images summed at once by channel_stats, to bound its int64 scratch memory
LAZY_STATS_LIMIT = 500  # images decoded for statistics when nothing is cached


@dataclass
class ImageStore:
    """Decoded images with their labels, in the order of the source's samples.

    images: one uint8 N x C x H x W tensor when every image has the same size,
            else a list of uint8 C x H x W tensors (resized to a common size later).
    labels: int64, N.  origin: where each image came from.
    skipped: (origin, reason) of every image that failed to decode and was left out.
    eval_ready: the images went through the eval preprocessing; evaluation batches are used as they are.
    """

    images: torch.Tensor | list[torch.Tensor]
    labels: torch.Tensor
    origin: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    eval_ready: bool = False  # images already went through the preset's eval pipeline
    from_disk_cache: bool = False  # read from data/disk_cache.py's entry, not decoded by this run
    cache_entry: Path | None = None  # that entry's folder, when the store has one (hit or written)

    @property
    def uniform(self) -> bool:
        return isinstance(self.images, torch.Tensor)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) shared by every image, or None for a ragged store."""
        return tuple(self.images.shape[1:]) if self.uniform else None

    def __len__(self) -> int:
        return len(self.labels)


def build_store(samples: Samples, channels: int, max_side: int | None = None, workers: int | None = None,
                prepare: Prepare | None = None, eval_ready: bool = False, label: str = "images") -> ImageStore:
    """Decode `samples` into a store with `channels` (1 or 3) channels per image.

    File samples are decoded on `workers` threads (default: one per core, at most 8; 0 means 1),
    shrunk so the shorter side is at most max_side; files that fail are logged,
    recorded in `skipped` and left out. Array samples are kept at their own size.
    `prepare`, when given, maps each decoded H x W x C uint8 image to the one stored
    (the eval preprocessing, or a resize to a common size); `eval_ready` marks the result.
    `label` names the split on the progress bar ("decoding train").
    """
    with progress.bar(total=len(samples), desc=f"decoding {label}") as bar:
        if samples.images is not None:
            return _array_store(samples, channels, prepare, eval_ready, bar)
        threads = min(8, os.cpu_count() or 1) if workers is None else max(1, workers)
        return _file_store(samples, channels, max_side, threads, prepare, eval_ready, bar)


class LazyImages:
    """Image files decoded on access, for `--cache none`: datasets too big to keep in RAM.

    Indexing decodes (and shrinks) one file; a file that fails raises DataError, which
    the loader turns into a skipped sample.
    """

    def __init__(self, paths, channels: int, max_side: int | None, prepare: Prepare | None = None):
        self.paths, self.channels, self.max_side, self.prepare = list(paths), channels, max_side, prepare

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return _decoded(self.paths[index], self.channels, self.max_side, self.prepare)


def lazy_store(samples: Samples, channels: int, max_side: int | None = None, prepare: Prepare | None = None,
               eval_ready: bool = False) -> ImageStore:
    """A store that decodes from disk every time (array samples are small: kept in RAM)."""
    if samples.images is not None:
        return _array_store(samples, channels, prepare, eval_ready)
    images = LazyImages(samples.paths, channels, max_side, prepare)
    return ImageStore(images, torch.from_numpy(samples.labels.copy()), list(samples.origin), eval_ready=eval_ready)


def _array_store(samples: Samples, channels: int, prepare: Prepare | None, eval_ready: bool, bar=None) -> ImageStore:
    images_nhwc = samples.images if samples.images.ndim == 4 else samples.images[..., None]
    pixels_nhwc = match_channels(images_nhwc, channels)
    if prepare is not None:
        pixels_nhwc = np.stack([prepare(image) for image in progress.counted(pixels_nhwc, bar)])
    images = torch.from_numpy(np.ascontiguousarray(pixels_nhwc.transpose(0, 3, 1, 2)))
    return ImageStore(images, torch.from_numpy(samples.labels.copy()), list(samples.origin), eval_ready=eval_ready)


def _file_store(samples: Samples, channels: int, max_side: int | None, workers: int, prepare: Prepare | None,
                eval_ready: bool, bar) -> ImageStore:
    # Threads, not processes: PIL releases the GIL while decoding and resizing,
    # and threads hand back arrays without pickling them.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = pool.map(lambda row: load_row(samples, row, channels, max_side, prepare), range(len(samples)))
        results = list(progress.counted(decoded, bar))
    kept, tensors, skipped = [], [], []
    for index, result in enumerate(results):
        if isinstance(result, DataError):
            log.warning("skipping an image: %s", result)
            skipped.append((samples.origin[index], str(result)))
        else:
            kept.append(index)
            tensors.append(result)
    if not kept:
        first = skipped[0][1] if skipped else "there are no images"
        raise DataError(f"none of the {len(samples)} images could be read (first: {first}); check the data")
    labels = torch.from_numpy(samples.labels[kept].copy())
    return ImageStore(_stack_if_uniform(tensors), labels, [samples.origin[i] for i in kept], skipped, eval_ready)


def load_row(samples: Samples, row: int, channels: int, max_side: int | None, prepare: Prepare | None) -> torch.Tensor | DataError:
    """The image of one row, or why it cannot be used: the scan's finding when it already
    found the file unusable (no second attempt), else the decoder's."""
    fault = samples.scan.faults[row] if samples.scan is not None else None
    if fault is not None:
        return DataError(f"cannot read image {samples.paths[row]} ({fault[1]}); remove or replace the file")
    return _try_load(samples.paths[row], channels, max_side, prepare)


def _try_load(path, channels: int, max_side: int | None, prepare: Prepare | None) -> torch.Tensor | DataError:
    """The image as a C x H x W uint8 tensor, or the error that says why it cannot be read."""
    try:
        return _decoded(path, channels, max_side, prepare)
    except DataError as error:
        return error


def _decoded(path, channels: int, max_side: int | None, prepare: Prepare | None) -> torch.Tensor:
    pixels = load_image(path, channels, max_side)
    if prepare is not None:
        pixels = prepare(pixels)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


def _stack_if_uniform(tensors: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """One N x C x H x W tensor when all shapes agree, else the list itself.

    Copies image by image and drops each from the list, so peak memory stays near
    one copy of the data rather than the two torch.stack would hold.
    """
    shape = tensors[0].shape
    if any(tensor.shape != shape for tensor in tensors):
        return tensors
    stacked = torch.empty((len(tensors), *shape), dtype=torch.uint8)
    for index in range(len(tensors)):
        stacked[index] = tensors[index]
        tensors[index] = None
    return stacked


def channel_stats(store: ImageStore, limit: int = 10000, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0..1 scale, over up to `limit` images: the normalisation default.

    Every image weighs the same, whatever its size (one huge photo must not set the
    statistics of a set of small ones): each image's channel mean and mean of squares
    come from exact sums, and those are averaged over a seeded sample of images.
    """
    if isinstance(store.images, LazyImages):
        limit = min(limit, LAZY_STATS_LIMIT)
    count = min(limit, len(store))
    picks = np.sort(np.random.default_rng(seed).choice(len(store), count, replace=False))
    channels = store.images[0].shape[0]
    means, mean_squares = torch.zeros(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
    images = 0
    for chunk in _chunks(store, picks):
        pixels = chunk.shape[2] * chunk.shape[3]
        # Exact: float64 sums of whole numbers below 2**53, float32 squares of 0..255 below 2**24
        # (1.6x faster than widening the chunk to int64 twice).
        means += (chunk.sum(dim=(2, 3), dtype=torch.float64) / pixels).sum(dim=0)
        mean_squares += (chunk.to(torch.float32).square().sum(dim=(2, 3), dtype=torch.float64) / pixels).sum(dim=0)
        images += len(chunk)
    mean = means / images
    std = (mean_squares / images - mean * mean).clamp_min(0).sqrt()
    return (mean / 255).tolist(), (std / 255).tolist()


def _chunks(store: ImageStore, picks: np.ndarray):
    """N x C x H x W uint8 batches of the picked images (one image at a time when ragged)."""
    if not store.uniform:
        for i in picks:
            try:
                yield store.images[i][None]
            except DataError:
                continue  # an unreadable file: the loader skips it too
        return
    for start in range(0, len(picks), STATS_CHUNK):
        yield store.images[torch.from_numpy(picks[start : start + STATS_CHUNK])]
