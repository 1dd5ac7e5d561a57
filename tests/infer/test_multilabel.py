"""A multi-label run end to end: a PNG folder + tags CSV trains with BCE, predict writes tags,
eval reports per-class precision and recall at the file's thresholds, and the ONNX export
with its metadata gives the same tags."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import average_precision_score, precision_score, recall_score

import visionfit
from visionfit.checkpoints import read_meta
from visionfit.infer.runner import classify, load_classifier, read_samples

from .conftest import save_png
from .test_onnx_consumer import CONSUMER, WITHOUT_TORCH

NAMES = ["left", "middle", "right"]


def bar_tags(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16 x 16 grey images with up to three bright bars (left, middle, right), and which bars each has."""
    rng = np.random.default_rng(seed)
    tags = rng.random((n, 3)) < 0.5
    tags[~tags.any(axis=1), 0] = True
    images = rng.integers(0, 60, size=(n, 16, 16), dtype=np.uint8)
    for image, on in zip(images, tags):
        for k in np.flatnonzero(on):
            image[:, k * 5:(k + 1) * 5] = 220
    return images, tags.astype(int)


def write_set(root: Path, name: str, n: int, seed: int, layout: str) -> Path:
    images, tags = bar_tags(n, seed)
    header = ["image", "tags"] if layout == "tags" else ["image", *NAMES]
    rows = []
    for i, (pixels, on) in enumerate(zip(images, tags)):
        save_png(root / "images" / f"{name}{i}.png", pixels)
        cells = [" ".join(NAMES[k] for k in np.flatnonzero(on))] if layout == "tags" else [str(v) for v in on]
        rows.append([f"images/{name}{i}.png", *cells])
    with open(root / f"{name}.csv", "w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return root / f"{name}.csv"


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """(trained run, test CSV in the 0/1-column layout, its true tags) from a tags-CSV training set."""
    root = tmp_path_factory.mktemp("tagged")
    train = write_set(root, "train", 96, 0, "tags")
    test = write_set(root, "test", 24, 1, "columns")
    result = visionfit.fit("lenet_relu", str(train), project=str(root / "runs"), epochs=3, lr=0.01, optimizer="adam",
                           batch_size=16, image_size=16, quiet=True, workers=0)
    return result, test, bar_tags(24, 1)[1]


def test_the_run_trains_a_sigmoid_head_and_keeps_the_best_validation_thresholds(tagged):
    result, _, _ = tagged
    assert result.resolved.multi_label and result.resolved.config.train.monitor == "map"
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"map", "micro_f1", "macro_f1", "val_map", "val_micro_f1", "val_macro_f1"} <= set(header)
    best = result.history[result.best_epoch - 1]
    assert result.best_score == best["val_map"] == max(row["val_map"] for row in result.history)
    meta = read_meta(result.best_model)
    assert meta["multi_label"] is True and meta["thresholds"] == best["val_thresholds"]
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["resolved"]["multi_label"] is True
    assert result.history[-1]["val_map"] > 0.9  # three bars are easy to see


def test_predict_writes_tags_that_match_the_truth_and_eval_reports_them_per_class(tagged, tmp_path):
    result, test, truth = tagged
    rows = visionfit.predict(result.best_model, str(test), out=tmp_path / "tags.csv")
    thresholds = np.asarray(read_meta(result.best_model)["thresholds"])
    predicted = np.array([[name in row["label"].split() for name in NAMES] for row in rows], dtype=int)
    assert [row["true"] for row in rows] == [" ".join(n for n, on in zip(NAMES, t) if on) for t in truth]
    assert np.mean([row["label"] == row["true"] for row in rows]) > 0.6  # thresholds from 19 validation images
    assert (tmp_path / "tags.csv").read_text().splitlines()[0] == "image,label,true,error"  # no confidence

    report = visionfit.evaluate(result.best_model, str(test), out=tmp_path / "eval")
    assert [r["precision"] for r in report.per_class] == pytest.approx(
        precision_score(truth, predicted, average=None, zero_division=0))
    assert [r["recall"] for r in report.per_class] == pytest.approx(recall_score(truth, predicted, average=None))
    assert [r["threshold"] for r in report.per_class] == pytest.approx(thresholds)
    assert report.exact_match == pytest.approx(np.mean((predicted == truth).all(axis=1)))
    probs = classify(load_classifier(result.best_model), read_samples(str(test), None, NAMES, True)).probs
    assert report.map == pytest.approx(average_precision_score(truth, probs, average="macro"))
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["map"] == pytest.approx(report.map)


def test_the_onnx_export_carries_the_head_and_a_consumer_reads_the_same_tags(tagged, tmp_path):
    result, test, _ = tagged
    onnx_file = tmp_path / "tags.onnx"
    visionfit.export_onnx(result.best_model, onnx_file, check=True, check_data=str(test))
    import onnx

    props = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert props["multi_label"] == "true" and props["output_activation"] == "sigmoid"
    assert json.loads(props["thresholds"]) == pytest.approx(read_meta(result.best_model)["thresholds"])
    images = sorted(str(path) for path in (test.parent / "images").glob("test*.png"))
    predicted = {row["image"]: row["label"] for row in visionfit.predict(result.best_model, images)}
    completed = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(CONSUMER), str(onnx_file), *images],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    consumed = {image: label for image, label, _ in (line.rsplit(",", 2) for line in completed.stdout.splitlines())}
    assert consumed == predicted
