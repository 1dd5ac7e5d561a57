"""The CLI: errors before work (one line, exit code 2, no traceback) and end-to-end runs."""
import json

import numpy as np
import pytest
from PIL import Image

from visionfit.cli import main


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    err = capsys.readouterr().err
    return exit_info.value.code, err


def photo_folders(root, classes=("ants", "bees"), per_class=6, seed=0):
    """Class folders of RGB JPEGs of different sizes; class = dominant colour channel."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = rng.integers(30, 60, size=2)
            pixels = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.jpg")
    return root


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0"], "--lr must be > 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--model", "resnet81"], "Did you mean resnet18"),
    (["--data", "no/such/folder"], "--data no/such/folder does not exist"),
])
def test_bad_flags_fail_fast_with_one_line_and_exit_code_2(capsys, argv, message):
    code, err = run_cli(capsys, "train", *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_class_folder_without_images_is_named(capsys, tmp_path):
    data = photo_folders(tmp_path / "data")
    (data / "wasps").mkdir()
    code, err = run_cli(capsys, "train", "--data", str(data), "--project", str(tmp_path / "runs"))
    assert code == 2 and "wasps" in err and "Traceback" not in err


def test_a_csv_without_a_label_column_cannot_be_trained_on(capsys, tmp_path):
    photo_folders(tmp_path / "images")
    (tmp_path / "test.csv").write_text("image\nants/0.jpg\nbees/1.jpg\n")
    code, err = run_cli(capsys, "train", "--data", str(tmp_path / "test.csv"), "--images", str(tmp_path / "images"))
    assert code == 2 and "no labelled training images" in err


def test_a_csv_row_pointing_at_a_missing_file_is_named(capsys, tmp_path):
    photo_folders(tmp_path / "images")
    (tmp_path / "train.csv").write_text("image,label\nants/0.jpg,ants\nants/nope.jpg,ants\nbees/1.jpg,bees\n")
    code, err = run_cli(capsys, "train", "--data", str(tmp_path / "train.csv"), "--images", str(tmp_path / "images"))
    assert code == 2 and "row 3" in err and "nope.jpg" in err


def test_bad_images_are_skipped_and_counted_not_fatal(capsys, tmp_path):
    data = photo_folders(tmp_path / "data")
    (data / "ants" / "broken.jpg").write_bytes(b"not a jpeg at all")
    main(["train", "--data", str(data), "--model", "lenet_relu", "--image-size", "32", "--epochs", "1",
          "--batch-size", "4", "--quiet", "--project", str(tmp_path / "runs"), "--workers", "0"])
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())
    assert [p.endswith("broken.jpg") for p in summary["skipped_images"]] == [True]
    assert "skipped 1 unreadable images" in err


def test_train_on_photo_folders_with_a_csv_and_val_split(capsys, tmp_path):
    photo_folders(tmp_path / "images", per_class=10)
    rows = [f"{c}/{i}.jpg,{c}" for c in ("ants", "bees") for i in range(10)]
    (tmp_path / "train.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    main(["train", "--data", str(tmp_path / "train.csv"), "--images", str(tmp_path / "images"), "--val-split", "0.2",
          "--model", "lenet_relu", "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--quiet",
          "--project", str(tmp_path / "runs"), "--workers", "1"])
    summary = json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())
    assert summary["train_images"] == 16 and summary["val_images"] == 4
    assert summary["classes"] == ["ants", "bees"]


def test_models_lists_classic_and_torchvision_names(capsys):
    main(["models", "resnet"])
    out = capsys.readouterr().out
    assert "resnet18_d2l" in out and "resnet18" in out and "timm:resnet18" in out


def test_without_a_cache_a_file_that_breaks_mid_run_is_skipped_and_counted(capsys, tmp_path):
    data = photo_folders(tmp_path / "data", per_class=8)
    (data / "bees" / "3.jpg").write_bytes(b"\xff\xd8 truncated")  # decoded only when a batch needs it
    main(["train", "--data", str(data), "--cache", "none", "--val-split", "0.25", "--model", "lenet_relu",
          "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--quiet", "--workers", "2",
          "--project", str(tmp_path / "runs")])
    summary = json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())
    assert len(summary["skipped_images"]) == 1 and summary["skipped_images"][0].endswith("3.jpg")
    assert summary["epochs_run"] == 2
