"""The scan before training: what each image is, learned cheaply, before anything is decoded.

    scanned = with_scan(samples)          # headers (PIL opens lazily) + a content hash, on threads
    scanned.scan.sizes                    # N x 2 (width, height) per image, from the headers
    duplicate_groups(scanned.scan.keys)   # rows of identical content

Training uses it to keep identical images on one side of the split, to leave validation
images that are also training images out of validation, and to skip unreadable files
without decoding them; `visionfit check-data` scans with decode_fully=True (every file
decoded) and tabulates the findings (data/check.py).
"""
import dataclasses
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import progress
from .decode import DECODE_ERRORS, decode, open_image
from .samples import Samples

DIGEST_BYTES = 16  # blake2b digest size: collisions are out of reach at any dataset size
# Why a file cannot be used, as the check-data table names it.
UNREADABLE, ZERO_BYTES, NOT_AN_IMAGE, BOMB, CORRUPT = FAULT_KINDS = (
    "unreadable files", "zero-byte files", "non-image files", "decompression bombs", "truncated or corrupt images")


@dataclass
class SampleScan:
    """What the scan learned about each sample of a split, in the split's row order.

    keys: blake2b digest of each file's bytes (of each array image's pixels); equal keys mean
          identical content. None for a file that cannot be used.
    sizes: int64 N x 2, (width, height) as each image's header states it (before EXIF
          rotation; (0, 0) when unreadable). The training split's sizes let the preprocessing
          follow the data's majority, so one odd-sized image does not choose the recipe for all.
    modes: PIL mode of each image ("L", "RGB", "P", ...; "" when unreadable).
    faults: None for a usable image, else (kind, reason) with kind one of FAULT_KINDS.
    """

    keys: list[bytes | None]
    sizes: np.ndarray
    modes: list[str]
    faults: list[tuple[str, str] | None]

    def subset(self, rows) -> "SampleScan":
        return SampleScan([self.keys[i] for i in rows], self.sizes[np.asarray(rows, dtype=np.int64)],
                          [self.modes[i] for i in rows], [self.faults[i] for i in rows])


def with_scan(samples: Samples, decode_fully: bool = False, workers: int | None = None) -> Samples:
    """`samples` with its scan attached (the same object when it already has one).

    decode_fully also decodes every file, finding truncated ones (check-data's thorough
    pass); without, only headers are read, and the store finds those when it decodes.
    """
    if samples.scan is not None:
        return samples
    return dataclasses.replace(samples, scan=scan_samples(samples, decode_fully, workers))


def scan_samples(samples: Samples, decode_fully: bool = False, workers: int | None = None) -> SampleScan:
    """Hash, size and mode of every sample; see with_scan."""
    if samples.images is not None:
        return _scan_arrays(samples.images)
    threads = workers or min(8, os.cpu_count() or 1)
    # Threads, not processes: hashing and file reads release the GIL, and results need no pickling.
    with ThreadPoolExecutor(max_workers=threads) as pool, progress.bar(len(samples), "scanning") as bar:
        facts = list(progress.counted(pool.map(lambda path: _scan_file(path, decode_fully), samples.paths), bar))
    keys, sizes, modes, faults = zip(*facts) if facts else ((), (), (), ())
    return SampleScan(list(keys), np.array(sizes, dtype=np.int64).reshape(-1, 2), list(modes), list(faults))


def _scan_arrays(images: np.ndarray) -> SampleScan:
    """Array samples (IDX, named datasets): all readable, one size; the hash is of the pixels."""
    count, height, width = images.shape[:3]
    channels = 1 if images.ndim == 3 else images.shape[3]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels} channels")
    flat = np.ascontiguousarray(images).reshape(count, -1)
    keys = [hashlib.blake2b(row, digest_size=DIGEST_BYTES).digest() for row in flat]
    return SampleScan(keys, np.tile(np.array([width, height], dtype=np.int64), (count, 1)), [mode] * count,
                      [None] * count)


def _scan_file(path: Path, decode_fully: bool) -> tuple:
    """(key, (width, height), mode, fault) of one file."""
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        return _unusable(UNREADABLE, f"cannot read the file ({error.strerror or error})")
    if not content:
        return _unusable(ZERO_BYTES, "the file is empty (0 bytes)")
    try:
        with open_image(io.BytesIO(content)) as image:
            size, mode = image.size, image.mode
    except Image.DecompressionBombError as error:
        return _unusable(BOMB, f"more pixels than Pillow decodes safely ({error})")
    except UnidentifiedImageError:  # its message names the in-memory copy, not the file
        return _unusable(NOT_AN_IMAGE, "not in any image format Pillow reads")
    except DECODE_ERRORS as error:
        return _unusable(NOT_AN_IMAGE, f"not an image Pillow can read ({error})")
    fault = _decoding_fault(content) if decode_fully else None
    return None if fault else _digest(content), size, mode, fault


def _decoding_fault(content: bytes) -> tuple[str, str] | None:
    """Why decoding the whole file fails (truncated, corrupt), or None when it decodes."""
    try:
        with open_image(io.BytesIO(content)) as image:
            decode(image)
    except DECODE_ERRORS as error:
        return CORRUPT, f"cannot be decoded ({error})"
    return None


def _unusable(kind: str, reason: str) -> tuple:
    return None, (0, 0), "", (kind, reason)


def _digest(content: bytes) -> bytes:
    return hashlib.blake2b(content, digest_size=DIGEST_BYTES).digest()


def group_ids(keys: list[bytes | None]) -> np.ndarray:
    """One id per row, shared by rows of identical content (the first such row); an
    unusable row is its own group."""
    first_row = {}
    return np.array([row if key is None else first_row.setdefault(key, row) for row, key in enumerate(keys)],
                    dtype=np.int64)


def duplicate_groups(keys: list[bytes | None]) -> list[list[int]]:
    """Rows of identical content, one list per content seen more than once, each in row order."""
    ids = group_ids(keys)
    # Arrays, not a dict of lists: 60,000 small lists would keep the garbage collector busy.
    rows = np.flatnonzero(np.bincount(ids, minlength=len(ids))[ids] > 1)
    rows = rows[np.argsort(ids[rows], kind="stable")]
    starts = np.flatnonzero(np.diff(ids[rows], prepend=-1))
    return [part.tolist() for part in np.split(rows, starts[1:])] if len(rows) else []


def leaked_rows(train_keys: list[bytes | None], held_out_keys: list[bytes | None]) -> np.ndarray:
    """Rows of a held-out split whose content is also in training."""
    seen = set(train_keys) - {None}
    return np.array([row for row, key in enumerate(held_out_keys) if key in seen], dtype=np.int64)


def label_conflicts(groups: list[list[int]], labels: np.ndarray) -> list[tuple[int, int]]:
    """For each duplicate group whose rows carry more than one label: its first row and the
    first row labelled otherwise."""
    conflicts = []
    for rows in groups:
        others = [row for row in rows[1:] if np.any(labels[row] != labels[rows[0]])]  # multi-label: any tag
        if others:
            conflicts.append((rows[0], others[0]))
    return conflicts
