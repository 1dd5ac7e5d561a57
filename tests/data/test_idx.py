"""IDX parsing and IDX folders as datasets."""
import gzip

import numpy as np
import pytest

from visionfit.data.idx import load_idx_folder, read_idx
from visionfit.errors import DataError


def digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 5, 4), dtype=np.uint8), (np.arange(count) % 10).astype(np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_images_and_labels(tmp_path, write_idx, gz):
    images, labels = digits(7, seed=0)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "i", images, gz)), images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l", labels, gz)), labels)


def test_read_idx_reads_big_endian_wider_types(tmp_path):
    values = np.array([[1, -2, 70000]], dtype=np.int32)
    header = bytes([0, 0, 0x0C, 2]) + np.array([1, 3], dtype=">u4").tobytes()
    path = tmp_path / "ints.idx"
    path.write_bytes(header + values.astype(">i4").tobytes())
    read = read_idx(path)
    np.testing.assert_array_equal(read, values)
    assert read.dtype.isnative


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n....", "not an IDX file"),
        (bytes([0, 0, 8, 3]) + np.array([2, 2], dtype=">u4").tobytes(), "truncated"),
        (bytes([0, 0, 8, 1]) + np.array([5], dtype=">u4").tobytes() + b"\x01\x02", "should hold 13 bytes"),
    ],
)
def test_read_idx_rejects_bad_files_naming_them(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(DataError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_idx_folder_gives_train_and_t10k_as_val(tmp_path, write_idx):
    train_images, train_labels = digits(20, seed=1)
    val_images, val_labels = digits(10, seed=2)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train_images, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", train_labels, gz=True)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", val_images)  # Kaggle's dotted spelling, raw
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", val_labels)
    splits = load_idx_folder(tmp_path)
    assert splits.class_names == [str(d) for d in range(10)]
    np.testing.assert_array_equal(splits.train.images, train_images)
    np.testing.assert_array_equal(splits.train.labels, train_labels)
    np.testing.assert_array_equal(splits.val.images, val_images)
    assert splits.train.origin[3] == "train-images-idx3-ubyte.gz[3]"


def test_idx_folder_class_names_are_sorted_label_values(tmp_path, write_idx):
    images, _ = digits(4, seed=3)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([12, 3, 12, 7], dtype=np.uint8))
    splits = load_idx_folder(tmp_path)
    assert splits.class_names == ["3", "7", "12"]
    np.testing.assert_array_equal(splits.train.labels, [2, 0, 2, 1])
    assert splits.val is None


def test_idx_folder_count_mismatch_names_both_files(tmp_path, write_idx):
    images, labels = digits(5, seed=4)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:4])
    with pytest.raises(DataError, match="5 images but .*train-labels-idx1-ubyte holds 4 labels"):
        load_idx_folder(tmp_path)


def test_idx_folder_without_train_labels_says_which_file(tmp_path, write_idx):
    images, _ = digits(5, seed=5)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        load_idx_folder(tmp_path)


def test_val_label_unknown_to_train_is_refused(tmp_path, write_idx):
    images, _ = digits(3, seed=6)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 1], dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 9], dtype=np.uint8))
    with pytest.raises(DataError, match="label 9"):
        load_idx_folder(tmp_path)


def gzip_damaged_in_its_deflate_stream(content: bytes) -> bytes:
    packed = bytearray(gzip.compress(content))
    packed[10] = 0xFF  # the first deflate block header, right after the 10-byte gzip header
    return bytes(packed)  # zlib.error: invalid block type


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(gzip_damaged_in_its_deflate_stream, id="corrupt-deflate"),
        pytest.param(lambda content: gzip.compress(content)[:-30], id="cut-gzip"),
        pytest.param(lambda content: b"\x1f\x8b" + b"\x00" * 30, id="bad-gzip-header"),
    ],
)
def test_read_idx_damaged_gzip_is_a_data_error_naming_the_file(tmp_path, make):
    images, _ = digits(40, seed=7)
    content = bytes([0, 0, 8, 3]) + np.array(images.shape, dtype=">u4").tobytes() + images.tobytes()
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(make(content))
    with pytest.raises(DataError, match="cannot read .*; check the file, or download it again") as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_read_idx_with_bytes_past_its_shape_is_refused(tmp_path, write_idx):
    path = write_idx(tmp_path / "labels", np.arange(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="should hold 13 bytes for shape \\(5,\\) but holds more"):
        read_idx(path)


def test_read_idx_declaring_a_vast_shape_is_refused_without_allocating_it(tmp_path):
    path = tmp_path / "vast"
    path.write_bytes(bytes([0, 0, 8, 3]) + np.array([2**31, 2**31, 2**31], dtype=">u4").tobytes() + b"\x00" * 8)
    with pytest.raises(DataError, match="but holds 24;"):
        read_idx(path)
