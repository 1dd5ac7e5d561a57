"""CSV source: one row per image, a header naming the image column and the label column.

Kaggle-style `id,label` and `image,label` files work as they are; --label-column and
--image-column name other columns. A file with only an image column is an unlabelled
test set, usable for prediction only; a header with other columns but none of the label
names is refused rather than guessed, unless they are one 0/1 column per class. Multi-label
files (a `tags` column of space-separated classes, or those 0/1 columns) are read by tags.py's rule.
"""
import csv
import io
import sys
from pathlib import Path

import numpy as np

from ..errors import DataError
from .folders import IMAGE_SUFFIXES
from .samples import UNLABELLED, Samples, number_name as _number_name
from .tags import TAG_COLUMNS, encode_tags, indicator_columns, is_multi_label, row_tags, tags_hint

# Column names we recognise, in order of preference; compared case-insensitively.
IMAGE_COLUMNS = ("image", "file", "filename", "path", "id")
LABEL_COLUMNS = ("label", "class", "category", "target")
# Tried, in order, for a path written without an image extension (Kaggle ids).
GUESSED_SUFFIXES = (".jpg", ".png", ".jpeg")
# Separators tried when the header has no comma (spreadsheets in some locales write ';').
OTHER_DELIMITERS = (";", "\t")
SHOW_ROWS = 5  # rows an error message names; check-data lists them all
# Kinds of bad row, as check-data names them.
MISSING_FILE, EMPTY_LABEL = "CSV rows whose file is missing", "CSV rows with an empty label"


def load_csv(
    path: Path,
    images: str | Path | None = None,
    class_names: list[str] | None = None,
    label_column: str | None = None,
    image_column: str | None = None,
    bad_rows: list[tuple[str, str]] | None = None,
    multi_label: bool | None = None,
) -> tuple[list[str], Samples]:
    """Class names and samples of a CSV; relative paths resolve against `images`, else the CSV's folder.

    With `class_names` (validation data) labels map onto those names; without, the
    labels define the classes: strings sorted, numbers sorted numerically.
    label_column / image_column name the columns when the header's names are not the usual ones.
    Rows whose file is missing or whose label is empty are an error naming them all (counted,
    the first few shown); given a `bad_rows` list, they are appended to it as (kind, text)
    instead and left out (check-data lists every one).
    Row numbers in messages are as a spreadsheet shows them (the header is row 1).
    multi_label: None decides by tags.py's rule; True reads the label column as space-separated
    tags, False as one class per row. Multi-label samples have N x K 0/1 labels.
    """
    header, rows = _read_rows(path)
    image_index, label_index = _pick_columns(path, header, label_column, image_column, rows, multi_label)
    multi = label_index is not None and is_multi_label(header, label_index, multi_label)
    root = Path(images).expanduser() if images else path.parent
    files = [_locate(_cell(row, image_index), root) for _, row in rows]
    if label_index is None:
        cells = None
    else:
        cells = row_tags(header, rows, label_index) if multi else [_cell(row, label_index) for _, row in rows]
    missing = [(number, _cell(row, image_index)) for (number, row), file in zip(rows, files) if file is None]
    empty = [number for (number, _), cell in zip(rows, cells or []) if not cell and cell != []]
    if bad_rows is None:
        label_name = "" if label_index is None else _column_names(header, label_index)
        _refuse_bad_rows(path, root, label_name, missing, empty)
    else:
        bad_rows += [(MISSING_FILE, f"{path.name} row {number}: {written or '(empty)'}") for number, written in missing]
        bad_rows += [(EMPTY_LABEL, f"{path.name} row {number}") for number in empty]
    bad = {number for number, _ in missing} | set(empty)
    keep = [i for i, (number, _) in enumerate(rows) if number not in bad]
    kept_files = [files[i] for i in keep]
    if cells is None:
        return [], Samples(labels=[UNLABELLED] * len(keep), paths=kept_files)
    numbered = [(rows[i][0], cells[i]) for i in keep]
    if multi:
        columns = [header[i] for i in label_index] if isinstance(label_index, list) else None
        names, labels = encode_tags(path, numbered, class_names, columns)
    else:
        hint = None if multi_label is False else tags_hint(path, header[label_index], [cell for _, cell in numbered])
        if hint:
            print(hint, file=sys.stderr)
        names, labels = _encode_labels(path, numbered, class_names)
    return names, Samples(labels=labels, paths=kept_files)


def _column_names(header: list[str], label: int | list[int]) -> str:
    return "/".join(header[i] for i in label) if isinstance(label, list) else header[label]


def _refuse_bad_rows(path: Path, root: Path, label_name: str, missing: list, empty: list) -> None:
    if missing:
        shown = "; ".join(f"row {number}: {written or '(empty)'}" for number, written in missing[:SHOW_ROWS])
        raise DataError(
            f"{path}: {len(missing)} image file(s) not found under {root}, e.g. {shown}; "
            "check --images (the folder the paths are relative to)"
        )
    if empty:
        shown = ", ".join(f"row {number}" for number in empty[:SHOW_ROWS])
        raise DataError(f"{path}: {len(empty)} row(s) have an empty '{label_name}' cell, e.g. {shown}; "
                        "fill them or delete the rows")


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (spreadsheet row number, cells) of every non-blank row."""
    try:
        # utf-8-sig: Excel writes a byte-order mark that would otherwise stick to the first column name.
        with open(path, newline="", encoding="utf-8-sig") as file:
            text = file.read()
        reader = enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)), start=1)
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


def _delimiter(text: str) -> str:
    """',' unless the first line has none and has a ';' or a tab."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first_line:
        return ","
    return next((other for other in OTHER_DELIMITERS if other in first_line), ",")


def _pick_columns(
    path: Path, header: list[str], label_column: str | None = None, image_column: str | None = None,
    rows: list[tuple[int, list[str]]] | None = None, multi_label: bool | None = None,
) -> tuple[int, int | list[int] | None]:
    """Indices of the image column and the label column (None when the header has only an image
    column; every other column's, when given `rows`, they are one 0/1 column per class)."""
    lowered = [name.lower() for name in header]
    if any(Path(name).suffix in IMAGE_SUFFIXES for name in lowered):
        raise DataError(
            f"{path} row 1 ({','.join(header)}) looks like data, not a header; "
            "add a header row such as image,label"
        )
    image = _named_column(path, header, image_column, "--image-column")
    if image is None:
        image = next((lowered.index(name) for name in IMAGE_COLUMNS if name in lowered), 0)
    label = _named_column(path, header, label_column, "--label-column")
    if label is None:
        label = next((lowered.index(name) for name in LABEL_COLUMNS + TAG_COLUMNS if name in lowered), None)
    if label == image:
        raise DataError(f"{path}: column '{header[image]}' cannot hold both the images and the labels; "
                        "name the two columns with --image-column and --label-column")
    others = [name for i, name in enumerate(header) if i != image]
    if label is None and others:
        indicators = None if rows is None or multi_label is False else indicator_columns(header, rows, image)
        if indicators is not None:
            return image, indicators
        # Guessing "the other column" once trained on a weight column as if it held classes.
        raise DataError(
            f"{path} has no label column ({'/'.join(LABEL_COLUMNS + TAG_COLUMNS)}) but other columns "
            f"({', '.join(others)}); say which holds the classes with --label-column NAME, or keep only the image "
            "column for images to predict on (multi-label: one column of 0/1 per class)"
        )
    return image, label


def _named_column(path: Path, header: list[str], name: str | None, flag: str) -> int | None:
    """Index of the column a flag names (case-insensitively); None when the flag is not given."""
    if name is None:
        return None
    lowered = [column.lower() for column in header]
    if name.lower() not in lowered:
        raise DataError(f"{flag} {name}: {path} has no such column (columns: {', '.join(header)}); "
                        "give one of those")
    return lowered.index(name.lower())


def _cell(row: list[str], column: int) -> str:
    return row[column] if column < len(row) else ""


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
