"""Turn --data (and --val-data / --val-split) into DatasetSplits that are safe to train on.

    resolve(None)                          # the bundled MNIST sample
    resolve("fashion-mnist")               # torchvision download, test split as val
    resolve("train.csv", images="images/") # CSV of image,label rows, 20% held out
    resolve("hymenoptera/")                # train/ + val/ folders of class folders

The class-to-index mapping decided here is the one saved with a run, so every
source orders classes deterministically (sorted names, or the dataset's own order).
Every split is scanned first (data/scan.py), so no image is in both training and
validation and a dataset that cannot train a classifier is refused before any decoding.
"""
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .embedded import load_embedded
from .folders import class_folders, is_split_folder, load_class_folders, load_image_folder, load_split_folders
from .idx import is_idx_folder, load_idx_folder
from .named import NAMED_DATASETS, load_named, named_key
from .samples import DatasetSplits, Samples
from .table import load_csv
from .validation import refuse_conflicting_validation, refuse_single_class, settle_validation

DEFAULT_VAL_SPLIT = 0.2
ACCEPTED_FORMS = (
    "--data takes: nothing (the bundled MNIST sample); "
    f"a dataset name ({', '.join(NAMED_DATASETS.names())}); a CSV file of image,label rows; "
    "a folder of IDX files (train-images-idx3-ubyte[.gz] ...); a folder with train/ and val/ class folders; "
    "or a folder with one subfolder of images per class"
)


def resolve(
    data: str | Path | None,
    images: str | None = None,
    val_data: str | None = None,
    val_split: float | None = None,
    seed: int = 0,
    download_dir: str | None = None,
    label_column: str | None = None,
    image_column: str | None = None,
    multi_label: bool | None = None,
) -> DatasetSplits:
    """The dataset --data names, with its validation split settled and made leak-free.

    Validation comes from exactly one place: the source's own (t10k, val/, a test
    split), --val-data, or a stratified, seeded hold-out of val_split of train
    (0.2 when the source has none and val_split is None; 0 means no validation).
    `images` is the root for relative paths in CSVs, --val-data's included;
    label_column / image_column name a CSV's columns (--val-data's too); multi_label says how
    to read them (see data/tags.py; None decides from the CSV).
    """
    refuse_same_data(data, val_data)
    check_val_split(val_split)
    splits = load_source(data, images, download_dir, label_column, image_column, multi_label=multi_label)
    refuse_conflicting_validation(splits, val_data, val_split)
    if splits.train is None:
        return splits
    refuse_single_class(splits)
    given_val = None if val_data is None else _labelled_split(val_data, images, splits.class_names, label_column,
                                                              image_column, splits.multi_label)
    fraction = DEFAULT_VAL_SPLIT if val_split is None else val_split
    return settle_validation(splits, seed, fraction, given_val, f"--val-data {val_data}")


def refuse_same_data(data, val_data) -> None:
    """--val-data naming the very file or folder --data names is refused before any work."""
    if data is None or val_data is None or isinstance(data, DatasetSplits):
        return
    train_path, val_path = Path(data).expanduser(), Path(val_data).expanduser()
    if train_path.exists() and os.path.realpath(train_path) == os.path.realpath(val_path):
        raise ConfigError(
            f"--val-data {val_data} is --data {data} itself, so validation would only repeat training images; "
            "give other images, or hold some out with --val-split 0.2"
        )


def check_val_split(val_split: float | None) -> None:
    if val_split is not None and not 0 <= val_split < 1:
        raise ConfigError(f"--val-split {val_split} must be in [0, 1), e.g. 0.2")


def load_source(data: str | Path | None, images: str | None = None, download_dir: str | None = None,
                label_column: str | None = None, image_column: str | None = None,
                bad_rows: list | None = None, multi_label: bool | None = None) -> DatasetSplits:
    """The splits a source has of its own, before any hold-out.

    bad_rows: see table.load_csv (a list collects a CSV's bad rows instead of refusing them).
    multi_label: how to read a CSV's labels (data/tags.py); True for any other source is an error.
    """
    path = None if data is None else Path(data).expanduser()
    if multi_label and not (path is not None and path.is_file() and path.suffix.lower() == ".csv"):
        raise ConfigError(f"--multi-label needs a CSV whose label cells hold space-separated tags (or one 0/1 column "
                          f"per class); --data {data or '(the bundled sample)'} is not one; drop --multi-label")
    if data is None:
        return load_embedded()
    path = Path(data).expanduser()
    # A folder or file the user has wins over a dataset name that happens to match it.
    if not path.exists() and named_key(str(data)) is not None:
        return load_named(str(data), download_dir)
    if path.is_file() and path.suffix.lower() == ".csv":
        class_names, samples = load_csv(path, images, label_column=label_column, image_column=image_column,
                                        bad_rows=bad_rows, multi_label=multi_label)
        if not samples.labelled:  # no label column: a test set to predict on
            return DatasetSplits(path.stem, [], train=None, test=samples)
        return DatasetSplits(path.stem, class_names, samples)
    if path.is_dir():
        return _load_folder(path)
    problem = "does not exist" if not path.exists() else "is not a CSV file or a folder"
    raise DataError(f"--data {data} {problem}; {ACCEPTED_FORMS}")


def _load_folder(path: Path) -> DatasetSplits:
    if is_idx_folder(path):
        return load_idx_folder(path)
    if is_split_folder(path):
        return load_split_folders(path)
    if not class_folders(path):
        raise DataError(f"--data {path} has no class subfolders, IDX files or train/ folder; {ACCEPTED_FORMS}")
    class_names, train = load_class_folders(path)
    return DatasetSplits(path.name, class_names, train)


def load_split(data: str | Path, images: str | None = None, class_names: list[str] | None = None,
               label_column: str | None = None, image_column: str | None = None,
               bad_rows: list | None = None, multi_label: bool | None = None) -> Samples:
    """One split from a CSV or a folder, labelled with `class_names` (a trained model's).

    For --val-data, `visionfit eval` and `visionfit predict`: a folder without
    class subfolders, or a CSV with only an image column, comes back unlabelled.
    multi_label: True for a multi-label model's data (a CSV's label column is read as tags).
    """
    path = Path(data).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_csv(path, images, class_names, label_column, image_column, bad_rows, multi_label)[1]
    if path.is_dir():
        return load_image_folder(path, class_names)
    raise DataError(f"{data} is not a CSV file or a folder of images; give one of those")


def evaluation_split(data: str | Path, images: str | None = None, class_names: list[str] | None = None,
                     download_dir: str | None = None) -> Samples | None:
    """The held-out split of a whole dataset (IDX folder, split folders, a dataset name), relabelled
    to `class_names`; None when `data` is a single CSV or folder (load_split reads those).

    For `visionfit eval --data mnist/`: test when the dataset has one, else its validation split.
    """
    path = Path(data).expanduser()
    named = not path.exists() and named_key(str(data)) is not None
    if not (named or (path.is_dir() and is_dataset_folder(path))):
        return None
    splits = load_source(data, images, download_dir)
    held_out = splits.test if splits.test is not None else splits.val
    if held_out is None:
        raise DataError(f"{data} has no test or validation split to evaluate on; point --data at a folder or CSV")
    return relabel(held_out, splits.class_names, class_names) if class_names else held_out


def is_dataset_folder(path: Path, entries: list[os.DirEntry] | None = None) -> bool:
    """A folder that holds a whole dataset (IDX files, or train/ val/ test/ folders), not one split.
    entries: its visible_entries, when the caller has listed it already."""
    return is_idx_folder(path, entries) or is_split_folder(path, entries)


def relabel(samples: Samples, source_names: list[str], target_names: list[str]) -> Samples:
    """Labels re-indexed from the source's class order to a model's, by class name."""
    unknown = sorted(set(source_names) - set(target_names))
    if unknown:
        raise DataError(f"classes {unknown[:5]} are not among the model's classes {target_names[:10]}; "
                        "evaluate on data with the classes the model was trained on")
    lookup = np.array([target_names.index(name) for name in source_names], dtype=np.int64)
    if samples.multi_label:  # column j of the source is class lookup[j] of the model
        labels = np.zeros((len(samples), len(target_names)), dtype=np.int64)
        labels[:, lookup] = samples.labels
    else:
        labels = lookup[samples.labels]
    return Samples(labels=labels, paths=samples.paths, images=samples.images, origin=samples.origin)


def _labelled_split(val_data: str, images, class_names: list[str], label_column, image_column,
                    multi_label: bool) -> Samples:
    samples = load_split(val_data, images, class_names, label_column, image_column, multi_label=multi_label or None)
    if not samples.labelled:
        raise DataError(
            f"--val-data {val_data} has no labels (no class subfolders or label column); validation needs labels"
        )
    return samples
