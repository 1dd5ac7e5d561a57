"""`visionfit predict`: an image, a folder or a CSV of images in; one prediction row per image out.

    rows = visionfit.predict("runs/exp/best.safetensors", "test.csv", images="images/",
                             out="submission.csv", format="kaggle")
    rows[0]   # {"image": "0.jpg", "label": "maple", "confidence": 0.93, "error": ""}

Rows keep the input's order. An unreadable image gets a row with an empty label and the
reason in `error`, so one bad file never costs the whole run or shifts the other rows.
A multi-label model's label is its tags: the classes over their thresholds, space-separated
in class order (Kaggle's planet format), and its rows have no confidence.
"""
import csv
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


def predict(model, inputs, out: str | Path | None = None, images: str | None = None, topk: int = 0,
            tta: bool = False, format: str = "full", batch_size: int = 64, device=None,
            workers: int | None = None, trust_code: bool = False, quiet: bool = False) -> list[dict]:
    """Predict every image in `inputs` (an image, a list of images, a folder searched recursively,
    a CSV of image paths relative to `images`, or a Samples object) with `model` (a file or module).

    Returns one dict per image, in input order: image, label, confidence, top1..topK and
    top1_prob..topK_prob when topk > 0, true when the input is labelled, and error.
    Writes them to `out` as CSV when given, in `format` ("full" or "kaggle").
    trust_code: allow a model file whose architecture is code outside visionfit (see load_model).
    quiet: no progress bar.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format {format} is not one of: {', '.join(FORMATS)}")
    classifier = load_classifier(model, device, trust_code=trust_code)
    names = classifier.class_names
    if not 0 <= topk <= len(names):
        raise ConfigError(f"--topk {topk} must be between 0 and the model's {len(names)} classes")
    samples = read_samples(inputs, images, names, classifier.multi_label)
    if out is not None:
        check_outputs({"-o": out}, protected_inputs(model, inputs, samples))
    with progress.quiet(quiet):
        outputs = classify(classifier, samples, batch_size, tta, workers, label="predicting")
    images_written = image_names(inputs, samples)
    rows = [_row(images_written[i], outputs.probs[i], outputs.errors.get(i), names, topk) for i in range(len(samples))]
    if classifier.multi_label:
        rows = [_tags_row(row, classifier.tags(probs)) for row, probs in zip(rows, outputs.probs)]
    if samples.labelled:
        for row, label in zip(rows, samples.labels):
            row["true"] = label_text(label, names)
    if out is not None:
        write_predictions(out, rows, format, topk)
    return rows


def _row(image: str, probs: np.ndarray, error: str | None, names: list[str], topk: int) -> dict:
    if error is not None:
        row = {"image": image, "label": "", "confidence": None}
        row.update({key: None for j in range(1, topk + 1) for key in (f"top{j}", f"top{j}_prob")})
        return {**row, "error": error}
    best = np.argsort(-probs, kind="stable")
    row = {"image": image, "label": names[best[0]], "confidence": float(probs[best[0]])}
    for j, k in enumerate(best[:topk], start=1):
        row[f"top{j}"], row[f"top{j}_prob"] = names[k], float(probs[k])
    return {**row, "error": ""}


def _tags_row(row: dict, tags: list[str]) -> dict:
    """A multi-label row: the tags as its label, no confidence (each tag has its own probability)."""
    row = {key: value for key, value in row.items() if key != "confidence"}
    return {**row, "label": " ".join(tags) if not row["error"] else ""}


def image_names(inputs, samples: Samples) -> list[str]:
    """How each image is named in the output: as written in a CSV, relative to a folder, else as given."""
    if isinstance(inputs, Samples):
        return list(samples.origin)
    if isinstance(inputs, (list, tuple)):
        return [str(p) for p in inputs]
    path = Path(inputs).expanduser()
    if path.is_dir():
        return [p.relative_to(path).as_posix() for p in samples.paths]
    if path.suffix.lower() == ".csv":
        header, rows = _read_rows(path)
        column = _pick_columns(path, header, rows=rows)[0]
        return [row[column] if column < len(row) else "" for _, row in rows]
    return [str(inputs)]


def write_predictions(out: str | Path, rows: list[dict], format: str = "full", topk: int = 0) -> None:
    columns = ["image", "label"]
    if format == "full":
        if not rows or "confidence" in rows[0]:  # multi-label rows have none
            columns.append("confidence")
        if rows and "true" in rows[0]:
            columns.append("true")
        columns += [key for j in range(1, topk + 1) for key in (f"top{j}", f"top{j}_prob")]
        columns.append("error")
    # Linux file names are bytes; Python hands the ones that are not UTF-8 over with surrogate
    # escapes, and surrogateescape writes those bytes back, so the CSV names the real file.
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
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


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.6f}" if isinstance(value, float) else str(value)
