"""`visionfit eval`: accuracy, per-class precision / recall / F1, confusion matrix, top losses.

    report = visionfit.evaluate("runs/exp/best.safetensors", "hymenoptera/val")
    report.accuracy, report.per_class[0]["f1"], report.out_dir
    print(report.format())

Class names and their order come from the model file; data labelled with a class the
model does not know is an error, not a silent relabelling. A multi-label model gets
evaluate_tags.py's report (per-class precision, recall and AP at its thresholds, mAP).
"""
import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import progress
from ..data.samples import Samples
from ..data.sources import evaluation_split, load_split
from ..errors import ConfigError, DataError
from ..files import atomic_path, check_outputs, refuse_inside, require_writable_folder, write_text_atomic, writing
from ..train.run_dir import create_numbered_dir
from . import metrics
from .cam_report import CAM_FOLDER, cam_paths, find_cam_layer, top_loss_cams, write_cam_folder
from .plots import plot_confusion, plot_image_grid, short
from .protected import protected_inputs
from .evaluate_tags import TagsReport, build_tags_report, write_tags_report
from .runner import Classifier, Outputs, classify, decode_sample, load_classifier
from .text import format_table

TOP_LOSSES = 16  # images in the top-losses grid
TOP5_ABOVE = 5  # top-5 accuracy is reported when there are more classes than this
TABLE_NAME_CHARS = 40  # the terminal has more room for a class name than a plot title
REPORT_FILES = ("metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png", "top_losses.png")


@dataclass
class EvalReport:
    class_names: list[str]
    images: int  # images scored (unreadable ones excluded)
    accuracy: float
    top5: float | None  # None with 5 classes or fewer
    per_class: list[dict]  # class, precision, recall, f1, support
    confusion: np.ndarray  # K x K counts, row = true, column = predicted
    top_losses: list[dict]  # index, image, true, p_true, predicted, confidence, loss; worst first
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason): unreadable, or a non-finite output
    out_dir: Path | None = None
    cam_layer: str | None = None  # the layer Grad-CAM read, with cam=True

    def to_dict(self) -> dict:
        values = asdict(self)
        values["confusion"] = self.confusion.tolist()
        values["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return values

    def format(self) -> str:
        """The report as the terminal shows it."""
        head = f"accuracy {self.accuracy:.2%}"
        if self.top5 is not None:
            head += f"  top-5 {self.top5:.2%}"
        head += f"  on {self.images:,} images"
        if self.skipped:
            head += f" ({len(self.skipped)} left out, unreadable or with a non-finite output: see 'skipped' in metrics.json)"
        parts = [head, "", _per_class_table(self.per_class)]
        if self.top_losses:
            rows = [[r["image"], short(r["true"], TABLE_NAME_CHARS), f"{r['p_true']:.3f}",
                     short(r["predicted"], TABLE_NAME_CHARS), f"{r['confidence']:.3f}"] for r in self.top_losses]
            parts += ["", "top losses (wrong, lowest probability for the true class first):",
                      format_table(["image", "true", "p(true)", "predicted", "confidence"], rows, right={2, 4})]
        if self.out_dir is not None:
            parts += ["", f"report in {self.out_dir}"]
            if self.cam_layer is not None and self.top_losses:
                parts.append(f"Grad-CAM of the top losses (layer {self.cam_layer}) in {self.out_dir / CAM_FOLDER}")
        return "\n".join(parts)


def evaluate(model, data, images: str | None = None, batch_size: int = 64, device=None, out: str | Path | None = None,
             tta: bool = False, workers: int | None = None, top_losses: int = TOP_LOSSES,
             trust_code: bool = False, quiet: bool = False, cam: bool = False,
             cam_layer: str | None = None,
             on_numbers: Callable[[EvalReport | TagsReport], None] | None = None) -> EvalReport | TagsReport:
    """Score `model` (a model file or a module with visionfit metadata) on labelled `data`.

    data: a folder of class folders, a labelled CSV (`images` = root of its relative paths),
    or a Samples object (a multi-label model: a CSV of tags or 0/1 columns). Files go to `out`; by default next to a model file, in
    runs/<name>/eval/ (eval2/, ... when that exists); a bare module writes none unless given `out`.
    trust_code: allow a model file whose architecture is code outside visionfit (see load_model).
    quiet: no progress bar.
    cam: add Grad-CAM of each top loss to top_losses.png and write one per image in cam/, reading
    `cam_layer` (a module name such as "layer4"), or the layer found in the model when None.
    on_numbers: called with the report as soon as its numbers are computed and written (metrics.json,
    the CSVs), before the pictures are drawn: the CLI prints the report there, so drawing never
    keeps a person from the numbers.
    """
    classifier = load_classifier(model, device, trust_code=trust_code)
    if cam and classifier.multi_label:
        raise ConfigError("--cam draws Grad-CAM for the top losses of a single-label model; this model is multi-label")
    layer = find_cam_layer(classifier, cam_layer) if cam else None  # a wrong --cam-layer fails before any work
    if isinstance(data, Samples):
        samples = data
    else:  # a dataset's held-out split (IDX folder, train/val folders, a name), else one folder or CSV
        samples = (evaluation_split(data, images, classifier.class_names)
                   or load_split(data, images, classifier.class_names, multi_label=classifier.multi_label))
    if not samples.labelled:
        raise DataError(f"{data} has no labels (no class subfolders or label column); "
                        "evaluation needs them — use `visionfit predict` for unlabelled images")
    _check_out(Path(out) if out is not None else None, classifier, model, data, samples)
    with progress.quiet(quiet):
        outputs = classify(classifier, samples, batch_size, tta, workers, label="evaluating")
    if classifier.multi_label:
        report = build_tags_report(classifier.class_names, classifier.thresholds, samples, outputs)
    else:
        report = build_report(classifier.class_names, samples, outputs, top_losses)
        report.cam_layer = layer
    out_dir = Path(out) if out is not None else _default_out(classifier)
    if out_dir is not None and classifier.multi_label:
        write_tags_report(report, out_dir)  # numbers only: a multi-label report has no pictures
    elif out_dir is not None:
        if layer is not None:
            check_outputs([("--out", path) for path in cam_paths(out_dir / CAM_FOLDER, report.top_losses)],
                          protected_inputs(model, data, samples))
        write_numbers(report, out_dir)
    if on_numbers is not None:
        on_numbers(report)
    if out_dir is not None and not classifier.multi_label:
        draw_pictures(report, out_dir, classifier, samples)
    return report


def _check_out(out_dir: Path | None, classifier: Classifier, model, data, samples: Samples) -> None:
    """Before any work: the report folder can be written, its files replace no input,
    and it is not inside the data folder (its PNGs would become images of a class)."""
    if out_dir is None:  # the default: a new eval/ folder beside the model file
        if classifier.path is not None:
            require_writable_folder("--out (default: beside the model)", classifier.path.parent)
            refuse_inside(("the report folder (--out)", classifier.path.parent / "eval"), [("the --data folder", data)])
        return
    require_writable_folder("--out", out_dir)
    check_outputs([("--out", out_dir / name) for name in REPORT_FILES], protected_inputs(model, data, samples))
    refuse_inside(("--out", out_dir), [("the --data folder", data)])


def build_report(class_names: list[str], samples: Samples, outputs: Outputs, top_losses: int = TOP_LOSSES) -> EvalReport:
    scored = np.array([i for i in range(len(samples)) if i not in outputs.errors], dtype=np.int64)
    if not len(scored):
        raise DataError(f"none of the {len(samples)} images could be scored (first: {next(iter(outputs.errors.values()))})")
    labels, probs = samples.labels[scored], outputs.probs[scored]
    predicted = probs.argmax(axis=1)
    confusion = metrics.confusion_matrix(labels, predicted, len(class_names))
    worst = metrics.top_losses(probs, labels, top_losses)
    return EvalReport(
        class_names=list(class_names),
        images=len(scored),
        accuracy=float((predicted == labels).mean()),
        top5=metrics.topk_accuracy(probs, labels, 5) if len(class_names) > TOP5_ABOVE else None,
        per_class=_per_class_rows(class_names, confusion),
        confusion=confusion,
        top_losses=[_loss_row(class_names, samples, int(scored[i]), probs[i], labels[i]) for i in worst],
        skipped=[(samples.origin[i], reason) for i, reason in sorted(outputs.errors.items())],
    )


def _per_class_rows(class_names: list[str], confusion: np.ndarray) -> list[dict]:
    values = metrics.per_class(confusion)
    return [{"class": name, "precision": float(values["precision"][k]), "recall": float(values["recall"][k]),
             "f1": float(values["f1"][k]), "support": int(values["support"][k])} for k, name in enumerate(class_names)]


def _loss_row(class_names: list[str], samples: Samples, index: int, probs: np.ndarray, label: int) -> dict:
    predicted = int(probs.argmax())
    return {"index": index, "image": samples.origin[index], "true": class_names[label], "p_true": float(probs[label]),
            "predicted": class_names[predicted], "confidence": float(probs[predicted]),
            "loss": float(-np.log(max(float(probs[label]), 1e-12)))}


def _per_class_table(rows: list[dict]) -> str:
    support = sum(r["support"] for r in rows)
    body = [[short(r["class"], TABLE_NAME_CHARS), f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]] for r in rows]
    averages = {key: np.mean([r[key] for r in rows]) for key in ("precision", "recall", "f1")}
    body.append(["macro avg", *(f"{averages[key]:.3f}" for key in ("precision", "recall", "f1")), support])
    return format_table(["class", "precision", "recall", "f1", "support"], body, right={1, 2, 3, 4})


def _default_out(classifier: Classifier) -> Path | None:
    """A new runs/<name>/eval (eval2, ...) beside a model file, made now so no other eval takes it."""
    return None if classifier.path is None else create_numbered_dir(classifier.path.parent, "eval")


def write_numbers(report: EvalReport, out_dir: Path) -> None:
    """metrics.json, per_class.csv and confusion_matrix.csv in out_dir (made when missing)."""
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    report.out_dir = out_dir
    write_text_atomic(out_dir / "metrics.json", json.dumps(report.to_dict(), indent=2))
    _write_csv(out_dir / "per_class.csv", ["class", "precision", "recall", "f1", "support"],
               [[r[k] for k in ("class", "precision", "recall", "f1", "support")] for r in report.per_class])
    _write_csv(out_dir / "confusion_matrix.csv", ["true \\ predicted", *report.class_names],
               [[name, *counts] for name, counts in zip(report.class_names, report.confusion.tolist())])


def draw_pictures(report: EvalReport, out_dir: Path, classifier: Classifier, samples: Samples) -> None:
    """confusion_matrix.png and top_losses.png in out_dir, after write_numbers (with report.cam_layer,
    Grad-CAM panels in top_losses.png and cam/). matplotlib is imported here, on the first picture."""
    title = f"confusion matrix: accuracy {report.accuracy:.2%} on {report.images:,} images"
    plot_confusion(out_dir / "confusion_matrix.png", report.confusion, report.class_names, title)
    if report.top_losses:
        overlays = None
        if report.cam_layer is not None:
            overlays = top_loss_cams(classifier, samples, report.top_losses, report.cam_layer)
            write_cam_folder(out_dir / CAM_FOLDER, report.top_losses, overlays)
        _plot_top_losses(out_dir / "top_losses.png", report, classifier, samples, overlays)


def _plot_top_losses(path: Path, report: EvalReport, classifier: Classifier, samples: Samples,
                     overlays: list[torch.Tensor] | None = None) -> None:
    """The images as the model saw them (after the eval preprocessing), titled true / predicted (confidence);
    with `overlays`, each image is followed by its Grad-CAM panel."""
    preset = classifier.preset
    pixels = [decode_sample(samples, r["index"], preset) for r in report.top_losses]
    titles = [f"true: {short(r['true'])} ({r['p_true']:.2f})\npred: {short(r['predicted'])} ({r['confidence']:.2f})"
              for r in report.top_losses]
    title = "top losses: wrong, lowest p(true) first"
    if overlays is not None:
        pixels = [tile for pair in zip(pixels, overlays) for tile in pair]
        titles = [text for pair in zip(titles, (f"Grad-CAM: {short(r['predicted'])}\n{report.cam_layer}"
                                                for r in report.top_losses)) for text in pair]
        title += ", each with its Grad-CAM for the predicted class"
    plot_image_grid(path, pixels, titles, columns=8 if overlays is not None else 4, title=title)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    # surrogateescape: class names from folder names that are not UTF-8 keep their bytes (see predict)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
