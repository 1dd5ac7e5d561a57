"""Hostile folders, links and IDX files: no image is counted twice or validated on after
training on it; what cannot be trained on is refused with one line (exit 2)."""
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionfit.cli import main

from .conftest import cli_error

TRAIN = ["--epochs", "1", "--image-size", "16", "--batch-size", "8", "--quiet", "--workers", "0"]


def class_tree(root: Path, classes=("cat", "dog"), per_class: int = 4, seed: int = 0) -> Path:
    """root/<class>/<i>.png, every image different (seeded noise)."""
    rng = np.random.default_rng(seed)
    for label in classes:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def train(tmp_path: Path, *argv) -> dict:
    main(["train", *map(str, argv), *TRAIN, "--project", str(tmp_path / "runs")])
    return json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())


def images_seen(summary: dict) -> int:
    return summary["train_images"] + summary["val_images"]


def test_symlink_loop_lists_each_image_once(tmp_path, capsys):
    root = class_tree(tmp_path / "data")
    (root / "cat" / "again").symlink_to("../cat")  # walked blindly: cat's images 41 times over
    assert images_seen(train(tmp_path, "--data", root)) == 8
    main(["check-data", "--data", str(root)])  # returns: exit code 0
    assert re.search(r"\nduplicate images +0  ok", capsys.readouterr().out)


def test_two_links_to_one_file_list_it_once(tmp_path):
    root = class_tree(tmp_path / "data")
    (root / "cat" / "link1.png").symlink_to("0.png")
    (root / "cat" / "link2.png").symlink_to(root / "cat" / "0.png")
    assert images_seen(train(tmp_path, "--data", root)) == 8


def test_hidden_folders_are_neither_classes_nor_images(tmp_path):
    root = class_tree(tmp_path / "data")
    class_tree(root / ".ipynb_checkpoints", classes=("x",), seed=1)
    class_tree(root / "cat" / ".thumbnails", classes=("y",), seed=2)
    summary = train(tmp_path, "--data", root)
    assert summary["classes"] == ["cat", "dog"] and images_seen(summary) == 8


def test_empty_class_folder_is_refused(tmp_path, capsys):
    root = class_tree(tmp_path / "data")
    (root / "eel").mkdir()
    assert "class folder" in cli_error(capsys, "train", "--data", root, *TRAIN)


def test_single_class_is_refused(tmp_path, capsys):
    root = class_tree(tmp_path / "data", classes=("cat",))
    assert "data has images of one class only ('cat')" in cli_error(capsys, "train", "--data", root, *TRAIN)


def test_val_data_same_as_data_is_refused(tmp_path, capsys):
    root = class_tree(tmp_path / "data")
    line = cli_error(capsys, "train", "--data", root, "--val-data", f"{root}/", *TRAIN)
    assert "--val-data" in line and "is --data" in line


def test_val_folder_copying_train_is_refused(tmp_path, capsys):
    class_tree(tmp_path / "data" / "train")
    class_tree(tmp_path / "data" / "val")  # the same seed: the very same images
    line = cli_error(capsys, "train", "--data", tmp_path / "data", *TRAIN)
    assert "every image of data's validation split (8) is also a training image" in line


def test_val_folder_partly_copying_train_loses_the_copies(tmp_path, capsys):
    class_tree(tmp_path / "data" / "train")
    val = class_tree(tmp_path / "data" / "val", seed=1)
    (val / "dog" / "seen.png").write_bytes((tmp_path / "data" / "train" / "cat" / "3.png").read_bytes())
    summary = train(tmp_path, "--data", tmp_path / "data")
    assert summary["val_images"] == 8
    assert f"1 of the 9 images of data's validation split are also training images (e.g. {val / 'dog' / 'seen.png'})" \
           in capsys.readouterr().err


def test_val_data_copying_train_is_refused(tmp_path, capsys):
    root = class_tree(tmp_path / "data")
    copy = class_tree(tmp_path / "copy")
    assert "is also a training image" in cli_error(capsys, "train", "--data", root, "--val-data", copy, *TRAIN)


def idx_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 8, 8), dtype=np.uint8), np.arange(16, dtype=np.uint8) % 2
    for name, array in (("train-images-idx3-ubyte.gz", images), ("train-labels-idx1-ubyte.gz", labels)):
        header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(gzip.compress(header + array.tobytes()))
    return root


@pytest.mark.parametrize("damage, message", [
    pytest.param(lambda packed: packed[:10] + b"\xff" + packed[11:], "invalid block type", id="idx-corrupt-gzip"),
    pytest.param(lambda packed: gzip.compress(gzip.decompress(packed)[:-100]), "should hold 1040 bytes",
                 id="idx-truncated"),
])
def test_damaged_idx_file_is_refused_naming_it(tmp_path, capsys, damage, message):
    path = idx_folder(tmp_path / "mnist") / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    line = cli_error(capsys, "train", "--data", tmp_path / "mnist", *TRAIN)
    assert message in line and str(path) in line
