"""CSV source: one row per image, a header naming the image column and the label column.

Kaggle-style `id,label` and `image,label` files work as they are. Without a label
column the file is an unlabelled test set, usable for prediction only.
"""
import csv
from pathlib import Path

import numpy as np

from ..errors import DataError
from .folders import IMAGE_SUFFIXES
from .samples import UNLABELLED, Samples

# Column names we recognise, in order of preference; compared case-insensitively.
IMAGE_COLUMNS = ("image", "file", "filename", "path", "id")
LABEL_COLUMNS = ("label", "class", "category", "target")
# Tried, in order, for a path written without an image extension (Kaggle ids).
GUESSED_SUFFIXES = (".jpg", ".png", ".jpeg")
SHOW_MISSING = 5


def load_csv(
    path: Path, images: str | Path | None = None, class_names: list[str] | None = None
) -> tuple[list[str], Samples]:
    """Class names and samples of a CSV; relative paths resolve against `images`, else the CSV's folder.

    With `class_names` (validation data) labels map onto those names; without, the
    labels define the classes: strings sorted, numbers sorted numerically.
    Row numbers in messages are as a spreadsheet shows them (the header is row 1).
    """
    header, rows = _read_rows(path)
    image_column, label_column = _pick_columns(path, header)
    root = Path(images).expanduser() if images else path.parent
    files = _locate_all(path, rows, image_column, root)
    if label_column is None:
        return [], Samples(labels=[UNLABELLED] * len(files), paths=files)
    cells = [(number, _cell(row, label_column)) for number, row in rows]
    for number, cell in cells:
        if not cell:
            column = header[label_column]
            raise DataError(f"{path} row {number}: the '{column}' cell is empty; fill it or delete the row")
    names, labels = _encode_labels(path, cells, class_names)
    return names, Samples(labels=labels, paths=files)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (spreadsheet row number, cells) of every non-blank row."""
    try:
        # utf-8-sig: Excel writes a byte-order mark that would otherwise stick to the first column name.
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = enumerate(csv.reader(file), start=1)
            numbered = [(number, [cell.strip() for cell in row]) for number, row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read {path} as a UTF-8 CSV ({error}); save it as CSV (UTF-8)") from error
    numbered = [(number, row) for number, row in numbered if any(row)]
    if not numbered:
        raise DataError(f"{path} is empty; it needs a header row (e.g. image,label) and one row per image")
    (_, header), rows = numbered[0], numbered[1:]
    if not rows:
        raise DataError(f"{path} has a header but no rows; add one row per image")
    return header, rows


def _pick_columns(path: Path, header: list[str]) -> tuple[int, int | None]:
    """Indices of the image column and the label column (None when there is none)."""
    lowered = [name.lower() for name in header]
    if any(Path(name).suffix in IMAGE_SUFFIXES for name in lowered):
        raise DataError(
            f"{path} row 1 ({','.join(header)}) looks like data, not a header; "
            "add a header row such as image,label"
        )
    image = next((lowered.index(name) for name in IMAGE_COLUMNS if name in lowered), 0)
    label = next((lowered.index(name) for name in LABEL_COLUMNS if name in lowered), None)
    if label is None:
        label = next((i for i in range(len(header)) if i != image), None)
    return image, label


def _cell(row: list[str], column: int) -> str:
    return row[column] if column < len(row) else ""


def _locate_all(path: Path, rows: list, column: int, root: Path) -> list[Path]:
    """The image file of every row; all missing ones are reported together."""
    files, missing = [], []
    for number, row in rows:
        found = _locate(_cell(row, column), root)
        if found is None:
            missing.append(f"row {number}: {_cell(row, column) or '(empty)'}")
        files.append(found)
    if missing:
        raise DataError(
            f"{path}: {len(missing)} image file(s) not found under {root}, e.g. "
            f"{'; '.join(missing[:SHOW_MISSING])}; check --images (the folder the paths are relative to)"
        )
    return files


def _locate(written: str, root: Path) -> Path | None:
    """The file a cell names, trying common extensions for a bare id; None if there is none."""
    if not written:
        return None
    path = Path(written).expanduser()
    path = path if path.is_absolute() else root / path
    if path.is_file():
        return path
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        for suffix in GUESSED_SUFFIXES:
            guess = path.with_name(path.name + suffix)
            if guess.is_file():
                return guess
    return None


def _encode_labels(
    path: Path, cells: list[tuple[int, str]], class_names: list[str] | None
) -> tuple[list[str], np.ndarray]:
    """Class names and the int64 label of every row."""
    keys = [_number_name(cell) or cell for _, cell in cells]
    if class_names is None:
        numeric = all(_number_name(cell) for _, cell in cells)
        class_names = sorted(set(keys), key=float) if numeric else sorted(set(keys))
    index = {name: i for i, name in enumerate(class_names)}
    labels = []
    for (number, cell), key in zip(cells, keys):
        found = index.get(cell, index.get(key))
        if found is None:
            raise DataError(
                f"{path} row {number}: label '{cell}' is not one of the training classes "
                f"({', '.join(class_names[:20])}); fix the label or the training data"
            )
        labels.append(found)
    return list(class_names), np.asarray(labels, dtype=np.int64)


def _number_name(cell: str) -> str | None:
    """'3', '3.0' and '03' all name class '3'; None for a cell that is not a finite number."""
    try:
        value = float(cell)
    except ValueError:
        return None
    if not np.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else str(value)
