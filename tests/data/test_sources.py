"""resolve(): which source --data means, and where validation comes from."""
import numpy as np
import pytest

from visionfit.data.samples import Samples
from visionfit.data.sources import resolve
from visionfit.data.validation import split_train_val
from visionfit.errors import ConfigError, DataError


def labelled(counts: list[int]) -> Samples:
    labels = np.repeat(np.arange(len(counts)), counts)
    return Samples(labels=labels, images=np.arange(len(labels), dtype=np.uint8)[:, None, None])


def rows(samples: Samples) -> list[int]:
    """Which source rows a split holds (each test image's pixel is its row number)."""
    return samples.images[:, 0, 0].tolist()


def test_no_data_is_the_embedded_sample():
    splits = resolve(None)
    assert splits.name == "mnist-sample" and len(splits.train) == 12000 and len(splits.val) == 2000


def test_class_folders_hold_out_a_fifth_of_each_class_by_default(tmp_path, class_folders):
    class_folders(tmp_path, {"a": 10, "b": 5})
    splits = resolve(tmp_path)
    assert np.bincount(splits.val.labels).tolist() == [2, 1]
    assert np.bincount(splits.train.labels).tolist() == [8, 4]
    assert not set(splits.val.paths) & set(splits.train.paths)
    assert splits.train.paths == sorted(splits.train.paths)  # source order kept


def test_split_is_seeded():
    samples = labelled([50, 50])
    first, again, other = (rows(split_train_val(samples, 0.3, seed)[1]) for seed in (1, 1, 2))
    assert first == again and first != other
    assert len(first) == 30


def test_every_class_keeps_a_training_sample():
    train, val = split_train_val(labelled([1, 2, 20]), 0.9, seed=0)
    assert np.bincount(train.labels).tolist() == [1, 1, 2]
    assert np.bincount(val.labels, minlength=3).tolist() == [0, 1, 18]
    assert sorted(rows(train) + rows(val)) == list(range(23))


def test_every_class_of_two_or_more_gives_validation_an_image():
    # 0.1 of 2, 3 or 4 images rounds to none; each class still gets one.
    train, val = split_train_val(labelled([2, 3, 4, 30]), 0.1, seed=0)
    assert np.bincount(val.labels).tolist() == [1, 1, 1, 3]
    assert np.bincount(train.labels).tolist() == [1, 2, 3, 27]


def test_identical_images_land_on_one_side_of_the_split():
    samples = labelled([10, 10])
    groups = np.arange(20)
    groups[[1, 4, 7, 9]] = 1  # four copies of one image in class 0
    groups[[12, 15]] = 12  # two in class 1
    for seed in range(20):
        train, val = split_train_val(samples, 0.3, seed, groups)
        for copies in ([1, 4, 7, 9], [12, 15]):
            assert set(copies) <= set(rows(train)) or set(copies) <= set(rows(val))
        assert np.bincount(val.labels).tolist() == [3, 3] and len(train) == 14


def test_val_split_zero_means_no_validation(tmp_path, class_folders):
    class_folders(tmp_path, {"a": 3, "b": 3})
    splits = resolve(tmp_path, val_split=0)
    assert splits.val is None and len(splits.train) == 6


def test_own_validation_plus_val_split_is_refused(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"a": 2, "b": 2})
    class_folders(tmp_path / "val", {"a": 1})
    assert len(resolve(tmp_path).val) == 1
    with pytest.raises(ConfigError, match="drop one"):
        resolve(tmp_path, val_split=0.2)


def test_val_data_uses_train_class_indices(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"ants": 2, "bees": 2})
    class_folders(tmp_path / "extra", {"bees": 1})
    splits = resolve(tmp_path / "train", val_data=str(tmp_path / "extra"))
    assert len(splits.train) == 4  # no hold-out when --val-data is given
    np.testing.assert_array_equal(splits.val.labels, [1])
    with pytest.raises(ConfigError, match="--val-data .* and --val-split"):
        resolve(tmp_path / "train", val_data=str(tmp_path / "extra"), val_split=0.1)


def test_val_data_class_unknown_to_train_is_named(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"ants": 2, "bees": 2})
    class_folders(tmp_path / "extra", {"wasps": 1})
    with pytest.raises(DataError, match="wasps"):
        resolve(tmp_path / "train", val_data=str(tmp_path / "extra"))


def test_csv_dispatch_and_unlabelled_csv_is_a_test_set(tmp_path, png, write_csv):
    for i in range(4):
        png(tmp_path / f"{i}.png", np.full((2, 2), i, dtype=np.uint8))
    write_csv(tmp_path / "train.CSV", "image,label\n0.png,x\n1.png,y\n2.png,x\n3.png,y\n")
    write_csv(tmp_path / "test.csv", "image\n0.png\n1.png\n")
    train = resolve(tmp_path / "train.CSV", val_split=0.5)
    assert train.class_names == ["x", "y"] and len(train.train) == 2 and len(train.val) == 2
    test = resolve(str(tmp_path / "test.csv"))
    assert test.train is None and test.class_names == [] and len(test.test) == 2


def test_idx_folder_dispatch(tmp_path, write_idx):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 0, 1], dtype=np.uint8))
    splits = resolve(tmp_path, val_split=0)
    assert splits.class_names == ["0", "1"] and splits.train.images.shape == (4, 2, 2)


@pytest.mark.parametrize("make", ["missing", "text-file", "empty-folder"])
def test_unusable_data_is_named_with_accepted_forms(tmp_path, make):
    target = tmp_path / "thing"
    if make == "text-file":
        target.write_text("hello")
    elif make == "empty-folder":
        target.mkdir()
    with pytest.raises(DataError) as error:
        resolve(target)
    assert str(target) in str(error.value) and "one subfolder of images per class" in str(error.value)


def test_one_class_is_refused_naming_data_and_class(tmp_path, class_folders):
    class_folders(tmp_path / "pets", {"cat": 3})
    with pytest.raises(DataError, match=r"pets has images of one class only \('cat'\)"):
        resolve(tmp_path / "pets")


def test_val_data_that_is_the_training_data_is_refused(tmp_path, class_folders):
    class_folders(tmp_path / "pets", {"cat": 2, "dog": 2})
    with pytest.raises(ConfigError, match="--val-data .* is --data .* itself"):
        resolve(tmp_path / "pets", val_data=str(tmp_path / "." / "pets"))


def test_duplicates_stay_on_one_side_and_are_reported(tmp_path, class_folders, capsys):
    root = class_folders(tmp_path, {"cat": 5, "dog": 5})
    for i in range(3):  # cat/0.png three more times
        (root / "cat" / f"copy{i}.png").write_bytes((root / "cat" / "0.png").read_bytes())
    splits = resolve(root, val_split=0.5)
    copies = {str(root / "cat" / name) for name in ("0.png", "copy0.png", "copy1.png", "copy2.png")}
    train, val = set(map(str, splits.train.paths)), set(map(str, splits.val.paths))
    assert copies <= train or copies <= val
    assert "3 images duplicate others (1 group, e.g." in capsys.readouterr().err


def test_validation_images_training_has_are_left_out(tmp_path, class_folders, capsys):
    class_folders(tmp_path / "train", {"cat": 3, "dog": 3})
    class_folders(tmp_path / "val", {"cat": 2, "dog": 1})
    (tmp_path / "val" / "dog" / "seen.png").write_bytes((tmp_path / "train" / "dog" / "1.png").read_bytes())
    splits = resolve(tmp_path)
    assert len(splits.val) == 3 and tmp_path / "val" / "dog" / "seen.png" not in splits.val.paths
    assert f"1 of the 4 images of {tmp_path.name}'s validation split are also training images (e.g. " \
           f"{tmp_path / 'val' / 'dog' / 'seen.png'})" in capsys.readouterr().err


def test_a_class_with_one_image_is_named_as_left_out_of_validation(tmp_path, class_folders, capsys):
    class_folders(tmp_path, {"cat": 4, "dog": 4, "eel": 1})
    splits = resolve(tmp_path)
    assert np.bincount(splits.val.labels, minlength=3).tolist() == [1, 1, 0]
    assert "classes without validation images (one image, or only identical copies): eel" in capsys.readouterr().err


def test_a_class_whose_files_are_all_unreadable_leaves_one_class_and_is_refused(tmp_path, class_folders):
    class_folders(tmp_path / "pets", {"cat": 3, "dog": 2})
    for i in range(2):
        (tmp_path / "pets" / "dog" / f"{i}.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"pets has readable images of one class only \('cat'\)"):
        resolve(tmp_path / "pets")
