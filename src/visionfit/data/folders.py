"""Folder sources: one subfolder per class, or train/ val/ test/ folders of those.

Classes are the subfolder names, sorted (as torchvision's ImageFolder does), so the
class-to-index mapping is the same on every machine and in every run.
"""
import os
from collections import deque
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


class FolderWalk:
    """Lists image files, visiting each real folder and each real file once over all its calls.

    Folders are followed through links, so a link that loops (class/again -> ../class)
    or two links to one file cannot list a file twice: the first path that reaches a
    file (breadth-first, by name) is the one listed. Hidden files and folders
    (.ipynb_checkpoints) are skipped.
    """

    def __init__(self, claimed: tuple[Path, ...] = ()):
        # Real paths of folders already walked, or `claimed` (walked under their own names).
        self.seen_folders = {os.path.realpath(folder) for folder in claimed}
        self.seen_files: set[str] = set()
        self.repeats = 0  # image files not listed again because another path already reached them

    def image_files(self, folder: Path, entries: list[os.DirEntry] | None = None) -> list[Path]:
        """Image files under `folder`, recursively, sorted; `entries`: the folder's own, when the
        caller has listed it already (visible_entries), so it is not listed again."""
        found = []
        pending = deque([(Path(folder), os.path.realpath(folder), entries)])
        self.seen_folders.add(pending[0][1])
        while pending:
            current, real_current, listed = pending.popleft()
            for entry in visible_entries(current) if listed is None else listed:
                # Only links need resolving; a plain entry's real path is its folder's plus its name.
                real = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real_current, entry.name)
                if _is_folder(entry):
                    if real not in self.seen_folders:
                        self.seen_folders.add(real)
                        pending.append((Path(entry.path), real, None))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:  # no Path per file: 2x faster
                    self._list_file(Path(entry.path), real, found)
        return sorted(found)

    def _list_file(self, path: Path, real: str, found: list[Path]) -> None:
        if real in self.seen_files:
            self.repeats += 1
        else:
            self.seen_files.add(real)
            found.append(path)


def visible_entries(folder: Path) -> list[os.DirEntry]:
    """The visible entries of `folder`, by name: one listing (os.scandir: no stat per file on
    most file systems) that the functions here take instead of listing the folder again."""
    try:
        with os.scandir(folder) as entries:
            return sorted((entry for entry in entries if not entry.name.startswith(".")), key=lambda e: e.name)
    except OSError as error:
        reason = error.strerror or error
        raise DataError(f"cannot list folder {folder} ({reason}); check that it is readable") from error


def _is_folder(entry: os.DirEntry) -> bool:
    """A folder, or a link to one; False for a link that loops onto itself or leads nowhere
    (such an entry named like an image is listed, and reported unreadable when read)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def image_files(folder: Path, entries: list[os.DirEntry] | None = None) -> list[Path]:
    """Image files under `folder`, recursively, each real file once, hidden ones skipped, sorted.
    entries: the folder's visible_entries, when already listed."""
    return FolderWalk().image_files(folder, entries)


def class_folders(root: Path, entries: list[os.DirEntry] | None = None) -> list[Path]:
    """The visible subfolders of `root`, sorted by name; `entries`: root's visible_entries, when already listed."""
    return [Path(entry.path) for entry in (visible_entries(root) if entries is None else entries) if _is_folder(entry)]


def load_class_folders(root: Path, class_names: list[str] | None = None,
                       entries: list[os.DirEntry] | None = None) -> tuple[list[str], Samples]:
    """Class names and samples of a folder-per-class tree.

    With `class_names` (a validation or test folder) labels index into those names and
    a folder naming another class is an error; without, the folders define the classes.
    A file reached from two class folders (through links) belongs to the first class.
    entries: root's visible_entries, when already listed.
    """
    folders = class_folders(root, entries)
    if not folders:
        raise DataError(f"{root} has no class subfolders; {LAYOUTS}")
    names = [folder.name for folder in folders] if class_names is None else list(class_names)
    index = {name: i for i, name in enumerate(names)}
    # Links from one class into another (or up to the root) must not pull its images in again.
    walk = FolderWalk(claimed=(root, *folders))
    paths, labels = [], []
    for folder in folders:
        if folder.name not in index:
            raise DataError(
                f"{folder} is class '{folder.name}', which the training data does not have "
                f"(classes: {', '.join(names)}); rename or remove the folder"
            )
        repeats = walk.repeats
        files = walk.image_files(folder)
        if not files:
            raise DataError(_empty_class_message(folder, linked_only=walk.repeats > repeats))
        paths += files
        labels += [index[folder.name]] * len(files)
    return names, Samples(labels=labels, paths=paths)


def _empty_class_message(folder: Path, linked_only: bool) -> str:
    if linked_only:
        return (f"class folder {folder} holds only links to images another class folder already has; "
                "remove the links or the folder")
    return (f"class folder {folder} has no images ({' '.join(sorted(IMAGE_SUFFIXES))}); "
            "add images or remove the folder")


def load_image_folder(root: Path, class_names: list[str] | None = None) -> Samples:
    """A folder for eval or prediction: class subfolders if it has them, else its own images unlabelled."""
    entries = visible_entries(root)  # listed once, for both questions
    if class_folders(root, entries):
        return load_class_folders(root, class_names, entries)[1]
    files = image_files(root, entries)
    if not files:
        raise DataError(f"{root} has no images and no class subfolders; {LAYOUTS}")
    return Samples(labels=[UNLABELLED] * len(files), paths=files)


def split_folders(root: Path, entries: list[os.DirEntry] | None = None) -> dict[str, Path]:
    """split name -> its folder, for the train/val/test folders `root` has (entries: root's, when listed)."""
    children = {path.name.lower(): path for path in class_folders(root, entries)}
    found = {}
    for split, names in SPLIT_NAMES.items():
        match = next((children[name] for name in names if name in children), None)
        if match is not None:
            found[split] = match
    return found


def is_split_folder(root: Path, entries: list[os.DirEntry] | None = None) -> bool:
    return "train" in split_folders(root, entries)


def load_split_folders(root: Path) -> DatasetSplits:
    """train/ (classes), val/ and test/ when present, labelled with train's classes."""
    splits = split_folders(root)
    names, train = load_class_folders(splits["train"])
    others = {split: load_class_folders(splits[split], names)[1] for split in ("val", "test") if split in splits}
    return DatasetSplits(root.name, names, train, others.get("val"), others.get("test"))
