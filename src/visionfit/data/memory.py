"""Will the decoded images fit in RAM? Asked before anything is decoded.

    require_store_memory(estimate_store_bytes(splits, plan, cache="ram"))

A store keeps every image as uint8 at its stored size: the training split at the plan's
storage size (small images at their common shape, photos with the shorter side shrunk to
`store_side`), validation and test images at the eval size. The scan already read every
header, so the estimate is exact to the pixel, not a guess from the first image. A run
whose stores would not fit stops before decoding, with one line that says how much is
needed, how much is free, and what to change, instead of swapping or being killed by the
kernel an hour later.
"""
import os

import numpy as np

from ..errors import DataError
from .samples import Samples
from .scan import with_scan

# Keep a quarter of the free memory for everything else a run allocates: the model, its
# optimizer state, batches in flight, loader workers and the rest of the machine.
USABLE_FRACTION = 0.75


def estimate_store_bytes(splits, plan, cache: str) -> int:
    """Bytes the decoded stores of `splits` will take in RAM under `plan` (0 with --cache none
    for image files, which are then decoded from disk each time)."""
    total = 0
    for samples, eval_view in ((splits.train, False), (splits.val, True), (splits.test, True)):
        if samples is None or not len(samples) or (cache == "none" and samples.paths is not None):
            continue
        if eval_view:
            total += len(samples) * plan.channels * plan.size * plan.size
        elif plan.small:
            height, width = plan.store_shape
            total += len(samples) * plan.channels * height * width
        else:
            total += plan.channels * int(stored_pixels(samples, plan.store_side).sum())
    return total


def stored_pixels(samples: Samples, max_side: int) -> np.ndarray:
    """Pixels per image once its shorter side is shrunk to at most `max_side` (decode.py's rule),
    from the header sizes the scan read; 0 for an unreadable file. Array images are stored as
    they are (they are in RAM already)."""
    if samples.images is not None:
        height, width = samples.images.shape[1:3]
        return np.full(len(samples), height * width, dtype=np.float64)
    sizes = with_scan(samples).scan.sizes
    shorter = sizes.min(axis=1).astype(np.float64)
    scale = np.minimum(1.0, max_side / np.maximum(shorter, 1))
    return np.round(sizes[:, 0] * scale) * np.round(sizes[:, 1] * scale)


def available_memory_bytes() -> int | None:
    """Memory the system can give this process without swapping (Linux's MemAvailable), or
    the free physical pages where /proc/meminfo is missing; None when neither is known."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_store_memory(needed_bytes: int, what: str = "the decoded images") -> None:
    """Stop before decoding when `needed_bytes` (per process; every torchrun process on this
    machine keeps its own stores) would not fit in the usable free memory."""
    available = available_memory_bytes()
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    needed = needed_bytes * processes
    if available is None or needed <= available * USABLE_FRACTION:
        return
    each = f" ({processes} processes x {gib(needed_bytes)})" if processes > 1 else ""
    raise DataError(f"{what} need about {gib(needed)}{each} of RAM (uint8, as stored for training and "
                    f"validation), but only {gib(available)} is available; use --cache none to decode from "
                    f"disk each epoch, or a smaller --image-size")


def gib(count: float) -> str:
    """Bytes in GiB (or MiB below one GiB), one decimal: '14.2 GiB', '730.5 MiB'."""
    if count >= 2**30:
        return f"{count / 2**30:.1f} GiB"
    return f"{count / 2**20:.1f} MiB"
