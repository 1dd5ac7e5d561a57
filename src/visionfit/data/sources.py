"""Turn --data (and --val-data / --val-split) into DatasetSplits.

    resolve(None)                          # the bundled MNIST sample
    resolve("fashion-mnist")               # torchvision download, test split as val
    resolve("train.csv", images="images/") # CSV of image,label rows, 20% held out
    resolve("hymenoptera/")                # train/ + val/ folders of class folders

The class-to-index mapping decided here is the one saved with a run, so every
source orders classes deterministically (sorted names, or the dataset's own order).
"""
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .embedded import load_embedded
from .folders import class_folders, is_split_folder, load_class_folders, load_image_folder, load_split_folders
from .idx import is_idx_folder, load_idx_folder
from .named import NAMED_DATASETS, load_named, named_key
from .samples import DatasetSplits, Samples
from .table import load_csv

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
) -> DatasetSplits:
    """The dataset --data names, with its validation split settled.

    Validation comes from exactly one place: the source's own (t10k, val/, a test
    split), --val-data, or a stratified, seeded hold-out of val_split of train
    (0.2 when the source has none and val_split is None; 0 means no validation).
    `images` is the root for relative paths in CSVs, --val-data's included.
    """
    splits = load_source(data, images, download_dir)
    return _settle_validation(splits, images, val_data, val_split, seed)


def load_source(data: str | Path | None, images: str | None = None, download_dir: str | None = None) -> DatasetSplits:
    """The splits a source has of its own, before any hold-out."""
    if data is None:
        return load_embedded()
    path = Path(data).expanduser()
    # A folder or file the user has wins over a dataset name that happens to match it.
    if not path.exists() and named_key(str(data)) is not None:
        return load_named(str(data), download_dir)
    if path.is_file() and path.suffix.lower() == ".csv":
        class_names, samples = load_csv(path, images)
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


def load_split(data: str | Path, images: str | None = None, class_names: list[str] | None = None) -> Samples:
    """One split from a CSV or a folder, labelled with `class_names` (a trained model's).

    For --val-data, `visionfit eval` and `visionfit predict`: a folder without
    class subfolders, or a CSV without a label column, comes back unlabelled.
    """
    path = Path(data).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_csv(path, images, class_names)[1]
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
    if not (named or (path.is_dir() and (is_idx_folder(path) or is_split_folder(path)))):
        return None
    splits = load_source(data, images, download_dir)
    held_out = splits.test if splits.test is not None else splits.val
    if held_out is None:
        raise DataError(f"{data} has no test or validation split to evaluate on; point --data at a folder or CSV")
    return relabel(held_out, splits.class_names, class_names) if class_names else held_out


def relabel(samples: Samples, source_names: list[str], target_names: list[str]) -> Samples:
    """Labels re-indexed from the source's class order to a model's, by class name."""
    unknown = sorted(set(source_names) - set(target_names))
    if unknown:
        raise DataError(f"classes {unknown[:5]} are not among the model's classes {target_names[:10]}; "
                        "evaluate on data with the classes the model was trained on")
    lookup = np.array([target_names.index(name) for name in source_names], dtype=np.int64)
    return Samples(labels=lookup[samples.labels], paths=samples.paths, images=samples.images, origin=samples.origin)


def _settle_validation(splits: DatasetSplits, images, val_data, val_split, seed: int) -> DatasetSplits:
    if val_split is not None and not 0 <= val_split < 1:
        raise ConfigError(f"--val-split {val_split} must be in [0, 1), e.g. 0.2")
    if splits.train is None:
        if val_data is not None or val_split:
            raise ConfigError(
                f"{splits.name} has no labels (prediction only), so it cannot have a validation split; "
                "drop --val-data / --val-split"
            )
        return splits
    _refuse_two_validations(splits, val_data, val_split)
    if val_data is not None:
        splits.val = _labelled_split(val_data, images, splits.class_names)
    elif splits.val is None:
        fraction = DEFAULT_VAL_SPLIT if val_split is None else val_split
        if fraction > 0:
            splits.train, splits.val = split_train_val(splits.train, fraction, seed)
    return splits


def _refuse_two_validations(splits: DatasetSplits, val_data, val_split) -> None:
    given = [
        name
        for name, present in (
            (f"{splits.name}'s own validation split", splits.val is not None),
            (f"--val-data {val_data}", val_data is not None),
            (f"--val-split {val_split}", bool(val_split)),
        )
        if present
    ]
    if len(given) > 1:
        raise ConfigError(f"validation data comes from both {given[0]} and {given[1]}; drop one")


def _labelled_split(val_data: str, images, class_names: list[str]) -> Samples:
    samples = load_split(val_data, images, class_names)
    if not samples.labelled:
        raise DataError(
            f"--val-data {val_data} has no labels (no class subfolders or label column); validation needs labels"
        )
    return samples


def split_train_val(samples: Samples, fraction: float, seed: int) -> tuple[Samples, Samples | None]:
    """Hold out `fraction` of each class (rounded), seeded; every class keeps at least one training sample.

    Both parts keep the source's order. Returns val None when no class is big enough to give any.
    """
    rng = np.random.default_rng(seed)
    val_rows = []
    for label in np.unique(samples.labels):
        rows = rng.permutation(np.flatnonzero(samples.labels == label))
        count = min(int(len(rows) * fraction + 0.5), len(rows) - 1)
        val_rows.append(rows[:count])
    val_rows = np.sort(np.concatenate(val_rows))
    if not len(val_rows):
        return samples, None
    train_rows = np.setdiff1d(np.arange(len(samples)), val_rows)
    return samples.subset(train_rows), samples.subset(val_rows)


def limit_per_class(samples: Samples, per_class: int, seed: int) -> Samples:
    """At most `per_class` samples of each class, drawn with `seed`, in the source's order.

    For few-shot runs and quick comparisons on a slice of a big dataset.
    """
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(np.flatnonzero(samples.labels == label))[:per_class] for label in np.unique(samples.labels)]
    return samples.subset(np.sort(np.concatenate(rows)))
