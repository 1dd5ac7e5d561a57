"""Validation settled so that it measures something: every split scanned, no held-out image that
training also has, no class without a chance of validation, a dataset of one class refused.

    splits = settle_validation(splits, seed, fraction=0.2)     # scan, hold out, drop leaks; says what changed
    train, val = split_train_val(samples, 0.2, seed, groups)    # stratified, identical images kept together
    refuse_single_class(splits)                                  # before any decoding
    few = limit_per_class(samples, 50, seed)                     # at most 50 of each class

sources.resolve calls these for every --data; prepare.py and check-data call them too.
"""
import dataclasses
import sys

import numpy as np

from ..errors import ConfigError, DataError
from .samples import DatasetSplits, Samples, label_text, strata
from .scan import duplicate_groups, group_ids, label_conflicts, leaked_rows, with_scan


def refuse_single_class(splits: DatasetSplits) -> None:
    """A classifier needs training images of two classes at least; one class "trains" to 100%.

    Once the training split is scanned, only the images it can read count.
    """
    train = splits.train
    usable = train.labels if train.scan is None else train.labels[[fault is None for fault in train.scan.faults]]
    if train.multi_label:
        _refuse_constant_tags(splits, usable)
        return
    present = np.unique(usable)
    if len(present) >= 2:
        return
    readable = "" if train.scan is None else "readable "
    if not len(present):
        raise DataError(f"{splits.name} has no {readable}training images; add images of at least two classes")
    label = int(present[0])
    name = splits.class_names[label] if 0 <= label < len(splits.class_names) else str(label)
    raise DataError(
        f"{splits.name} has {readable}images of one class only ('{name}'); a classifier needs at least two: "
        "add images of another class"
    )


def _refuse_constant_tags(splits: DatasetSplits, usable: np.ndarray) -> None:
    """Multi-label data teaches something when some class is on some images and off others."""
    if len(usable) and (usable.min(axis=0) != usable.max(axis=0)).any():
        return
    if not len(usable):
        raise DataError(f"{splits.name} has no readable training images; add images")
    raise DataError(f"every training image of {splits.name} has the same tags "
                    f"('{label_text(usable[0], splits.class_names)}'); a classifier needs images that differ in them")


def refuse_conflicting_validation(splits: DatasetSplits, val_data, val_split) -> None:
    """Validation from two places, or for data without labels, is refused before any work."""
    if splits.train is None:
        if val_data is not None or val_split:
            raise ConfigError(
                f"{splits.name} has no labels (prediction only), so it cannot have a validation split; "
                "drop --val-data / --val-split"
            )
        return
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


def settle_validation(splits: DatasetSplits, seed: int = 0, fraction: float = 0.0, given_val: Samples | None = None,
                      given_name: str = "--val-data") -> DatasetSplits:
    """Every split scanned, validation settled, nothing held out that training has; what changed is printed.

    Training data with readable images of fewer than two classes is refused. Validation is
    `given_val` (named `given_name` in messages), else the source's own, else a stratified,
    seeded hold-out of `fraction` of train in which identical images stay together.
    Held-out images (validation, test) whose content is also in training are left out of
    them; a held-out split left with nothing is an error.
    """
    if splits.train is None:
        return splits
    train = with_scan(splits.train)
    refuse_single_class(dataclasses.replace(splits, train=train))
    split_here = given_val is None and splits.val is None and fraction > 0
    _report_duplicates(train, splits.class_names, split_here)
    if given_val is not None:
        val = _without_training_images(train, with_scan(given_val), given_name)
    elif splits.val is not None:
        val = _without_training_images(train, with_scan(splits.val), f"{splits.name}'s validation split")
    elif split_here:
        train, val = split_train_val(train, fraction, seed, group_ids(train.scan.keys))
        _report_classes_without_validation(train, val, splits.class_names)
    else:
        val = None
    test = None if splits.test is None else _without_training_images(train, with_scan(splits.test),
                                                                       f"{splits.name}'s test split")
    return dataclasses.replace(splits, train=train, val=val, test=test)


def _without_training_images(train: Samples, held_out: Samples, name: str) -> Samples:
    """`held_out` less the images whose content training has too (it would score them as seen)."""
    leaked = leaked_rows(train.scan.keys, held_out.scan.keys)
    if not len(leaked):
        return held_out
    example = held_out.origin[leaked[0]]
    if len(leaked) == len(held_out):
        raise DataError(
            f"every image of {name} ({len(held_out)}) is also a training image (e.g. {example}); "
            "validate on images the model does not train on, or use --val-split"
        )
    _tell(f"{len(leaked)} of the {len(held_out)} images of {name} are also training images (e.g. {example}); "
          "they are left out of it")
    return held_out.subset(np.setdiff1d(np.arange(len(held_out)), leaked))


def _report_duplicates(train: Samples, class_names: list[str], split_here: bool) -> None:
    groups = duplicate_groups(train.scan.keys)
    if not groups:
        return
    copies = sum(len(rows) - 1 for rows in groups)
    where = "; each group kept on one side of the split" if split_here else ""
    _tell(f"{_count(copies, 'image')} duplicate others ({_count(len(groups), 'group')}, e.g. "
          f"{train.origin[groups[0][0]]} = {train.origin[groups[0][1]]}){where}")
    conflicts = label_conflicts(groups, train.labels)
    if conflicts:
        one, other = conflicts[0]
        _tell(f"identical images carry different labels in {_count(len(conflicts), 'group')} "
              f"(e.g. {train.origin[one]} is '{label_text(train.labels[one], class_names)}', "
              f"{train.origin[other]} is '{label_text(train.labels[other], class_names)}'); fix the labels")


def _report_classes_without_validation(train: Samples, val: Samples | None, class_names: list[str]) -> None:
    in_val = set() if val is None else set(present_classes(val.labels).tolist())
    missing = [class_names[label] for label in present_classes(train.labels) if label not in in_val]
    if missing:
        _tell(f"classes without validation images (one image, or only identical copies): {', '.join(missing)}")


def present_classes(labels: np.ndarray) -> np.ndarray:
    """The class indices that label at least one image (sorted)."""
    return np.flatnonzero(labels.any(axis=0)) if labels.ndim == 2 else np.unique(labels)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _tell(message: str) -> None:
    """A short line about what was done to the data, for the person running visionfit."""
    print(message, file=sys.stderr)


def split_train_val(samples: Samples, fraction: float, seed: int,
                    groups: np.ndarray | None = None) -> tuple[Samples, Samples | None]:
    """Hold out `fraction` of each class (rounded, but at least one image of every class that has
    two), seeded; every class keeps at least one training sample. Rows that share a `groups` id
    (identical images) land on the same side, with the class of their first row. Multi-label
    images are stratified by their rarest class (samples.strata).

    Both parts keep the source's order. Returns val None when no class can spare any.
    """
    groups = np.arange(len(samples)) if groups is None else np.asarray(groups)
    val_rows = _held_out_rows(strata(samples.labels), fraction, seed, groups)
    if not len(val_rows):
        return samples, None
    train_rows = np.setdiff1d(np.arange(len(samples)), val_rows)
    return samples.subset(train_rows), samples.subset(val_rows)


def _held_out_rows(labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    _, first_rows, member_of = np.unique(groups, return_index=True, return_inverse=True)
    group_labels, group_sizes = labels[first_rows], np.bincount(member_of)
    held = []
    for label in np.unique(group_labels):
        candidates = rng.permutation(np.flatnonzero(group_labels == label))
        images = int(group_sizes[candidates].sum())
        wanted = min(max(1, int(images * fraction + 0.5)), images - 1)
        taken = 0
        for group in candidates:  # groups that would overshoot are passed over
            if taken == wanted:
                break
            if taken + group_sizes[group] <= wanted:
                held.append(group)
                taken += group_sizes[group]
    return np.flatnonzero(np.isin(member_of, held))


def limit_per_class(samples: Samples, per_class: int, seed: int) -> Samples:
    """At most `per_class` samples of each class, drawn with `seed`, in the source's order.

    For few-shot runs and quick comparisons on a slice of a big dataset. Multi-label images
    count towards their rarest class (samples.strata).
    """
    rng = np.random.default_rng(seed)
    keys = strata(samples.labels)
    rows = [rng.permutation(np.flatnonzero(keys == label))[:per_class] for label in np.unique(keys)]
    return samples.subset(np.sort(np.concatenate(rows)))
