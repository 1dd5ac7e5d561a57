"""Multi-label CSVs: each image has a set of classes (Kaggle's planet and Human Protein style).

Two layouts are read:

    image,tags              image,cat,dog,bird
    1.png,cat dog           1.png,1,1,0
    2.png,bird              2.png,0,0,1

The rule, chosen so that no CSV visionfit reads as single-label changes meaning: a CSV is
multi-label when --multi-label is given, when its label column is named `tags` or `labels`,
or when it has no label column and every column besides the image column holds only 0 and 1
(two such columns at least). Each of the last two was refused before multi-label existed. A
`label` (`class`, `category`, `target`) column holds one class per row, even when a name has
spaces ("sea lion"); --multi-label reads it as space-separated tags, --no-multi-label reads a
`tags`/`labels` column as one class per row.

Tags are split on whitespace and named like single labels ('03' and '3' are class '3'); classes
are sorted (numerically when all are numbers), or in header order for 0/1 columns.
"""
from pathlib import Path

import numpy as np

from ..errors import DataError
from .samples import number_name

TAG_COLUMNS = ("tags", "labels")  # label column names that mean space-separated tags
INDICATOR_VALUES = ("0", "1")
SHOWN_NAMES = 20  # class names an error message lists


def indicator_columns(header: list[str], rows: list[tuple[int, list[str]]], image: int) -> list[int] | None:
    """The columns of a one-0/1-column-per-class CSV (every column but the image's), or None
    when the other columns are not that: fewer than two, or a cell other than 0, 1 or empty."""
    others = [column for column in range(len(header)) if column != image]
    if len(others) < 2:
        return None
    cells = [_cell(row, column) for _, row in rows for column in others]
    if any(cell not in ("", *INDICATOR_VALUES) for cell in cells) or not any(cells):
        return None
    return others


def is_multi_label(header: list[str], label: int | list[int], multi_label: bool | None) -> bool:
    """Whether the label column(s) picked from `header` hold sets of classes (see the module docstring)."""
    if isinstance(label, list):
        return True
    return header[label].lower() in TAG_COLUMNS if multi_label is None else multi_label


def tags_hint(path: Path, column: str, cells: list[str]) -> str | None:
    """A line for a single-label column that looks like tags (Human Protein's `Id,Target` with
    "16 0"): cells with spaces whose every word is also a whole label elsewhere. Only a hint:
    the rule decides, and "sea lion" beside "seal" stays one class."""
    words = [cell.split() for cell in cells]
    singles = {number_name(w[0]) or w[0] for w in words if len(w) == 1}
    multiple = [w for w in words if len(w) > 1]
    if not multiple or not all((number_name(word) or word) in singles for w in multiple for word in w):
        return None
    return (f"{path}: {len(multiple):,} '{column}' cells hold several labels that are classes on their own "
            f"(e.g. '{' '.join(multiple[0])}'); each is read as one class. If they are tags, pass --multi-label")


def row_tags(header: list[str], rows: list[tuple[int, list[str]]], label: int | list[int]) -> list[list[str] | None]:
    """Each row's tags: split from its tags cell, or the names of its 0/1 columns holding 1.
    None for a row whose tags cell (or any of its 0/1 cells) is empty: a row to fill or delete."""
    if isinstance(label, list):
        return [None if not all(_cell(row, column) for column in label)
                else [header[column] for column in label if _cell(row, column) == "1"] for _, row in rows]
    return [_cell(row, label).split() or None for _, row in rows]


def encode_tags(path: Path, numbered: list[tuple[int, list[str]]], class_names: list[str] | None,
                columns: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Class names and the N x K 0/1 int64 labels of (row number, tags) pairs.

    With `class_names` (a trained model's, or training's for validation data) tags map onto
    them and an unknown tag is an error; without, the tags define the classes. `columns`: the
    class columns' names of a 0/1 CSV, which are its classes in header order, and must be the
    model's classes exactly when `class_names` is given (a missing column is unknown truth).
    """
    if class_names is None:
        class_names = columns or _sorted_classes([tag for _, tags in numbered for tag in tags])
    elif columns is not None and sorted(columns) != sorted(class_names):
        raise DataError(f"{path}: its 0/1 columns ({', '.join(columns[:SHOWN_NAMES])}) are not the model's classes "
                        f"({', '.join(class_names[:SHOWN_NAMES])}); give one column per class, named as the classes")
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.zeros((len(numbered), len(class_names)), dtype=np.int64)
    for row, (number, tags) in enumerate(numbered):
        for tag in tags:
            found = index.get(tag, index.get(number_name(tag) or tag))
            if found is None:
                raise DataError(f"{path} row {number}: tag '{tag}' is not one of the training classes "
                                f"({', '.join(class_names[:SHOWN_NAMES])}); fix the tag or the training data")
            labels[row, found] = 1
    return list(class_names), labels


def _sorted_classes(tags: list[str]) -> list[str]:
    keys = {number_name(tag) or tag for tag in tags}
    numeric = all(number_name(tag) for tag in tags)
    return sorted(keys, key=float) if numeric else sorted(keys)


def _cell(row: list[str], column: int) -> str:
    return row[column] if column < len(row) else ""
