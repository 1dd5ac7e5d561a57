"""The columns and rows of a prediction CSV: visionfit's full report, or a Kaggle submission.

    table = kaggle_table(rows, ids, class_names, probs=True, sample=read_sample("sample_submission.csv", ...))
    table.header     # ["id", "cat", "dog"]: the sample's header, copied
    table.cells      # one list of strings per row, in the sample's row order

A submission keeps the input's id column name (`id`, `ImageId`, ...: the column data/table.py
reads the images from). With a sample submission, its header, id cells and row order are
copied, and every id it lists must be among the inputs and every input among its ids.
"""
from dataclasses import dataclass
from pathlib import Path

from ..data.folders import IMAGE_SUFFIXES
from ..data.table import _read_rows  # the CSV reader's own rules (BOM, delimiter, blank rows)
from ..errors import ConfigError, DataError

DEFAULT_ID_COLUMN, LABEL_COLUMN = "image", "label"


@dataclass(frozen=True)
class Ids:
    """How the inputs name their images: the id column's name and each row's id as written."""

    column: str
    names: list[str]
    where: list[str]  # where each one is written, for messages: "test.csv row 7", "image 3.png"


@dataclass(frozen=True)
class SampleSubmission:
    path: Path
    header: list[str]
    id_index: int
    ids: list[tuple[int, str]]  # (spreadsheet row number, id as written)
    probability_columns: bool  # its other columns are the model's class names


@dataclass(frozen=True)
class Table:
    header: list[str]
    cells: list[list[str]]


def full_table(rows: list[dict], topk: int, class_names: list[str], probs: bool) -> Table:
    """image, label, confidence, [true], [top-k], [one probability per class], error."""
    columns = ["image", "label"]
    if not rows or "confidence" in rows[0]:  # multi-label rows have none: each tag has its own probability
        columns.append("confidence")
    if rows and "true" in rows[0]:
        columns.append("true")
    columns += [key for j in range(1, topk + 1) for key in (f"top{j}", f"top{j}_prob")]
    probability = list(class_names) if probs else []
    _refuse_clash(columns + ["error"], probability)
    header = columns + probability + ["error"]
    cells = [[cell(row.get(c)) for c in columns] + _probability_cells(row, probability) + [row["error"]]
             for row in rows]
    return Table(header, cells)


def kaggle_table(rows: list[dict], ids: Ids, class_names: list[str], probs: bool,
                 sample: SampleSubmission | None = None) -> Table:
    """The input's id column, then the label (or, with probs, one probability column per class),
    in the input's order; with a sample submission, its header and its order instead."""
    if sample is None:
        probability = list(class_names) if probs else []
        _refuse_clash([ids.column], probability)
        header = [ids.column, *(probability or [LABEL_COLUMN])]
        return Table(header, [[name, *_values(row, probability)] for name, row in zip(ids.names, rows)])
    by_id = match_sample(sample, ids)
    values = [c for i, c in enumerate(sample.header) if i != sample.id_index] if sample.probability_columns else []
    cells = []
    for _, written in sample.ids:
        line = _values(rows[by_id[written]], values)
        cells.append(line[:sample.id_index] + [written] + line[sample.id_index:])
    return Table(list(sample.header), cells)


def read_sample(path: str | Path, id_column: str, class_names: list[str], probs: bool) -> SampleSubmission:
    """A Kaggle sample submission: its id column is the input's (by name), else its first;
    its other columns are one label column, or (with probs) the model's class names."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"--sample-submission {path}: no such file; give the competition's sample_submission.csv")
    header, numbered = _read_rows(path)
    lowered = [name.lower() for name in header]
    id_index = lowered.index(id_column.lower()) if id_column.lower() in lowered else 0
    others = [name for i, name in enumerate(header) if i != id_index]
    names_match = bool(others) and sorted(others) == sorted(class_names)
    if probs and not names_match:
        raise ConfigError(f"--probs with --sample-submission {path}: its columns besides '{header[id_index]}' "
                          f"({', '.join(others) or 'none'}) are not the model's classes ({_few(class_names)}); "
                          "drop --probs to write labels")
    if not probs and names_match and len(others) > 1:
        raise ConfigError(f"--sample-submission {path} has one column per class ({_few(others)}): it wants "
                          "probabilities; add --probs")
    if not probs and len(others) != 1:
        raise ConfigError(f"--sample-submission {path}: besides the id column '{header[id_index]}' it should have "
                          f"one label column, not {len(others)} ({', '.join(others) or 'none'})")
    ids = [(number, row[id_index] if id_index < len(row) else "") for number, row in numbered]
    _refuse_bad_ids(path, ids)
    return SampleSubmission(path, header, id_index, ids, probs)


def match_sample(sample: SampleSubmission, ids: Ids) -> dict[str, int]:
    """The input row of each id the sample lists: the same text, or else the one file name that
    is the id plus an image extension (a folder of 3.png for a sample id 3). An id the inputs
    lack, or an input the sample lacks, is an error naming it."""
    exact: dict[str, int] = {}
    stems: dict[str, list[int]] = {}
    for i, name in enumerate(ids.names):
        if name in exact:
            raise DataError(f"{ids.where[i]}: id '{name}' appears twice in the inputs; give each image once")
        exact[name] = i
        stems.setdefault(_without_image_suffix(name), []).append(i)
    found = {}
    for number, written in sample.ids:
        candidates = [exact[written]] if written in exact else stems.get(written, [])
        if len(candidates) != 1:
            raise DataError(f"{sample.path} row {number}: id '{written}' is not among the inputs; every id of the "
                            f"sample submission needs an image to predict")
        found[written] = candidates[0]
    used = set(found.values())
    for i, name in enumerate(ids.names):
        if i not in used:
            raise DataError(f"{ids.where[i]}: '{name}' is not an id of {sample.path}; remove it from the inputs or "
                            "give the sample submission that lists it")
    return found


def _refuse_bad_ids(path: Path, ids: list[tuple[int, str]]) -> None:
    seen: dict[str, int] = {}
    for number, written in ids:
        if not written:
            raise DataError(f"{path} row {number}: the id cell is empty; every row needs its id")
        if written in seen:
            raise DataError(f"{path} row {number}: id '{written}' repeats row {seen[written]}; each id once")
        seen[written] = number


def _refuse_clash(columns: list[str], class_names: list[str]) -> None:
    """A class named like another column (`label`, `id`) would make two columns of one name."""
    clash = [name for name in class_names if name.lower() in {c.lower() for c in columns}]
    if clash:
        raise ConfigError(f"--probs: class '{clash[0]}' has the name of another column ({', '.join(columns)}); "
                          "the probability columns are named by class, so this CSV would be ambiguous")


def _values(row: dict, probability: list[str]) -> list[str]:
    return _probability_cells(row, probability) if probability else [row["label"]]


def _probability_cells(row: dict, names: list[str]) -> list[str]:
    probs = row.get("probs") or {}
    return [cell(probs.get(name)) for name in names]


def _without_image_suffix(name: str) -> str:
    path = Path(name)
    return path.with_suffix("").as_posix() if path.suffix.lower() in IMAGE_SUFFIXES else name


def _few(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def cell(value) -> str:
    """A CSV cell: floats to 6 decimals, None empty."""
    if value is None:
        return ""
    return f"{value:.6f}" if isinstance(value, float) else str(value)
