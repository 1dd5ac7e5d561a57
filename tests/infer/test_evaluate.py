"""evaluate: metrics against hand-computed values, report files, class checks, the CLI."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch

import visionfit
from visionfit.cli import main
from visionfit.data.samples import Samples
from visionfit.errors import DataError
from visionfit.infer import metrics

from ..conftest import pattern_images
from ..photos import write_odd_photos
from .conftest import with_meta

LONG_NAMES = [f"class {k:02d} {'with a rather long descriptive name' if k % 2 else 'short'}" for k in range(20)]


def test_metrics_match_hand_computed_values():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    confusion = metrics.confusion_matrix(labels, predicted, 4)
    assert confusion[:3, :3].tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]] and confusion[3].sum() == 0
    values = metrics.per_class(confusion)
    assert values["precision"].tolist() == pytest.approx([1, 0.5, 0.5, 0])  # class 3: never predicted -> 0
    assert values["recall"].tolist() == pytest.approx([2 / 3, 0.5, 1, 0])
    assert values["f1"].tolist() == pytest.approx([0.8, 0.5, 2 / 3, 0])
    assert values["support"].tolist() == [3, 2, 1, 0]
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    truth = np.array([1, 1, 2])
    assert metrics.topk_accuracy(probs, truth, 1) == pytest.approx(1 / 3)
    assert metrics.topk_accuracy(probs, truth, 2) == pytest.approx(2 / 3)
    assert metrics.top_losses(probs, truth, 5).tolist() == [2, 0]  # p(true) 0.1 is worse than 0.3


def test_eval_writes_its_report_next_to_the_model_file(bars_model, bars_csv, tmp_path):
    model = tmp_path / "exp" / "best.safetensors"
    model.parent.mkdir()
    shutil.copy(bars_model, model)
    report = visionfit.evaluate(model, bars_csv)
    assert report.out_dir == tmp_path / "exp" / "eval"
    files = {p.name for p in report.out_dir.iterdir()}
    assert {"metrics.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix.png"} <= files
    assert visionfit.evaluate(model, bars_csv).out_dir.name == "eval2"  # never overwrites a report
    with open(report.out_dir / "confusion_matrix.csv", newline="") as file:
        table = list(csv.reader(file))
    assert table[0] == ["true \\ predicted", "left", "middle", "right"]
    assert sum(int(c) for row in table[1:] for c in row[1:]) == 30 == report.images
    saved = json.loads((report.out_dir / "metrics.json").read_text())
    assert saved["accuracy"] == report.accuracy and saved["top5"] is None  # 3 classes: no top-5
    assert [r["support"] for r in report.per_class] == [10, 10, 10]


def test_a_label_the_model_does_not_know_is_a_data_error_naming_it(bars_model, bars_csv, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(bars_csv.read_text().replace("images/3.png,left", "images/3.png,diagonal"))
    shutil.copytree(bars_csv.parent / "images", tmp_path / "images")
    with pytest.raises(DataError, match="label 'diagonal'"):
        visionfit.evaluate(bars_model, bad)
    with pytest.raises(SystemExit) as info:
        main(["eval", str(bars_model), "--data", str(bad)])
    assert info.value.code == 2 and "diagonal" in capsys.readouterr().err


def test_unlabelled_data_cannot_be_evaluated(bars_model, bars_csv, tmp_path):
    (tmp_path / "test.csv").write_text("image\nimages/0.png\n")
    with pytest.raises(DataError, match="no labels"):
        visionfit.evaluate(bars_model, tmp_path / "test.csv", images=bars_csv.parent)


def test_eval_cli_prints_the_per_class_table(bars_model, bars_csv, tmp_path, capsys):
    main(["eval", str(bars_model), "--data", str(bars_csv), "-o", str(tmp_path / "report"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert out.startswith("accuracy ") and "macro avg" in out and "middle" in out
    assert f"report in {tmp_path / 'report'}" in out


def test_the_numbers_come_before_the_pictures(bars_model, bars_csv, tmp_path, monkeypatch):
    from visionfit.infer import plots

    events = []
    pyplot = plots._pyplot
    monkeypatch.setattr(plots, "_pyplot", lambda: events.append("pyplot") or pyplot())

    def on_numbers(report):
        events.append(("numbers", report.accuracy, sorted(p.name for p in (tmp_path / "report").iterdir())))

    report = visionfit.evaluate(bars_model, bars_csv, out=tmp_path / "report", on_numbers=on_numbers)
    assert events[0] == ("numbers", report.accuracy, ["confusion_matrix.csv", "metrics.json", "per_class.csv"])
    assert events[1:] and set(events[1:]) == {"pyplot"}  # matplotlib only after the numbers are out
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()


def test_twenty_classes_with_long_names_get_top5_and_readable_pictures(tmp_path):
    torch.manual_seed(0)
    model = with_meta(visionfit.create_model("lenet_relu", num_classes=20, in_channels=1, input_size=40),
                      "lenet_relu", 40, 1, num_classes=20)
    model.visionfit_meta["class_names"] = LONG_NAMES
    images, labels = pattern_images(200, num_classes=20, side=40)
    report = visionfit.evaluate(model, Samples(labels=labels, images=images), out=tmp_path)
    assert report.top5 is not None and report.top5 >= report.accuracy
    assert len(report.per_class) == 20 and len(report.top_losses) == 16
    assert report.top_losses[0]["loss"] >= report.top_losses[-1]["loss"]
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 10_000
    assert (tmp_path / "top_losses.png").stat().st_size > 10_000


def test_training_and_eval_score_a_photo_test_split_identically(tmp_path):
    """Validation during training and `visionfit eval` show the model the same pixels: a resnet18
    on photos of odd sizes gets exactly the same test accuracy from both."""
    root = tmp_path / "photos"
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        write_odd_photos(root / split, per_class=8 if split == "train" else 6, seed=seed)
    result = visionfit.fit("resnet18", str(root), project=str(tmp_path / "runs"), epochs=2, image_size=40,
                           batch_size=8, optimizer="adam", lr=0.001, quiet=True, workers=0)
    report = visionfit.evaluate(result.best_model, root / "test")
    assert report.images == 12
    assert result.test["acc"] == report.accuracy
    # The trainer's validation (training images in a presized store, val images through the eval view) too.
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    assert best["val_acc"] == visionfit.evaluate(result.best_model, root / "val").accuracy
    # Not only the same count of right answers: the same probabilities, so the same pixels.
    rows = visionfit.predict(result.best_model, root / "test", topk=2)
    p_true = [row["top1_prob"] if row["top1"] == row["true"] else row["top2_prob"] for row in rows]
    assert float(np.mean(-np.log(p_true))) == pytest.approx(result.test["loss"], abs=1e-5)
