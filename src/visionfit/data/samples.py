"""What a data source hands to the rest of visionfit: splits of labelled samples.

A split is either a list of image files (decoded later, once, into a store) or an
in-memory uint8 array (IDX files, the embedded sample, torchvision datasets).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .scan import SampleScan

UNLABELLED = -1


@dataclass
class Samples:
    """One split. Exactly one of `paths` / `images` is set.

    labels: int64 class indices N, UNLABELLED (-1) for a test set without labels; or, for
            multi-label data, 0/1 int64 N x K (row i: which of the K classes image i has).
    images: uint8, N x H x W (grey) or N x H x W x C.
    origin: where each sample came from, for messages and prediction CSVs
            (a file path, or "name[index]" for array samples).
    scan: what data/scan.py learned about each sample (content hash, header size and
          mode, why a file is unreadable), row-aligned; None until the split is scanned.
    """

    labels: np.ndarray
    paths: list[Path] | None = None
    images: np.ndarray | None = None
    origin: list[str] = field(default_factory=list)
    scan: "SampleScan | None" = None

    def __post_init__(self):
        if (self.paths is None) == (self.images is None):
            raise ValueError("Samples needs exactly one of paths or images")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.labels) != len(self):
            raise ValueError(f"{len(self.labels)} labels for {len(self)} samples")
        if not self.origin:
            self.origin = [str(p) for p in self.paths] if self.paths is not None else [
                f"array[{i}]" for i in range(len(self))
            ]

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self.images)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels != UNLABELLED).all())

    @property
    def multi_label(self) -> bool:
        """Each image has a set of classes (labels N x K 0/1) rather than one."""
        return self.labels.ndim == 2

    def subset(self, indices: np.ndarray) -> "Samples":
        indices = np.asarray(indices, dtype=np.int64)
        return Samples(
            labels=self.labels[indices],
            paths=[self.paths[i] for i in indices] if self.paths is not None else None,
            images=self.images[indices] if self.images is not None else None,
            origin=[self.origin[i] for i in indices],
            scan=self.scan.subset(indices) if self.scan is not None else None,
        )


@dataclass
class DatasetSplits:
    """A resolved dataset: class names in index order and its splits.

    val is what the trainer reports each epoch and picks the best model on;
    test, when a source has one beside its val (e.g. a folder with train/val/test),
    is kept for `visionfit eval`.
    """

    name: str
    class_names: list[str]
    train: Samples | None
    val: Samples | None = None
    test: Samples | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def multi_label(self) -> bool:
        return any(split is not None and split.multi_label for split in (self.train, self.val, self.test))


def strata(labels: np.ndarray) -> np.ndarray:
    """One class index per image, for splitting and sampling by class: the label itself, or for
    multi-label rows the image's rarest class (so rare classes reach validation too); images
    without any class form group K."""
    if labels.ndim == 1:
        return labels
    counts = labels.sum(axis=0)
    rarity = np.where(labels > 0, counts[None, :], np.iinfo(np.int64).max)
    return np.where(labels.any(axis=1), rarity.argmin(axis=1), labels.shape[1])


def label_text(label: np.ndarray | int, class_names: list[str]) -> str:
    """A label as a person reads it: the class name, or a multi-label row's names joined by spaces."""
    if np.ndim(label) == 0:
        return class_names[int(label)]
    return " ".join(class_names[k] for k in np.flatnonzero(label))


def number_name(cell: str) -> str | None:
    """'3', '3.0' and '03' all name class '3'; None for a cell that is not a finite number."""
    try:
        value = float(cell)
    except ValueError:
        return None
    if not np.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else str(value)
