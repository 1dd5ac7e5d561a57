"""Will the decoded images fit in RAM? Asked before anything is decoded.

    cache, note = settle_cache(data_cfg.cache, splits, plan)   # "ram" or "none", and why

A store keeps every image as uint8 at its stored size: the training split as the plan
stores it (small images at their common shape, photos as presize x presize squares or as
their eval view, or with --presize 0 whole, the shorter side shrunk to `store_side`),
validation and test images at the eval size. The scan already read every header, so the
estimate is exact to the pixel, not a guess from the first image. When the stores would not
fit, a run that did not ask for --cache ram decodes from disk each epoch instead (and says
so); one that asked stops before decoding, with one line that says how much is needed, how
much is free, and what to change, instead of swapping or being killed by the kernel an hour later.
"""
import os

import numpy as np

from ..errors import DataError
from .samples import Samples
from .scan import with_scan

# Keep a quarter of the free memory for everything else a run allocates: the model, its
# optimizer state, batches in flight, loader workers and the rest of the machine.
USABLE_FRACTION = 0.75


def settle_cache(cache: str | None, splits, plan) -> tuple[str, str | None]:
    """The cache the run uses ("ram" or "none") and a note when it is not the one asked for.

    None (the default) keeps the decoded images in RAM when they fit, else decodes image files
    from disk each epoch, as --cache none does; --cache ram insists, and stops when they do not
    fit (as does data that is in RAM anyway: arrays, which decoding from disk would not shrink).
    """
    needed = estimate_store_bytes(splits, plan, cache or "ram")
    if cache is not None or _fits(needed) or not _fits(estimate_store_bytes(splits, plan, "none")):
        require_store_memory(needed)
        return cache or "ram", None
    return "none", (f"images decoded from disk each epoch, per image (as --cache none): kept in RAM they would need "
                    f"about {gib(needed * _processes())} and {gib(available_memory_bytes())} is available; a smaller "
                    f"--presize or --image-size would fit")


def estimate_store_bytes(splits, plan, cache: str) -> int:
    """Bytes the decoded stores of `splits` will take in RAM under `plan` (0 with --cache none
    for image files, which are then decoded from disk each time)."""
    total = 0
    for samples, eval_view in ((splits.train, plan.trains_on_eval_view), (splits.val, True), (splits.test, True)):
        if samples is None or not len(samples) or (cache == "none" and samples.paths is not None):
            continue
        if eval_view:
            total += stored_count(samples) * plan.channels * plan.size * plan.size
        elif plan.small:
            height, width = plan.store_shape
            total += stored_count(samples) * plan.channels * height * width
        elif plan.presize:
            total += stored_count(samples) * plan.channels * plan.presize * plan.presize
        else:
            total += plan.channels * int(stored_pixels(samples, plan.store_side).sum())
    return total


def stored_count(samples: Samples) -> int:
    """Images a store keeps: every array image, every file the scan could read (the rest are skipped)."""
    if samples.images is not None:
        return len(samples)
    return sum(fault is None for fault in with_scan(samples).scan.faults)


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
    if _fits(needed_bytes):
        return
    processes, available = _processes(), available_memory_bytes()
    each = f" ({processes} processes x {gib(needed_bytes)})" if processes > 1 else ""
    raise DataError(f"{what} need about {gib(needed_bytes * processes)}{each} of RAM (uint8, as stored for training "
                    f"and validation), but only {gib(available)} is available; use --cache none to decode from "
                    f"disk each epoch, or a smaller --image-size")


def _fits(needed_bytes: int) -> bool:
    """Whether every local process's `needed_bytes` fit in the usable free memory (True when unknown)."""
    available = available_memory_bytes()
    return available is None or needed_bytes * _processes() <= available * USABLE_FRACTION


def _processes() -> int:
    """Processes of this run on this machine (torchrun's LOCAL_WORLD_SIZE), each with its own stores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)


def gib(count: float) -> str:
    """Bytes in GiB (or MiB below one GiB), one decimal: '14.2 GiB', '730.5 MiB'."""
    if count >= 2**30:
        return f"{count / 2**30:.1f} GiB"
    return f"{count / 2**20:.1f} MiB"
