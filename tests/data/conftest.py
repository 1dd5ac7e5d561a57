"""Tiny datasets made in tmp_path: image files, class folders, CSVs and IDX files."""
import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """Save a uint8 H x W (grey) or H x W x 3 array losslessly, making parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0 0 8 ndim, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@pytest.fixture
def png():
    return write_png


@pytest.fixture
def pictures(tmp_path, png):
    """imgs/a.png .. imgs/f.png, each filled with its index."""
    for i, name in enumerate("abcdef"):
        png(tmp_path / "imgs" / f"{name}.png", np.full((3, 3), i, dtype=np.uint8))
    return tmp_path / "imgs"


@pytest.fixture
def write_idx():
    def write(path: Path, array: np.ndarray, gz: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = idx_bytes(array)
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    return write


@pytest.fixture
def class_folders():
    """make(root, {"cat": 3, "dog": 2}) -> root with cat/0.png.. whose pixels all equal a known value.

    Image i of class c (c-th in sorted order) is filled with 10 * c + i, so a test can
    tell from the pixels which file and class a sample came from. Its last pixel counts
    the calls, so folders made by two calls never hold the same image (visionfit would
    treat a validation image that training also has as a leak).
    """
    calls = itertools.count(1)

    def make(root: Path, counts: dict[str, int], size: tuple[int, int] = (6, 4)) -> Path:
        call = next(calls)
        for c, name in enumerate(sorted(counts)):
            (root / name).mkdir(parents=True, exist_ok=True)
            for i in range(counts[name]):
                pixels = np.full(size, 10 * c + i, dtype=np.uint8)
                pixels[-1, -1] = 255 - call
                write_png(root / name / f"{i}.png", pixels)
        return root

    return make


@pytest.fixture
def write_csv():
    def write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
