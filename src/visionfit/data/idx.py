"""IDX files (the MNIST format): read them, and read a folder of them as a dataset.

A folder holds train-images-idx3-ubyte and train-labels-idx1-ubyte, optionally
gzipped and optionally with t10k-* beside them (then t10k is the validation split).
Kaggle's copies spell the names with a dot (train-images.idx3-ubyte); both work.
"""
import gzip
import math
import os
import re
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError
from .samples import DatasetSplits, Samples

# IDX type byte -> element dtype; sizes and elements are big-endian.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
READ_CHUNK_BYTES = 1 << 22
IDX_NAME = re.compile(r"^(train|t10k)-(images|labels)[-.]idx[13]-ubyte(\.gz)?$", re.IGNORECASE)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one IDX file (gzipped or raw), in native byte order.

    The header is read first and then no more than the bytes it declares, so a corrupt,
    truncated or overlong file is an error naming it, never a crash.
    """
    path = Path(path)
    try:
        with _open_stream(path) as stream:
            dtype, shape = _read_header(path, stream)
            values = _read_values(path, stream, dtype, shape)
    # gzip.BadGzipFile is an OSError; a damaged deflate stream raises zlib.error, a cut one EOFError.
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path} ({error}); check the file, or download it again") from error
    return values.astype(dtype.newbyteorder("="))


def _open_stream(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped when it starts with the gzip magic bytes."""
    with open(path, "rb") as file:
        gzipped = file.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_header(path: Path, stream: BinaryIO) -> tuple[np.dtype, tuple[int, ...]]:
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number); replace it with a real IDX file")
    ndim = magic[3]
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path} ends inside its header; the file is truncated, download it again")
    return np.dtype(IDX_DTYPES[magic[2]]), tuple(int(size) for size in np.frombuffer(sizes, dtype=">u4"))


def _read_values(path: Path, stream: BinaryIO, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Exactly the values the header declares, read in chunks (memory never exceeds what is there)."""
    expected = math.prod(shape) * dtype.itemsize
    payload = bytearray()
    while len(payload) < expected:
        chunk = stream.read(min(READ_CHUNK_BYTES, expected - len(payload)))
        if not chunk:
            break
        payload += chunk
    if len(payload) < expected or stream.read(1):
        header_bytes = 4 + 4 * len(shape)
        holds = header_bytes + len(payload) if len(payload) < expected else "more"
        raise DataError(
            f"{path} should hold {header_bytes + expected} bytes for shape {shape} but holds {holds}; "
            "the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


def idx_files(folder: Path, entries: list[os.DirEntry] | None = None) -> dict[tuple[str, str], Path]:
    """(split, kind) -> file, e.g. ("train", "images"), for the IDX files in a folder.
    entries: the folder's listing (os.scandir's), when the caller has it already."""
    if entries is None:
        with os.scandir(folder) as listing:
            entries = list(listing)
    found = {}
    for entry in sorted(entries, key=lambda entry: entry.name):
        match = IDX_NAME.match(entry.name)
        if match and entry.is_file():
            found.setdefault((match[1].lower(), match[2].lower()), Path(entry.path))
    return found


def is_idx_folder(folder: Path, entries: list[os.DirEntry] | None = None) -> bool:
    return folder.is_dir() and bool(idx_files(folder, entries))


def load_idx_folder(folder: Path) -> DatasetSplits:
    """Train (and t10k as val) from a folder of IDX files; class names are the label values."""
    files = idx_files(folder)
    for kind in ("images", "labels"):
        if ("train", kind) not in files:
            raise DataError(
                f"{folder} holds IDX files but no train-{kind}-idx{3 if kind == 'images' else 1}-ubyte[.gz]; "
                "add it (the train images and labels are required)"
            )
    train_images, train_labels = _split_arrays(files, "train")
    values = np.unique(train_labels)
    train = _samples(train_images, np.searchsorted(values, train_labels), files[("train", "images")])
    val = None
    if ("t10k", "images") in files or ("t10k", "labels") in files:
        val_images, val_labels = _split_arrays(files, "t10k")
        _check_known(val_labels, values, files[("t10k", "labels")])
        val = _samples(val_images, np.searchsorted(values, val_labels), files[("t10k", "images")])
    return DatasetSplits(folder.name, [str(value) for value in values], train, val)


def _split_arrays(files: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, checked against each other."""
    missing = [kind for kind in ("images", "labels") if (split, kind) not in files]
    if missing:
        present = files[(split, "labels" if missing == ["images"] else "images")]
        raise DataError(
            f"{present} has no matching {split}-{missing[0]} file beside it; add it or remove {present.name}"
        )
    images_path, labels_path = files[(split, "images")], files[(split, "labels")]
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{images_path} holds {images.dtype} {images.shape}; images must be uint8 N x H x W")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path} holds {labels.dtype} {labels.shape}; labels must be integers, one per image")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            "they must come from the same split"
        )
    return images, labels


def _check_known(labels: np.ndarray, values: np.ndarray, path: Path) -> None:
    unknown = np.setdiff1d(labels, values)
    if len(unknown):
        raise DataError(f"{path} has label {unknown[0]}, which no training image has; fix the labels or the files")


def _samples(images: np.ndarray, labels: np.ndarray, path: Path) -> Samples:
    return Samples(labels=labels, images=images, origin=[f"{path.name}[{i}]" for i in range(len(images))])
