"""`visionfit check-data`: every problem a dataset has, found before training, in one table.

    report = check_data("train.csv", images="images/")
    print(report.format())       # one row per check, then every flagged file or row
    report.problems              # the findings that make the command exit 1

It reads the data as `visionfit train` would (same options, same split), but decodes
every file fully and, where training stops at the first bad CSV row, lists them all.
"""
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .decode import is_huge
from .samples import DatasetSplits, Samples, label_text
from .scan import FAULT_KINDS, duplicate_groups, group_ids, label_conflicts, leaked_rows, with_scan
from .sources import DEFAULT_VAL_SPLIT, check_val_split, load_source, load_split, refuse_same_data
from .validation import present_classes, refuse_conflicting_validation, split_train_val
from .table import EMPTY_LABEL, MISSING_FILE

IMBALANCE_LIMIT = 10.0  # largest class / smallest class above which imbalance is a problem
TINY_SIDE = 8  # pixels: an image whose shorter side is smaller holds almost nothing to learn from


@dataclass
class Finding:
    """One row of the table.

    items: every flagged file, row, group or class, one line each.
    problem: whether items make the data fail the check (else the row only informs).
    summary: what the table shows; the first item when empty.
    """

    check: str
    items: list[str] = field(default_factory=list)
    problem: bool = True
    summary: str = ""


@dataclass
class DataReport:
    title: str
    findings: list[Finding]

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.problem and finding.items]

    def format(self) -> str:
        """The table, a verdict, then every item of every row that has items."""
        width = max(len(finding.check) for finding in self.findings)
        lines = [self.title, "", f"{'check':<{width}}  {'count':>6}  {'status':<7}  detail"]
        for finding in self.findings:
            status = ("PROBLEM" if finding.items else "ok") if finding.problem else "note"
            count = str(len(finding.items)) if finding.problem or finding.items else "-"
            detail = finding.summary or (finding.items[0] if finding.items else "")
            lines.append(f"{finding.check:<{width}}  {count:>6}  {status:<7}  {detail}".rstrip())
        problems = self.problems
        lines += ["", f"{len(problems)} kind(s) of problem found" if problems else "no problems found"]
        for finding in self.findings:
            if finding.items:
                note = "" if finding.problem else ", note"
                lines += ["", f"{finding.check} ({len(finding.items)}{note}):"]
                lines += [f"  {item}" for item in finding.items]
        return "\n".join(lines)


def check_data(data=None, images: str | None = None, val_data: str | None = None, val_split: float | None = None,
               seed: int = 0, download_dir: str | None = None, label_column: str | None = None,
               image_column: str | None = None, workers: int | None = None,
               multi_label: bool | None = None) -> DataReport:
    """Check `data` as `visionfit train --data` reads it (same options); see the module docstring.

    Data that cannot be read at all (no such folder, an unreadable CSV, validation from
    two places) raises the error training would.
    """
    refuse_same_data(data, val_data)
    check_val_split(val_split)
    bad_rows: list[tuple[str, str]] = []
    splits = load_source(data, images, download_dir, label_column, image_column, bad_rows, multi_label)
    refuse_conflicting_validation(splits, val_data, val_split)
    given_val = None if val_data is None else load_split(val_data, images, splits.class_names, label_column,
                                                         image_column, bad_rows, splits.multi_label or None)
    val = given_val if given_val is not None else splits.val
    scanned = {name: with_scan(samples, decode_fully=True, workers=workers)
               for name, samples in (("train", splits.train), ("validation", val), ("test", splits.test))
               if samples is not None}
    fraction = DEFAULT_VAL_SPLIT if val_split is None else val_split
    split_here = "train" in scanned and "validation" not in scanned and fraction > 0 and splits.train.labelled
    train = scanned.get("train")
    # The split training would make: identical images on one side, so nothing leaks by construction.
    train_val = (split_train_val(train, fraction, seed, group_ids(train.scan.keys)) if split_here
                 else (train, scanned.get("validation")))
    findings = [
        *_file_findings(scanned),
        *_duplicate_findings(scanned, splits.class_names),
        _leak_finding(scanned, split_here),
        *_class_findings(splits.class_names, train, train_val),
        *_image_findings(scanned),
        *(Finding(kind, [text for found, text in bad_rows if found == kind]) for kind in (MISSING_FILE, EMPTY_LABEL)),
    ]
    return DataReport(_title(splits, scanned, fraction, seed, split_here), findings)


def _title(splits: DatasetSplits, scanned: dict[str, Samples], fraction: float, seed: int, split_here: bool) -> str:
    counts = ", ".join(f"{name} {len(samples):,} images" for name, samples in scanned.items())
    held_out = f"; visionfit holds out {fraction:g} of train for validation (seed {seed})" if split_here else ""
    kind = ""
    if splits.multi_label:
        tags = splits.train.labels.sum(axis=1).mean() if splits.train is not None else float("nan")
        kind = f" (multi-label: {tags:.2f} tags per training image; a sigmoid per class)"
    return f"check-data {splits.name}: {counts}, {len(splits.class_names)} classes{kind}{held_out}"


def _file_findings(scanned: dict[str, Samples]) -> list[Finding]:
    """One row per way a file can be unusable, over every split."""
    found = {kind: [] for kind in FAULT_KINDS}
    for samples in scanned.values():
        for origin, fault in zip(samples.origin, samples.scan.faults):
            if fault is not None:
                found[fault[0]].append(f"{origin}: {fault[1]}")
    return [Finding(kind, items) for kind, items in found.items()]


def _duplicate_findings(scanned: dict[str, Samples], class_names: list[str]) -> list[Finding]:
    """Identical images within a split, and those among them labelled differently."""
    duplicates, conflicts = [], []
    for samples in scanned.values():
        groups = duplicate_groups(samples.scan.keys)
        duplicates += [" = ".join(samples.origin[row] for row in rows) for rows in groups]
        if samples.labelled:
            conflicts += [f"{samples.origin[one]} is '{label_text(samples.labels[one], class_names)}', "
                          f"{samples.origin[other]} is '{label_text(samples.labels[other], class_names)}'"
                          for one, other in label_conflicts(groups, samples.labels)]
    return [Finding("duplicate images", duplicates), Finding("identical images, different labels", conflicts)]


def _leak_finding(scanned: dict[str, Samples], split_here: bool) -> Finding:
    """Validation and test images that training has too: they would be scored as seen."""
    check = "in training and validation/test"
    if "train" not in scanned:
        return Finding(check, summary="no training split")
    train = scanned["train"]
    first_row = {}
    for row, key in enumerate(train.scan.keys):
        first_row.setdefault(key, row)
    items = [f"{held_out.origin[row]} = {train.origin[first_row[held_out.scan.keys[row]]]}"
             for name, held_out in scanned.items() if name != "train"
             for row in leaked_rows(train.scan.keys, held_out.scan.keys)]
    summary = "" if items or not split_here else "none: visionfit's split keeps identical images on one side"
    return Finding(check, items, summary=summary)


def _class_findings(class_names: list[str], source_train: Samples | None,
                    train_val: tuple[Samples | None, Samples | None]) -> list[Finding]:
    """Images per class (fewer than two classes is a problem), imbalance over the source's
    training data, and the classes validation has no image of."""
    if source_train is None or not source_train.labelled:
        return [Finding("classes", problem=False, summary="no labels: images to predict on")]
    present = np.flatnonzero(class_counts(source_train.labels, len(class_names)))
    train, val = train_val
    val = val if val is not None and val.labelled else None
    return [_classes(class_names, present, train, val), _imbalance(class_counts(source_train.labels), present),
            _classes_without_validation(class_names, present, val)]


def _classes(class_names: list[str], present: np.ndarray, train: Samples, val: Samples | None) -> Finding:
    train_counts = class_counts(train.labels, len(class_names))
    val_counts = None if val is None else class_counts(val.labels, len(class_names))
    per_class = [f"{class_names[label]}: train {train_counts[label]:,}"
                 + ("" if val_counts is None else f", validation {val_counts[label]:,}") for label in present]
    if len(present) < 2:
        return Finding("classes", [f"images of {len(present)} class(es) only ({', '.join(per_class) or 'none'}); "
                                   "a classifier needs two at least"])
    fewest, most = train_counts[present].min(), train_counts[present].max()
    return Finding("classes", per_class, problem=False,
                   summary=f"{len(present)} classes, {fewest:,} to {most:,} training images each")


def _classes_without_validation(class_names: list[str], present: np.ndarray, val: Samples | None) -> Finding:
    check = "classes without validation images"
    if val is None:
        return Finding(check, problem=False, summary="no validation split")
    in_val = set(present_classes(val.labels).tolist())
    return Finding(check, [class_names[label] for label in present if label not in in_val], problem=False)


def class_counts(labels: np.ndarray, classes: int = 0) -> np.ndarray:
    """Images per class (a multi-label image counts for each of its classes)."""
    return labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=classes)


def _imbalance(counts_per_class: np.ndarray, present: np.ndarray) -> Finding:
    counts = counts_per_class[present]
    largest, smallest = (int(counts.max()), int(counts.min())) if len(counts) else (0, 0)
    ratio = largest / smallest if smallest else 0.0
    summary = f"largest/smallest class {ratio:.1f} ({largest:,} / {smallest:,} images)"
    return Finding("class imbalance", [summary] if ratio > IMBALANCE_LIMIT else [], summary=summary)


def _image_findings(scanned: dict[str, Samples]) -> list[Finding]:
    """Tiny and huge images, and how modes and sizes are mixed, over the readable images."""
    tiny, huge, modes, sizes = [], [], Counter(), Counter()
    for samples in scanned.values():
        for origin, (width, height), mode, fault in zip(samples.origin, samples.scan.sizes.tolist(),
                                                        samples.scan.modes, samples.scan.faults):
            if fault is not None:
                continue
            modes[mode] += 1
            sizes[(width, height)] += 1
            if min(width, height) < TINY_SIDE:
                tiny.append(f"{origin}: {width} x {height}")
            if is_huge((width, height)):
                huge.append(f"{origin}: {width} x {height}, decoded reduced")
    common = sizes.most_common(1)
    size_summary = (f"most common {common[0][0][0]} x {common[0][0][1]} ({common[0][1]:,} images); "
                    f"{sum(sizes.values()) - common[0][1]:,} differ") if common else ""
    return [
        Finding(f"tiny images (shorter side < {TINY_SIDE} px)", tiny),
        Finding("huge images (over Pillow's MAX_IMAGE_PIXELS)", huge, problem=False),
        Finding("image modes", problem=False, summary=", ".join(f"{mode} {n:,}" for mode, n in modes.most_common())),
        Finding("image sizes", problem=False, summary=size_summary),
    ]
