"""Where the tests find the full MNIST (60,000 training and 10,000 test digits), on any machine.

    folder = real_mnist.folder(download=True)    # or the test is skipped, saying where it looked
    images = read_idx(real_mnist.file(folder, "t10k", "images"))

Looked for, in order: the folder named by $VISIONFIT_MNIST; ../shared/datasets/mnist beside
the repository (this project's dev machines and CI); torchvision's download in visionfit's
named-dataset cache (~/.cache/visionfit/datasets/MNIST/raw); and, with download=True, a
download into that cache through visionfit's own loader when the network allows.
"""
import os
from pathlib import Path

import pytest

from visionfit.data.idx import idx_files

ENV = "VISIONFIT_MNIST"
BESIDE_REPO = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"
FILES = [(split, kind) for split in ("train", "t10k") for kind in ("images", "labels")]


def folder(download: bool = False) -> Path:
    """A folder holding the four MNIST IDX files (.gz or not); skips the test when there is none."""
    named = os.environ.get(ENV)
    if named:
        if not _complete(Path(named)):
            pytest.fail(f"{ENV}={named} does not hold the four MNIST IDX files (train-/t10k- images and labels)")
        return Path(named)
    cache = _cache_folder()
    for candidate in (BESIDE_REPO, cache):
        if _complete(candidate):
            return candidate
    looked = f"${ENV} unset, no {BESIDE_REPO}, no {cache}"
    if not download:
        pytest.skip(f"full MNIST not found ({looked}); set {ENV} or run the slow tests once to download it")
    return _download(cache, looked)


def file(folder: Path, split: str, kind: str) -> Path:
    """The IDX file of `split` ("train" or "t10k") and `kind` ("images" or "labels") in `folder`."""
    return idx_files(folder)[(split, kind)]


def _complete(candidate: Path) -> bool:
    return candidate.is_dir() and all(key in idx_files(candidate) for key in FILES)


def _cache_folder() -> Path:
    """Where torchvision's MNIST download leaves the IDX files (the .gz and their unpacked copies)."""
    from visionfit.data.named import DEFAULT_DOWNLOAD_DIR

    return Path(DEFAULT_DOWNLOAD_DIR).expanduser() / "MNIST" / "raw"


def _download(cache: Path, looked: str) -> Path:
    from visionfit.data.named import load_named
    from visionfit.errors import DataError

    try:
        load_named("mnist")
    except DataError as error:
        pytest.skip(f"full MNIST not found ({looked}) and not downloadable: {error}")
    if not _complete(cache):
        pytest.fail(f"MNIST downloaded, but its IDX files are not in {cache}: has torchvision's layout changed?")
    return cache
