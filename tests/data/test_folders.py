"""Folder-per-class and train/val/test split folders."""
import numpy as np
import pytest
from PIL import Image

from visionfit.data.folders import image_files, load_class_folders, load_image_folder, load_split_folders
from visionfit.data.samples import UNLABELLED
from visionfit.errors import DataError


def first_pixel(path) -> int:
    return int(np.asarray(Image.open(path))[0, 0])


def test_class_folders_sorted_with_matching_labels(tmp_path, class_folders):
    class_folders(tmp_path, {"dog": 2, "cat": 3, "ant": 1})
    names, samples = load_class_folders(tmp_path)
    assert names == ["ant", "cat", "dog"]
    np.testing.assert_array_equal(samples.labels, [0, 1, 1, 1, 2, 2])
    # The fixture fills image i of class c with 10 * c + i: files and labels stay aligned.
    assert [first_pixel(p) for p in samples.paths] == [0, 10, 11, 12, 20, 21]


def test_image_files_recursive_by_extension_skipping_hidden(tmp_path):
    names = ["a.PNG", "b.jpeg", "sub/c.png", "sub/deeper/d.webp", ".hidden.png", ".cache/e.png", "notes.txt", "f.tiff"]
    for name in names:  # listing looks at names only, so empty files will do
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)]
    assert found == ["a.PNG", "b.jpeg", "f.tiff", "sub/c.png", "sub/deeper/d.webp"]


def test_empty_class_folder_is_named(tmp_path, class_folders):
    class_folders(tmp_path, {"cat": 1})
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"dog has no images.*add images or remove the folder"):
        load_class_folders(tmp_path)


def test_hidden_folders_are_not_classes(tmp_path, class_folders):
    class_folders(tmp_path, {"cat": 1, "dog": 1})
    (tmp_path / ".ipynb_checkpoints").mkdir()
    assert load_class_folders(tmp_path)[0] == ["cat", "dog"]


def test_split_folders_use_train_classes_for_val_and_test(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"bees": 2, "ants": 2})
    class_folders(tmp_path / "Valid", {"bees": 1})  # folder name matched case-insensitively
    class_folders(tmp_path / "test", {"ants": 1, "bees": 1})
    splits = load_split_folders(tmp_path)
    assert splits.class_names == ["ants", "bees"]
    np.testing.assert_array_equal(splits.val.labels, [1])  # bees is index 1 of train's classes
    np.testing.assert_array_equal(splits.test.labels, [0, 1])


def test_val_class_missing_from_train_is_named(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"ants": 1, "bees": 1})
    class_folders(tmp_path / "val", {"wasps": 1})
    with pytest.raises(DataError, match="'wasps'.*training data does not have"):
        load_split_folders(tmp_path)


def test_flat_folder_is_unlabelled_for_prediction(tmp_path, png):
    for i in range(3):
        png(tmp_path / f"{i}.png", np.zeros((2, 2), dtype=np.uint8))
    samples = load_image_folder(tmp_path, ["cat", "dog"])
    assert len(samples) == 3 and (samples.labels == UNLABELLED).all() and not samples.labelled


def test_a_folder_link_that_loops_lists_each_file_once(tmp_path, class_folders):
    class_folders(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "cat" / "again").symlink_to("../cat")  # os.walk would go 40 levels deep
    (tmp_path / "cat" / "up").symlink_to("..")  # and this one would pull dog/ into cat
    names, samples = load_class_folders(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in samples.paths] == ["cat/0.png", "cat/1.png", "dog/0.png",
                                                                          "dog/1.png"]
    np.testing.assert_array_equal(samples.labels, [0, 0, 1, 1])


def test_a_file_reached_twice_is_listed_once_by_its_first_path(tmp_path, png):
    png(tmp_path / "b.png", np.zeros((2, 2), dtype=np.uint8))
    (tmp_path / "a_link.png").symlink_to("b.png")  # same file, reached first by name
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").symlink_to("../b.png")
    assert [p.name for p in image_files(tmp_path)] == ["a_link.png"]


def test_a_class_folder_of_links_to_another_class_is_named(tmp_path, class_folders):
    class_folders(tmp_path, {"cat": 2})
    (tmp_path / "kitten").symlink_to("cat")
    with pytest.raises(DataError, match="kitten holds only links to images another class folder already has"):
        load_class_folders(tmp_path)
