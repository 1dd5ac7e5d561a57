"""Hostile CSV files: each is refused with one line naming the file, row or flag (exit 2),
or read right; check-data lists every bad row where training stops at the first few."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionfit.cli import main

from .conftest import cli_error

TRAIN = ["--epochs", "1", "--image-size", "16", "--batch-size", "8", "--quiet", "--workers", "0"]


@pytest.fixture
def images(tmp_path) -> Path:
    """images/0.png .. images/7.png, all different."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def rows(labels) -> str:
    return "".join(f"{i}.png,{label}\n" for i, label in enumerate(labels))


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "train.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def train(csv: Path, images: Path, *flags) -> dict:
    runs = csv.parent / "runs"
    main(["train", "--data", str(csv), "--images", str(images), *flags, *TRAIN, "--project", str(runs)])
    return json.loads((runs / "exp" / "summary.json").read_text())


def check_data(capsys, csv: Path, images: Path) -> tuple[int, str]:
    try:
        main(["check-data", "--data", str(csv), "--images", str(images)])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().out


CATS_AND_DOGS = ["cat", "dog"] * 4

# name -> (file content, extra flags, what the one-line error says)
REFUSED = {
    "header-only": ("image,label\n", [], "has a header but no rows"),
    "no-header": (rows(CATS_AND_DOGS), [], "row 1 (0.png,cat) looks like data, not a header"),
    "image-weight-header": ("image,weight\n" + rows([0.5, 2.0] * 4), [], "no label column"),
    "unknown-label-column": ("image,label\n" + rows(CATS_AND_DOGS), ["--label-column", "kind"],
                             "--label-column kind: "),
    "non-utf8-bytes": (b"image,label\n0.png,ch\xe2t\n1.png,d\xf6g\n", [], "as a UTF-8 CSV"),
    "single-class": ("image,label\n" + rows(["cat"] * 8), [], "images of one class only ('cat')"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_csv_refused_with_one_line(tmp_path, images, capsys, case):
    content, flags, message = REFUSED[case]
    csv = write(tmp_path, content)
    line = cli_error(capsys, "train", "--data", csv, "--images", images, *flags, *TRAIN)
    assert message in line and (str(csv) in line or csv.stem in line)


def test_image_weight_header_asks_for_label_column_then_trains_with_it(tmp_path, images, capsys):
    weighted = "".join(f"{i}.png,0.5,{label}\n" for i, label in enumerate(CATS_AND_DOGS))
    csv = write(tmp_path, "image,weight,kind\n" + weighted)
    assert "--label-column NAME" in cli_error(capsys, "train", "--data", csv, "--images", images, *TRAIN)
    assert train(csv, images, "--label-column", "kind")["classes"] == ["cat", "dog"]


def test_empty_label_cells_refused_by_train_and_all_listed_by_check_data(tmp_path, images, capsys):
    csv = write(tmp_path, "image,label\n" + rows(["cat", "", "cat", "dog", "", "dog", "cat", "dog"]))
    assert "2 row(s) have an empty 'label' cell, e.g. row 3, row 6" in cli_error(
        capsys, "train", "--data", csv, "--images", images, *TRAIN)
    code, table = check_data(capsys, csv, images)
    assert code == 1 and "CSV rows with an empty label (2):\n  train.csv row 3\n  train.csv row 6\n" in table


def test_missing_file_rows_refused_by_train_and_all_listed_by_check_data(tmp_path, images, capsys):
    missing = "".join(f"gone{i}.png,dog\n" for i in range(7))
    csv = write(tmp_path, "image,label\n" + rows(CATS_AND_DOGS) + missing)
    line = cli_error(capsys, "train", "--data", csv, "--images", images, *TRAIN)
    assert "7 image file(s) not found" in line and "gone5" not in line  # the message names five
    code, table = check_data(capsys, csv, images)
    listed = [f"  train.csv row {10 + i}: gone{i}.png" for i in range(7)]
    assert code == 1 and "CSV rows whose file is missing (7):\n" + "\n".join(listed) in table


def test_duplicated_rows_stay_on_one_side_and_are_reported(tmp_path, images, capsys):
    csv = write(tmp_path, "image,label\n" + rows(CATS_AND_DOGS) + "0.png,cat\n0.png,cat\n")
    summary = train(csv, images, "--val-split", "0.5")
    assert summary["train_images"] + summary["val_images"] == 10
    assert "2 images duplicate others (1 group" in capsys.readouterr().err
    code, table = check_data(capsys, csv, images)
    same = images / "0.png"
    assert code == 1 and f"duplicate images (1):\n  {same} = {same} = {same}" in table


@pytest.mark.parametrize("content", [
    pytest.param("\ufeffimage,label\n" + rows(CATS_AND_DOGS), id="byte-order-mark"),
    pytest.param("image;label\n" + rows(CATS_AND_DOGS).replace(",", ";"), id="semicolon-separated"),
])
def test_spreadsheet_csv_variants_train(tmp_path, images, content):
    summary = train(write(tmp_path, content), images)
    assert summary["classes"] == ["cat", "dog"] and summary["train_images"] + summary["val_images"] == 8
