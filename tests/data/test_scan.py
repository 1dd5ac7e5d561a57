"""The scan before training (data/scan.py), its use by resolve_splits, and check-data (data/check.py)."""
import re

import numpy as np
import pytest
from PIL import Image

from visionfit.cli import main
from visionfit.config import DataConfig
from visionfit.data.check import check_data
from visionfit.data.prepare import resolve_splits
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.data.scan import duplicate_groups, group_ids, label_conflicts, leaked_rows, scan_samples, with_scan
from visionfit.errors import DataError


def file_samples(paths) -> Samples:
    return Samples(labels=np.zeros(len(paths)), paths=list(paths))


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.fixture
def odd_files(tmp_path, png):
    """good.png (5 wide, 3 high, grey), same.png (its copy), rgb.png, empty.png, text.png, cut.png."""
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    files = {
        "good": png(tmp_path / "good.png", np.arange(15, dtype=np.uint8).reshape(3, 5)),
        "rgb": png(tmp_path / "rgb.png", np.zeros((4, 2, 3), dtype=np.uint8)),
        "cut": cut_in_half(png(tmp_path / "cut.png", noise)),
        "empty": tmp_path / "empty.png",
        "text": tmp_path / "text.png",
    }
    files["same"] = tmp_path / "same.png"
    files["same"].write_bytes(files["good"].read_bytes())
    files["empty"].write_bytes(b"")
    files["text"].write_text("<html>not an image</html>")
    return files


def test_scan_reads_sizes_modes_and_hashes_from_files(odd_files):
    names = ["good", "same", "rgb", "empty", "text", "cut"]
    scan = scan_samples(file_samples([odd_files[name] for name in names]))
    assert scan.sizes.tolist() == [[5, 3], [5, 3], [2, 4], [0, 0], [0, 0], [40, 40]]  # (width, height)
    assert scan.modes == ["L", "L", "RGB", "", "", "RGB"]
    assert scan.keys[0] == scan.keys[1] != scan.keys[2] and scan.keys[3] is None and scan.keys[4] is None
    assert [fault and fault[0] for fault in scan.faults] == [None, None, None, "zero-byte files", "non-image files",
                                                               None]  # headers only: the cut file looks fine


def test_decoding_fully_finds_truncated_files(odd_files):
    scan = scan_samples(file_samples([odd_files["cut"], odd_files["good"]]), decode_fully=True)
    assert scan.faults[0][0] == "truncated or corrupt images" and "truncated" in scan.faults[0][1]
    assert scan.keys[0] is None and scan.faults[1] is None


def test_unreadable_and_bomb_files_are_faults(tmp_path, png, monkeypatch):
    big = png(tmp_path / "big.png", np.zeros((30, 30), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # 900 pixels is past twice the limit: a bomb
    scan = scan_samples(file_samples([big, tmp_path / "missing.png", tmp_path]))
    assert [fault[0] for fault in scan.faults] == ["decompression bombs", "unreadable files", "unreadable files"]


def test_scan_of_arrays_hashes_pixels():
    images = np.zeros((4, 3, 5), dtype=np.uint8)
    images[1] = images[3] = 9
    scan = scan_samples(Samples(labels=[0, 1, 0, 1], images=images))
    assert scan.keys[1] == scan.keys[3] and len(set(scan.keys)) == 2  # 0 == 2 as well
    assert scan.sizes.tolist() == [[5, 3]] * 4 and scan.modes == ["L"] * 4 and scan.faults == [None] * 4
    assert scan_samples(Samples(labels=[0], images=np.zeros((1, 2, 2, 3), np.uint8))).modes == ["RGB"]


def test_subsets_keep_the_scan_aligned():
    images = np.arange(5, dtype=np.uint8)[:, None, None].repeat(2, axis=1)
    scanned = with_scan(Samples(labels=[0, 1, 0, 1, 0], images=images))
    assert with_scan(scanned) is scanned  # never scanned twice
    part = scanned.subset(np.array([4, 1]))
    assert part.scan.keys == [scanned.scan.keys[4], scanned.scan.keys[1]] and part.scan.sizes.shape == (2, 2)


def test_groups_leaks_and_conflicts_from_keys():
    keys = [b"a", b"b", b"a", None, None, b"a", b"c"]
    assert duplicate_groups(keys) == [[0, 2, 5]]  # unreadable rows (None) are never duplicates
    assert group_ids(keys).tolist() == [0, 1, 0, 3, 4, 0, 6]
    assert leaked_rows(keys, [b"c", None, b"z", b"b"]).tolist() == [0, 3]
    assert label_conflicts([[0, 2, 5], [1, 6]], np.array([1, 0, 1, 0, 0, 2, 0])) == [(0, 5)]


# --- the scan in training: resolve_splits --------------------------------------------------------


def splits_of(train_pixels, val_pixels, class_names=("a", "b")) -> DatasetSplits:
    """Arrays whose image i is filled with the given value; labels alternate 0, 1."""
    def samples(values):
        return Samples(labels=np.arange(len(values)) % 2, images=np.array(values, np.uint8)[:, None, None].repeat(3, 1))
    return DatasetSplits("arrays", list(class_names), samples(train_pixels), samples(val_pixels))


def test_resolve_splits_leaves_training_images_out_of_given_validation(capsys):
    splits = resolve_splits(DataConfig(data=splits_of([1, 2, 3, 4], [3, 7, 8])), seed=0)
    assert splits.val.images[:, 0, 0].tolist() == [7, 8]
    assert splits.train.scan.sizes.tolist() == [[1, 3]] * 4  # the sizes the preprocessing can choose by
    message = "1 of the 3 images of arrays's validation split are also training images (e.g. array[0])"
    assert message in capsys.readouterr().err


def test_resolve_splits_refuses_validation_made_only_of_training_images():
    with pytest.raises(DataError, match="every image of arrays's validation split .* is also a training image"):
        resolve_splits(DataConfig(data=splits_of([1, 2, 3, 4], [4, 1])), seed=0)


def test_resolve_splits_refuses_one_class():
    one_class = splits_of([1, 2, 3, 4], [5])
    one_class.train.labels[:] = 1
    with pytest.raises(DataError, match=r"arrays has readable images of one class only \('b'\)"):
        resolve_splits(DataConfig(data=one_class), seed=0)


# --- check-data ---------------------------------------------------------------------------------


def findings(report) -> dict[str, list[str]]:
    return {finding.check: finding.items for finding in report.findings}


def test_clean_data_has_no_problems(tmp_path, class_folders):
    report = check_data(str(class_folders(tmp_path, {"ant": 5, "bee": 5}, size=(8, 8))))
    assert report.problems == [] and "no problems found" in report.format()
    assert findings(report)["classes"] == ["ant: train 4, validation 1", "bee: train 4, validation 1"]


def test_check_data_reports_every_kind_of_file_problem(tmp_path, class_folders, odd_files):
    root = class_folders(tmp_path / "data", {"ant": 3, "bee": 3}, size=(8, 8))
    for name in ("empty", "text", "cut", "same"):
        odd_files[name].rename(root / "ant" / odd_files[name].name)
    odd_files["good"].rename(root / "bee" / "good.png")  # same.png's twin, in the other class
    report = check_data(str(root))
    found = findings(report)
    assert found["zero-byte files"] == [f"{root / 'ant' / 'empty.png'}: the file is empty (0 bytes)"]
    assert found["non-image files"] == [f"{root / 'ant' / 'text.png'}: not in any image format Pillow reads"]
    assert [item.split(":")[0] for item in found["truncated or corrupt images"]] == [str(root / "ant" / "cut.png")]
    assert found["duplicate images"] == [f"{root / 'ant' / 'same.png'} = {root / 'bee' / 'good.png'}"]
    assert found["identical images, different labels"] == [
        f"{root / 'ant' / 'same.png'} is 'ant', {root / 'bee' / 'good.png'} is 'bee'"]
    assert found["tiny images (shorter side < 8 px)"] == [f"{root / 'ant' / 'same.png'}: 5 x 3",
                                                          f"{root / 'bee' / 'good.png'}: 5 x 3"]
    assert {finding.check for finding in report.problems} >= {"zero-byte files", "non-image files",
                                                              "truncated or corrupt images", "duplicate images"}


def test_check_data_finds_validation_images_training_has(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"ant": 3, "bee": 3})
    class_folders(tmp_path / "val", {"ant": 1, "bee": 1})
    (tmp_path / "val" / "bee" / "copy.png").write_bytes((tmp_path / "train" / "ant" / "2.png").read_bytes())
    report = check_data(str(tmp_path))
    assert findings(report)["in training and validation/test"] == [
        f"{tmp_path / 'val' / 'bee' / 'copy.png'} = {tmp_path / 'train' / 'ant' / '2.png'}"]


def test_check_data_lists_every_bad_csv_row(tmp_path, png, write_csv):
    for i in range(4):
        png(tmp_path / f"{i}.png", np.full((9, 9), 40 * i, dtype=np.uint8))
    rows = ["0.png,x", "1.png,y", "2.png,", "3.png,y"] + [f"gone{i}.png,x" for i in range(8)]
    report = check_data(str(write_csv(tmp_path / "t.csv", "image,label\n" + "\n".join(rows) + "\n")), val_split=0)
    found = findings(report)
    assert found["CSV rows whose file is missing"] == [f"t.csv row {6 + i}: gone{i}.png" for i in range(8)]
    assert found["CSV rows with an empty label"] == ["t.csv row 4"]
    assert "t.csv row 13: gone7.png" in report.format()


def test_check_data_counts_classes_and_imbalance(tmp_path, png):
    for i in range(12):
        png(tmp_path / ("big" if i < 11 else "small") / f"{i}.png", np.full((8, 8), 20 * i, dtype=np.uint8))
    found = findings(check_data(str(tmp_path), val_split=0.5))
    assert found["class imbalance"] == ["largest/smallest class 11.0 (11 / 1 images)"]
    assert found["classes without validation images"] == ["small"]  # one image: it stays in training


# --- the command ----------------------------------------------------------------------------------


def run_check_data(capsys, *argv) -> tuple[int, str]:
    """The exit code (0 when main returns) and what check-data printed."""
    try:
        main(["check-data", *map(str, argv)])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().out


def test_command_exits_0_on_clean_data_and_1_on_a_problem(tmp_path, class_folders, capsys):
    root = class_folders(tmp_path, {"ant": 3, "bee": 3}, size=(8, 8))
    code, out = run_check_data(capsys, "--data", root, "--val-split", "0.3", "--seed", "1")
    assert code == 0 and "no problems found" in out and "holds out 0.3 of train for validation (seed 1)" in out
    (root / "bee" / "notes.png").write_text("not an image")
    code, out = run_check_data(capsys, "--data", root)
    assert code == 1 and "1 kind(s) of problem found" in out
    assert re.search(rf"\nnon-image files +1  PROBLEM  {root / 'bee' / 'notes.png'}: not in any image format", out)


def test_command_exits_2_on_unusable_data(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", "--data", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "visionfit: error: --data" in capsys.readouterr().err
