"""Keep freed memory in the process on CPU runs, so every batch does not fault it in again.

glibc's malloc serves big requests (activations of a batch: hundreds of MB at 224 px) with
mmap and gives them back with munmap when they are freed. The next batch asks again, and the
kernel faults in and zeroes every page anew: 250,000 minor faults per resnet18 step at
224 px, batch 32 (benchmarks/allocator.py). With mmap off and trimming off, freed blocks stay
in the heap and the next batch reuses them: 20x fewer faults, a little more resident memory
(the peak is kept instead of returned).

    keep_freed_memory()        # once, before training on the CPU; a no-op off glibc

VISIONFIT_MALLOC=system leaves glibc's defaults alone.
"""
import ctypes
import ctypes.util
import os
import sys

OPT_OUT_VARIABLE = "VISIONFIT_MALLOC"
# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt takes an int: the largest is 2 GB of free heap top kept before any is given back.
TRIM_THRESHOLD_BYTES = 2**31 - 1

_done = False


def keep_freed_memory() -> bool:
    """Turn off glibc's mmap for big blocks and heap trimming, once per process.
    True when the settings took effect (Linux with glibc, not opted out)."""
    global _done
    if _done:
        return True
    if os.environ.get(OPT_OUT_VARIABLE, "").lower() == "system":
        return False
    libc = _glibc()
    if libc is None:
        return False
    _done = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _done


def _glibc():
    """glibc's handle, or None elsewhere (macOS, Windows, musl: their allocators differ)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return None
    return libc
