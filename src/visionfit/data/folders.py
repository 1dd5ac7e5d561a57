"""Folder sources: one subfolder per class, or train/ val/ test/ folders of those.

Classes are the subfolder names, sorted (as torchvision's ImageFolder does), so the
class-to-index mapping is the same on every machine and in every run.
"""
import os
from pathlib import Path

from ..errors import DataError
from .samples import UNLABELLED, DatasetSplits, Samples

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
# split -> folder names that mean it, first match wins; compared case-insensitively.
SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
LAYOUTS = (
    "expected one subfolder per class (root/cat/1.jpg, root/dog/2.jpg) "
    "or split folders of those (root/train/cat/1.jpg, root/val/cat/3.jpg)"
)


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, hidden files and folders skipped, sorted."""
    found = []
    # os.walk (not rglob) so hidden folders such as .ipynb_checkpoints are pruned, not entered.
    for parent, subfolders, names in os.walk(folder, followlinks=True):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [
            Path(parent, name)
            for name in names
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        ]
    return sorted(found)


def class_folders(root: Path) -> list[Path]:
    """The visible subfolders of `root`, sorted by name."""
    return sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))


def load_class_folders(root: Path, class_names: list[str] | None = None) -> tuple[list[str], Samples]:
    """Class names and samples of a folder-per-class tree.

    With `class_names` (a validation or test folder) labels index into those names and
    a folder naming another class is an error; without, the folders define the classes.
    """
    folders = class_folders(root)
    if not folders:
        raise DataError(f"{root} has no class subfolders; {LAYOUTS}")
    names = [folder.name for folder in folders] if class_names is None else list(class_names)
    index = {name: i for i, name in enumerate(names)}
    paths, labels = [], []
    for folder in folders:
        if folder.name not in index:
            raise DataError(
                f"{folder} is class '{folder.name}', which the training data does not have "
                f"(classes: {', '.join(names)}); rename or remove the folder"
            )
        files = image_files(folder)
        if not files:
            raise DataError(
                f"class folder {folder} has no images ({' '.join(sorted(IMAGE_SUFFIXES))}); "
                "add images or remove the folder"
            )
        paths += files
        labels += [index[folder.name]] * len(files)
    return names, Samples(labels=labels, paths=paths)


def load_image_folder(root: Path, class_names: list[str] | None = None) -> Samples:
    """A folder for eval or prediction: class subfolders if it has them, else its own images unlabelled."""
    if class_folders(root):
        return load_class_folders(root, class_names)[1]
    files = image_files(root)
    if not files:
        raise DataError(f"{root} has no images and no class subfolders; {LAYOUTS}")
    return Samples(labels=[UNLABELLED] * len(files), paths=files)


def split_folders(root: Path) -> dict[str, Path]:
    """split name -> its folder, for the train/val/test folders `root` has."""
    children = {path.name.lower(): path for path in class_folders(root)}
    found = {}
    for split, names in SPLIT_NAMES.items():
        match = next((children[name] for name in names if name in children), None)
        if match is not None:
            found[split] = match
    return found


def is_split_folder(root: Path) -> bool:
    return "train" in split_folders(root)


def load_split_folders(root: Path) -> DatasetSplits:
    """train/ (classes), val/ and test/ when present, labelled with train's classes."""
    splits = split_folders(root)
    names, train = load_class_folders(splits["train"])
    others = {split: load_class_folders(splits[split], names)[1] for split in ("val", "test") if split in splits}
    return DatasetSplits(root.name, names, train, others.get("val"), others.get("test"))
