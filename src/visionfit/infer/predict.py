"""`visionfit predict`: an image, a folder or a CSV of images in; one prediction row per image out.

    rows = visionfit.predict("runs/exp/best.safetensors", "test.csv", images="images/",
                             out="submission.csv", format="kaggle")
    rows[0]   # {"image": "0.jpg", "label": "maple", "confidence": 0.93, "error": ""}
    visionfit.predict(model, "test.csv", out="submission.csv", format="kaggle", probs=True,
                      sample_submission="sample_submission.csv")    # its header, ids and order

Rows keep the input's order. An unreadable image gets a row with an empty label and the
reason in `error`, so one bad file never costs the whole run or shifts the other rows.
A multi-label model's label is its tags: the classes over their thresholds, space-separated
in class order (Kaggle's planet format), and its rows have no confidence.
"""
import csv
import os
import sys
from pathlib import Path

import numpy as np

from .. import progress
from ..data.samples import Samples, label_text
from ..data.table import _pick_columns, _read_rows  # the CSV reader's own row and column choice
from ..errors import ConfigError
from ..files import atomic_path, check_outputs
from ..formats import FORMATS
from .protected import protected_inputs
from .runner import NOT_FINITE, classify, load_classifier, read_samples
from .submission import DEFAULT_ID_COLUMN, Ids, Table, full_table, kaggle_table, match_sample, read_sample


def predict(model, inputs, out: str | Path | None = None, images: str | None = None, topk: int = 0,
            tta: bool = False, format: str = "full", batch_size: int = 64, device=None,
            workers: int | None = None, trust_code: bool = False, probs: bool = False,
            sample_submission: str | Path | None = None, quiet: bool = False) -> list[dict]:
    """Predict every image in `inputs` (an image, a list of images, a folder searched recursively,
    a CSV of image paths relative to `images`, or a Samples object) with `model` (a file or module).

    Returns one dict per image, in input order: image, label, confidence, top1..topK and
    top1_prob..topK_prob when topk > 0, probs ({class: probability}) when probs, true when the
    input is labelled, and error.
    Writes them to `out` as CSV when given, in `format`: "full", or "kaggle" (the input CSV's id
    column and the label, or one probability column per class with probs; the header, ids and
    row order of `sample_submission` when given).
    trust_code: allow a model file whose architecture is code outside visionfit (see load_model).
    quiet: no progress bar.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format {format} is not one of: {', '.join(FORMATS)}")
    if sample_submission is not None and format != "kaggle":
        raise ConfigError("--sample-submission shapes a Kaggle submission; add --format kaggle")
    classifier = load_classifier(model, device, trust_code=trust_code)
    names = classifier.class_names
    if not 0 <= topk <= len(names):
        raise ConfigError(f"--topk {topk} must be between 0 and the model's {len(names)} classes")
    samples = read_samples(inputs, images, names, classifier.multi_label)
    ids = input_ids(inputs, samples)
    sample = read_sample(sample_submission, ids.column, names, probs) if sample_submission is not None else None
    if sample is not None:
        match_sample(sample, ids)  # before the images are classified: a wrong file fails at once
    if out is not None:
        extra = [("the sample submission", Path(sample_submission))] if sample_submission is not None else []
        check_outputs({"-o": out}, protected_inputs(model, inputs, samples) + extra)
    with progress.quiet(quiet):
        outputs = classify(classifier, samples, batch_size, tta, workers, label="predicting")
    rows = [_row(ids.names[i], outputs.probs[i], outputs.errors.get(i), names, topk, probs) for i in range(len(samples))]
    if classifier.multi_label:
        rows = [_tags_row(row, classifier.tags(p)) for row, p in zip(rows, outputs.probs)]
    if samples.labelled:
        for row, label in zip(rows, samples.labels):
            row["true"] = label_text(label, names)
    if out is not None:
        table = (kaggle_table(rows, ids, names, probs, sample) if format == "kaggle"
                 else full_table(rows, topk, names, probs))
        write_table(out, table, rows)
    return rows


def _row(image: str, probs: np.ndarray, error: str | None, names: list[str], topk: int, with_probs: bool) -> dict:
    if error is not None:
        row = {"image": image, "label": "", "confidence": None}
        row.update({key: None for j in range(1, topk + 1) for key in (f"top{j}", f"top{j}_prob")})
        return {**row, **({"probs": None} if with_probs else {}), "error": error}
    best = np.argsort(-probs, kind="stable")
    row = {"image": image, "label": names[best[0]], "confidence": float(probs[best[0]])}
    for j, k in enumerate(best[:topk], start=1):
        row[f"top{j}"], row[f"top{j}_prob"] = names[k], float(probs[k])
    if with_probs:  # in the model's class order
        row["probs"] = {name: float(p) for name, p in zip(names, probs)}
    return {**row, "error": ""}


def _tags_row(row: dict, tags: list[str]) -> dict:
    """A multi-label row: the tags as its label, no confidence (each tag has its own probability)."""
    row = {key: value for key, value in row.items() if key != "confidence"}
    return {**row, "label": " ".join(tags) if not row["error"] else ""}


def input_ids(inputs, samples: Samples) -> Ids:
    """How each image is named in the output, and the id column's name: as written in a CSV (its
    image column, whatever its name: id, ImageId, file ...), relative to a folder, else as given."""
    if isinstance(inputs, Samples):
        return _ids(DEFAULT_ID_COLUMN, list(samples.origin), "input")
    if isinstance(inputs, (list, tuple)):
        return _ids(DEFAULT_ID_COLUMN, [str(p) for p in inputs], "input")
    path = Path(inputs).expanduser()
    if path.is_dir():
        return _ids(DEFAULT_ID_COLUMN, _relative_names(samples.paths, path), str(path))
    if path.suffix.lower() == ".csv":
        header, rows = _read_rows(path)
        column = _pick_columns(path, header, rows=rows)[0]
        return Ids(header[column], [row[column] if column < len(row) else "" for _, row in rows],
                   [f"{path} row {number}" for number, _ in rows])
    return _ids(DEFAULT_ID_COLUMN, [str(inputs)], "input")


def _relative_names(paths: list[Path], folder: Path) -> list[str]:
    """Each path relative to `folder`, with forward slashes (Path.relative_to(...).as_posix()).

    The folder's files were listed under its own spelling, so cutting that prefix off the string
    is the same answer, and 2,000 relative_to calls cost as much as decoding 200 small PNGs."""
    prefix = os.path.join(str(folder), "")
    return [text[len(prefix):].replace(os.sep, "/") if (text := str(path)).startswith(prefix)
            else path.relative_to(folder).as_posix() for path in paths]


def _ids(column: str, names: list[str], source: str) -> Ids:
    return Ids(column, names, [f"{source} image {name}" for name in names])


def write_table(out: str | Path, table: Table, rows: list[dict]) -> None:
    # Linux file names are bytes; Python hands the ones that are not UTF-8 over with surrogate
    # escapes, and surrogateescape writes those bytes back, so the CSV names the real file.
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as file:
        writer = csv.writer(file)
        writer.writerow(table.header)
        writer.writerows(table.cells)
    undecodable = sum(not _is_utf8(row["image"]) for row in rows)
    if undecodable:
        print(f"warning: {undecodable:,} image name{'s are' if undecodable > 1 else ' is'} not valid UTF-8; "
              f"{out} has {'their' if undecodable > 1 else 'its'} raw bytes", file=sys.stderr)


def result_line(row: dict) -> str:
    """'one.png: 7 (98.1%), 1 (1.2%), 9 (0.3%)': the top-k classes when the row has them, else
    the label; the reason when the image got no prediction."""
    # A file name that is not UTF-8 (surrogate escapes) is shown with U+FFFD; the CSV keeps its bytes.
    image = row["image"].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if row["error"]:
        return f"{image}: no prediction ({row['error']})"
    ranked = [(row[f"top{j}"], row[f"top{j}_prob"]) for j in range(1, len(row)) if f"top{j}" in row]
    shown = ranked or [(row["label"], row["confidence"])]
    text = ", ".join(f"{label} ({probability:.1%})" for label, probability in shown)
    return f"{image}: {text}" + (f" (true: {row['true']})" if "true" in row else "")


def failure_lines(rows: list[dict], format: str = "full") -> list[str]:
    """What to tell a person about the rows that got no prediction: unreadable images, non-finite outputs."""
    where = "the error column" if format == "full" else "the error column of --format full"
    diverged = sum(row["error"].startswith(NOT_FINITE) for row in rows)
    unreadable = sum(bool(row["error"]) for row in rows) - diverged
    lines = []
    if unreadable:
        lines.append(f"{unreadable:,} image{'s' if unreadable > 1 else ''} could not be read: "
                     f"{'their rows have' if unreadable > 1 else 'its row has'} an empty label (the reason is in {where})")
    if diverged:
        lines.append(f"{diverged:,} image{'s' if diverged > 1 else ''} got a non-finite output from the model "
                     f"(an empty label): its weights may have diverged; retrain with a lower --lr")
    return lines


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
