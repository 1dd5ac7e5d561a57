"""The bundled MNIST sample: what `visionfit train` uses with no --data, offline.

A class-balanced slice of the real MNIST training set plus a balanced slice of its
test set (the validation split), made by scripts/make_embedded_sample.py.
"""
from importlib import resources

import numpy as np

from .samples import DatasetSplits, Samples

ASSET = "mnist_sample.npz"
CLASS_NAMES = [str(digit) for digit in range(10)]
# The sample keeps each image's row in the original file, so messages can name it.
SOURCE_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


def load_embedded() -> DatasetSplits:
    """Train and val splits of the bundled sample as uint8 N x 28 x 28 arrays."""
    with (resources.files("visionfit") / "assets" / ASSET).open("rb") as file:
        arrays = dict(np.load(file))
    train, test = (_samples(arrays, split) for split in ("train", "test"))
    return DatasetSplits("mnist-sample", list(CLASS_NAMES), train=train, val=test)


def _samples(arrays: dict, split: str) -> Samples:
    rows = arrays[f"{split}_rows"]
    return Samples(
        labels=arrays[f"{split}_labels"],
        images=arrays[f"{split}_images"],
        origin=[f"{SOURCE_FILES[split]}[{row}]" for row in rows],
    )
