"""`visionfit eval` of a multi-label model: per-class precision, recall, F1 and average precision
at the thresholds its file keeps, with mAP, micro/macro F1 and the exact-match ratio.

    report = visionfit.evaluate("runs/tags/best.safetensors", "test.csv", images="images/")
    report.map, report.per_class[0]["recall"]

The thresholds are the ones chosen on the training run's validation images, not refitted
here: on new data they give what `predict` gives.
"""
import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..data.samples import Samples
from ..errors import DataError
from ..files import atomic_path, write_text_atomic, writing
from ..train.multilabel import ranked, average_precision, f1_counts, macro_f1, micro_f1
from .plots import short
from .text import format_table

TABLE_NAME_CHARS = 40
PER_CLASS_COLUMNS = ("class", "threshold", "precision", "recall", "f1", "ap", "support")


@dataclass
class TagsReport:
    class_names: list[str]
    images: int  # images scored (unreadable ones excluded)
    map: float  # mean over the classes with a positive image of their average precision
    micro_f1: float
    macro_f1: float
    exact_match: float  # images whose predicted tags are exactly their true tags
    per_class: list[dict]  # class, threshold, precision, recall, f1, ap, support
    skipped: list[tuple[str, str]] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def accuracy(self) -> float:
        """The exact-match ratio: what accuracy means when an image has a set of classes."""
        return self.exact_match

    def to_dict(self) -> dict:
        values = asdict(self)
        values["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return values

    def format(self) -> str:
        head = (f"mAP {self.map:.4f}  micro-F1 {self.micro_f1:.4f}  macro-F1 {self.macro_f1:.4f}  "
                f"exact match {self.exact_match:.2%}  on {self.images:,} images")
        if self.skipped:
            head += f" ({len(self.skipped)} left out, unreadable or with a non-finite output: see metrics.json)"
        rows = [[short(r["class"], TABLE_NAME_CHARS), f"{r['threshold']:.3f}", *(_number(r[key]) for key in
                 ("precision", "recall", "f1", "ap")), r["support"]] for r in self.per_class]
        parts = [head, "", format_table(list(PER_CLASS_COLUMNS), rows, right={1, 2, 3, 4, 5, 6})]
        if self.out_dir is not None:
            parts += ["", f"report in {self.out_dir}"]
        return "\n".join(parts)


def build_tags_report(class_names: list[str], thresholds: np.ndarray, samples: Samples, outputs) -> TagsReport:
    """Score the sigmoid probabilities in `outputs` against the samples' N x K 0/1 labels."""
    if not samples.multi_label:
        raise DataError("a multi-label model needs labels that are sets of classes: a CSV with a tags column "
                        "(space-separated) or one 0/1 column per class")
    scored = np.array([i for i in range(len(samples)) if i not in outputs.errors], dtype=np.int64)
    if not len(scored):
        raise DataError(f"none of the {len(samples)} images could be scored (first: {next(iter(outputs.errors.values()))})")
    truth, probs = samples.labels[scored].astype(bool), outputs.probs[scored]
    predicted = probs >= thresholds
    hits, predicted_count, support = counts = f1_counts(predicted, truth)
    precisions = np.array([average_precision(ranked(probs[:, k], truth[:, k])) for k in range(len(class_names))])
    per_class = [{"class": name, "threshold": float(thresholds[k]),
                  "precision": _ratio(hits[k], predicted_count[k]), "recall": _ratio(hits[k], support[k]),
                  "f1": _ratio(2 * hits[k], predicted_count[k] + support[k]),
                  "ap": None if np.isnan(precisions[k]) else float(precisions[k]), "support": int(support[k])}
                 for k, name in enumerate(class_names)]
    return TagsReport(list(class_names), len(scored),
                      map=float(np.nanmean(precisions)) if not np.isnan(precisions).all() else float("nan"),
                      micro_f1=micro_f1(counts), macro_f1=macro_f1(counts),
                      exact_match=float((predicted == truth).all(axis=1).mean()), per_class=per_class,
                      skipped=[(samples.origin[i], reason) for i, reason in sorted(outputs.errors.items())])


def write_tags_report(report: TagsReport, out_dir: Path) -> None:
    """metrics.json and per_class.csv in out_dir."""
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    report.out_dir = out_dir
    write_text_atomic(out_dir / "metrics.json", json.dumps(report.to_dict(), indent=2))
    # surrogateescape: class names that are not UTF-8 keep their bytes (see predict)
    with atomic_path(out_dir / "per_class.csv") as tmp, \
            open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as file:
        writer = csv.writer(file)
        writer.writerow(PER_CLASS_COLUMNS)
        writer.writerows([["" if r[key] is None else r[key] for key in PER_CLASS_COLUMNS] for r in report.per_class])


def _ratio(numerator, denominator) -> float:
    """0 where nothing was predicted or present (sklearn's zero_division=0)."""
    return float(numerator / denominator) if denominator else 0.0


def _number(value) -> str:
    return "-" if value is None else f"{value:.3f}"
