"""Named datasets (mnist, fashion-mnist, cifar10), downloaded once with torchvision.

Each comes back as in-memory uint8 arrays with the dataset's own class names;
its official test split is the validation split.
"""
import re
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..registry import Registry
from .samples import DatasetSplits, Samples

DEFAULT_DOWNLOAD_DIR = "~/.cache/visionfit/datasets"

NAMED_DATASETS = Registry("dataset", error=DataError)


@NAMED_DATASETS.register("mnist")
def mnist(root: Path) -> DatasetSplits:
    return _from_torchvision("MNIST", "mnist", root)


@NAMED_DATASETS.register("fashion-mnist")
def fashion_mnist(root: Path) -> DatasetSplits:
    return _from_torchvision("FashionMNIST", "fashion-mnist", root)


@NAMED_DATASETS.register("cifar10")
def cifar10(root: Path) -> DatasetSplits:
    return _from_torchvision("CIFAR10", "cifar10", root)


def named_key(text: str) -> str | None:
    """The registered name `text` means ('Fashion_MNIST' -> 'fashion-mnist'), or None."""
    squashed = _squash(text)
    return next((name for name in NAMED_DATASETS if _squash(name) == squashed), None)


def _squash(text: str) -> str:
    return re.sub(r"[-_ ]", "", text.lower())


def load_named(name: str, download_dir: str | Path | None = None) -> DatasetSplits:
    """Train and test of a named dataset, downloading into download_dir when missing."""
    factory = NAMED_DATASETS.get(named_key(name) or name)
    return factory(Path(download_dir or DEFAULT_DOWNLOAD_DIR).expanduser())


def _from_torchvision(class_name: str, name: str, root: Path) -> DatasetSplits:
    from torchvision import datasets  # imported when a named dataset is asked for: it takes a second

    dataset_class = getattr(datasets, class_name)
    train, test = (_download(dataset_class, name, root, train) for train in (True, False))
    return DatasetSplits(name, list(train.classes), _samples(train, f"{name}-train"), _samples(test, f"{name}-test"))


def _download(dataset_class: type, name: str, root: Path, train: bool):
    try:
        return dataset_class(root=str(root), train=train, download=True)
    # torchvision raises RuntimeError when every mirror failed, URLError (an OSError) otherwise.
    except (RuntimeError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"could not download {name} into {root} ({reason}); this machine needs internet access, "
            f"or place torchvision's {name} files there (--download-dir picks another folder)"
        ) from error


def _samples(dataset, prefix: str) -> Samples:
    """uint8 N x H x W (or N x H x W x 3) images and int64 labels of a torchvision dataset."""
    images = np.asarray(dataset.data, dtype=np.uint8)
    labels = np.asarray(dataset.targets, dtype=np.int64)
    return Samples(labels=labels, images=images, origin=[f"{prefix}[{i}]" for i in range(len(images))])
