"""predict: row order, CSV formats, error rows, batch-size independence, TTA, top-k, input kinds."""
import csv
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import visionfit
from visionfit.checkpoints import load_model, save_model_file
from visionfit.cli import main
from visionfit.data.samples import UNLABELLED, Samples
from visionfit.errors import ConfigError, DataError
from visionfit.infer.runner import decode_sample, eval_pixels, load_classifier, read_samples

from ..conftest import pattern_images
from .conftest import save_png, with_meta


def read_csv(path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_labelled_csv_gives_one_row_per_input_row_in_order_and_eval_accuracy(bars_model, bars_csv, tmp_path):
    rows = visionfit.predict(bars_model, bars_csv, out=tmp_path / "p.csv")
    written = read_csv(bars_csv)[1:]
    assert [r["image"] for r in rows] == [image for image, _ in written]
    assert [r["true"] for r in rows] == [label for _, label in written]
    accuracy = np.mean([r["label"] == r["true"] for r in rows])
    report = visionfit.evaluate(bars_model, bars_csv, out=tmp_path / "eval")
    assert accuracy == report.accuracy and report.accuracy > 0.8  # a trained model, not chance (1/3)
    table = read_csv(tmp_path / "p.csv")
    assert table[0] == ["image", "label", "confidence", "true", "error"] and len(table) == 31


def test_unreadable_image_gets_an_error_row_and_a_count(bars_model, tmp_path, capsys):
    images, _ = pattern_images(3, seed=2)
    for i, pixels in enumerate(images):
        save_png(tmp_path / "test" / f"{i}.png", pixels)
    (tmp_path / "test" / "1b.png").write_bytes(b"\x89PNG truncated")
    main(["predict", str(bars_model), str(tmp_path / "test"), "-o", str(tmp_path / "p.csv"), "--device", "cpu"])
    table = read_csv(tmp_path / "p.csv")
    assert [row[0] for row in table[1:]] == ["0.png", "1.png", "1b.png", "2.png"]
    broken = table[3]
    assert broken[1] == "" and broken[2] == "" and "cannot read image" in broken[-1]
    assert all(row[1] and row[-1] == "" for row in table[1:] if row[0] != "1b.png")
    assert "1 image could not be read" in capsys.readouterr().err


def test_kaggle_format_is_exactly_image_label_in_input_order(bars_model, bars_csv, tmp_path):
    order = [5, 2, 9, 0]
    (tmp_path / "test.csv").write_text("image\n" + "".join(f"images/{i}\n" for i in order))  # bare ids: .png guessed
    rows = visionfit.predict(bars_model, tmp_path / "test.csv", images=bars_csv.parent, out=tmp_path / "sub.csv",
                             format="kaggle")
    table = read_csv(tmp_path / "sub.csv")
    assert table[0] == ["image", "label"]
    assert table[1:] == [[f"images/{i}", row["label"]] for i, row in zip(order, rows)]
    assert all(row["label"] in ("left", "middle", "right") for row in rows)


def test_kaggle_keeps_the_id_column_name_of_the_input_csv(bars_model, bars_csv, tmp_path):
    (tmp_path / "test.csv").write_text("ImageId\n" + "".join(f"images/{i}\n" for i in (4, 1)))
    rows = visionfit.predict(bars_model, tmp_path / "test.csv", images=bars_csv.parent, out=tmp_path / "sub.csv",
                             format="kaggle")
    assert read_csv(tmp_path / "sub.csv") == [["ImageId", "label"], ["images/4", rows[0]["label"]],
                                              ["images/1", rows[1]["label"]]]


def test_a_sample_submission_sets_the_header_the_order_and_the_probability_columns(bars_model, bars_csv, tmp_path):
    (tmp_path / "test.csv").write_text("id\n" + "".join(f"images/{i}\n" for i in (0, 1, 2)))
    (tmp_path / "sample.csv").write_text("id,right,left,middle\nimages/2,0,0,0\nimages/0,0,0,0\nimages/1,0,0,0\n")
    rows = visionfit.predict(bars_model, tmp_path / "test.csv", images=bars_csv.parent, out=tmp_path / "sub.csv",
                             format="kaggle", probs=True, sample_submission=tmp_path / "sample.csv")
    table = read_csv(tmp_path / "sub.csv")
    assert table[0] == ["id", "right", "left", "middle"]
    by_id = {row["image"]: row for row in rows}
    for line in table[1:]:
        probs = by_id[line[0]]["probs"]
        assert [float(v) for v in line[1:]] == pytest.approx([probs[c] for c in ("right", "left", "middle")], abs=1e-6)
    assert [line[0] for line in table[1:]] == ["images/2", "images/0", "images/1"]
    assert sum(rows[0]["probs"].values()) == pytest.approx(1, abs=1e-5)
    assert list(rows[0]["probs"]) == ["left", "middle", "right"]  # the model's class order


def test_an_id_missing_from_the_inputs_is_one_line_naming_the_sample_row(bars_model, bars_csv, tmp_path, capsys):
    (tmp_path / "test.csv").write_text("id\nimages/0\n")
    (tmp_path / "sample.csv").write_text("id,label\nimages/0,x\nimages/9,x\n")
    with pytest.raises(SystemExit) as exit_code:
        main(["predict", str(bars_model), str(tmp_path / "test.csv"), "--images", str(bars_csv.parent), "-o",
              str(tmp_path / "sub.csv"), "--format", "kaggle", "--sample-submission", str(tmp_path / "sample.csv")])
    error = capsys.readouterr().err
    assert exit_code.value.code == 2 and error.count("\n") == 1
    assert "sample.csv row 3: id 'images/9' is not among the inputs" in error
    assert not (tmp_path / "sub.csv").exists()


def test_results_do_not_depend_on_the_batch_size(bars_model, bars_csv):
    one = visionfit.predict(bars_model, bars_csv, batch_size=1, topk=3)
    seven = visionfit.predict(bars_model, bars_csv, batch_size=7, topk=3)
    assert [r["label"] for r in one] == [r["label"] for r in seven]
    for a, b in zip(one, seven):
        assert [a[f"top{j}_prob"] for j in (1, 2, 3)] == pytest.approx([b[f"top{j}_prob"] for j in (1, 2, 3)], abs=1e-6)


def test_topk_columns_are_the_most_probable_classes_in_order(bars_model, bars_csv, tmp_path):
    rows = visionfit.predict(bars_model, bars_csv, topk=3, out=tmp_path / "p.csv")
    for row in rows:
        probs = [row[f"top{j}_prob"] for j in (1, 2, 3)]
        assert row["top1"] == row["label"] and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1, abs=1e-5) and {row["top1"], row["top2"], row["top3"]} == {"left", "middle", "right"}
    assert read_csv(tmp_path / "p.csv")[0][3:10] == ["true", "top1", "top1_prob", "top2", "top2_prob", "top3", "top3_prob"]
    with pytest.raises(ConfigError, match="--topk 4"):
        visionfit.predict(bars_model, bars_csv, topk=4)


def test_tta_averages_the_softmax_of_the_image_and_its_mirror(bars_model, bars_csv):
    classifier = load_classifier(bars_model, "cpu")
    samples = read_samples(bars_csv, class_names=classifier.class_names)
    preset = classifier.preset
    images = [decode_sample(samples, i, preset) for i in range(len(samples))]
    x = preset.normalize(eval_pixels(images))
    with torch.no_grad():
        expected = (classifier.model(x).softmax(1) + classifier.model(x.flip(-1)).softmax(1)) / 2
    rows = visionfit.predict(bars_model, bars_csv, tta=True)
    assert [r["confidence"] for r in rows] == pytest.approx(expected.max(1).values.tolist(), abs=1e-6)
    assert [r["label"] for r in rows] == [classifier.class_names[k] for k in expected.argmax(1).tolist()]


def test_one_image_and_a_nested_folder(bars_model, bars_csv, tmp_path):
    image = bars_csv.parent / "images" / "4.png"
    (row,) = visionfit.predict(bars_model, image)
    assert row["image"] == str(image) and row["label"] in ("left", "middle", "right") and "true" not in row
    images, _ = pattern_images(2, seed=3)
    save_png(tmp_path / "a" / "deep" / "x.png", images[0])
    save_png(tmp_path / "b.png", images[1])
    rows = visionfit.predict(bars_model, tmp_path)
    assert [r["image"] for r in rows] == ["a/deep/x.png", "b.png"]


class BrightIsNaN(torch.nn.Module):
    """Logits 0 for dark images and NaN for bright ones: a model whose weights diverged on some inputs."""

    def forward(self, x):
        logits = torch.zeros(len(x), 3)
        logits[x.flatten(1).mean(1) > 0] = float("nan")
        return logits


def test_a_folder_of_images_is_listed_once(tmp_path, monkeypatch):
    for i in range(3):
        save_png(tmp_path / "test" / f"{i}.png", np.full((8, 8), i, dtype=np.uint8))
    listed = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": listed.append(Path(path)) or scandir(path))
    samples = read_samples(tmp_path / "test", class_names=["a", "b"])
    assert [p.name for p in samples.paths] == ["0.png", "1.png", "2.png"] and not samples.labelled
    assert listed == [tmp_path / "test"]


def test_a_non_finite_model_output_is_an_error_row_not_label_0(tmp_path):
    dark, bright = np.zeros((16, 16), np.uint8), np.full((16, 16), 255, np.uint8)
    model = with_meta(BrightIsNaN(), "bright_is_nan", size=16, channels=1, num_classes=3)
    rows = visionfit.predict(model, Samples(labels=[UNLABELLED] * 3, images=np.stack([dark, bright, dark])))
    assert [row["label"] for row in rows] == ["class 0", "", "class 0"]
    assert rows[1]["confidence"] is None and rows[1]["error"].startswith("the model's output is not finite")
    assert "retrain with a lower --lr" in rows[1]["error"] and rows[0]["error"] == rows[2]["error"] == ""


def test_the_cli_counts_rows_whose_output_is_not_finite(bars_model, bars_csv, tmp_path, capsys):
    model = load_model(bars_model)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))  # diverged weights
    save_model_file(tmp_path / "nan.safetensors", model, model.visionfit_meta)
    main(["predict", str(tmp_path / "nan.safetensors"), str(bars_csv), "-o", str(tmp_path / "p.csv"), "--device", "cpu"])
    table = read_csv(tmp_path / "p.csv")
    assert len(table) == 31 and all(row[1] == "" and "not finite" in row[-1] for row in table[1:])
    assert "30 images got a non-finite output from the model" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the file system takes only valid Unicode names")
def test_a_file_name_that_is_not_utf8_is_written_as_its_own_bytes(bars_model, tmp_path, capsys):
    images, _ = pattern_images(2, seed=4)
    save_png(tmp_path / "in" / "plain.png", images[0])
    save_png(Path(os.fsdecode(bytes(tmp_path / "in") + b"/caf\xe9.png")), images[1])  # Latin-1, not UTF-8
    main(["predict", str(bars_model), str(tmp_path / "in"), "-o", str(tmp_path / "p.csv"), "--device", "cpu"])
    written = (tmp_path / "p.csv").read_bytes()
    assert b"\ncaf\xe9.png," in written and b"\nplain.png," in written
    with open(tmp_path / "p.csv", newline="", encoding="utf-8", errors="surrogateescape") as file:
        names = [row[0] for row in list(csv.reader(file))[1:]]
    assert all((tmp_path / "in" / name).is_file() for name in names)  # each name leads back to its file
    assert "warning: 1 image name is not valid UTF-8" in capsys.readouterr().err


def test_a_csv_that_is_not_utf8_is_a_data_error_naming_it(bars_model, bars_csv, tmp_path):
    (tmp_path / "latin1.csv").write_bytes(b"image\nimages/caf\xe9.png\n")
    with pytest.raises(DataError, match=r"cannot read .*latin1\.csv as a UTF-8 CSV"):
        visionfit.predict(bars_model, tmp_path / "latin1.csv", images=bars_csv.parent)


def test_one_image_prints_its_top_classes_and_writes_no_file(bars_model, tmp_path, monkeypatch, capsys):
    images, _ = pattern_images(1, seed=5)  # class 0: "left"
    save_png(tmp_path / "one.png", images[0])
    monkeypatch.chdir(tmp_path)
    main(["predict", str(bars_model), "one.png", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert re.fullmatch(r"one\.png: left \(\d+\.\d%\), (middle|right) \(\d+\.\d%\), (middle|right) \(\d+\.\d%\)\n", out)
    percents = [float(p) for p in re.findall(r"\((\d+\.\d)%\)", out)]
    assert percents == sorted(percents, reverse=True) and abs(sum(percents) - 100) < 0.2
    assert not (tmp_path / "predictions.csv").exists() and err == ""


def test_a_few_images_are_printed_as_well_as_written(bars_model, tmp_path, capsys):
    images, _ = pattern_images(3, seed=2)
    for i, pixels in enumerate(images):
        save_png(tmp_path / "few" / f"{i}.png", pixels)
    main(["predict", str(bars_model), str(tmp_path / "few"), "-o", str(tmp_path / "p.csv"), "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["0.png", "1.png", "2.png"]
    assert lines[3] == f"wrote 3 predictions to {tmp_path / 'p.csv'}"
    rows = read_csv(tmp_path / "p.csv")
    assert [f"{row[0]}: {row[1]} ({float(row[2]):.1%})" for row in rows[1:]] == lines[:3]
