import numpy as np
import pytest

from visionfit.data.sources import evaluation_split
from visionfit.errors import DataError


def test_an_idx_folder_is_evaluated_on_its_t10k_split(tmp_path, write_idx):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 255, (6, 4, 4), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 255, (3, 4, 4), dtype=np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([2, 1, 0], dtype=np.uint8))
    held_out = evaluation_split(tmp_path, class_names=["0", "1", "2"])
    assert len(held_out) == 3 and held_out.labels.tolist() == [2, 1, 0]


def test_split_folders_are_evaluated_on_test_relabelled_to_the_models_order(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"ants": 2, "bees": 2})
    class_folders(tmp_path / "val", {"ants": 1, "bees": 1})
    class_folders(tmp_path / "test", {"ants": 1, "bees": 2})
    held_out = evaluation_split(tmp_path, class_names=["bees", "ants"])  # a model with another order
    assert sorted(held_out.labels.tolist()) == [0, 0, 1]
    assert all(("bees" in o) == (label == 0) for o, label in zip(held_out.origin, held_out.labels))


def test_classes_the_model_does_not_know_are_refused(tmp_path, class_folders):
    class_folders(tmp_path / "train", {"ants": 2, "wasps": 2})
    class_folders(tmp_path / "val", {"ants": 1, "wasps": 1})
    with pytest.raises(DataError, match="wasps"):
        evaluation_split(tmp_path, class_names=["ants", "bees"])


def test_a_plain_class_folder_is_left_to_load_split(tmp_path, class_folders):
    class_folders(tmp_path, {"ants": 1})
    assert evaluation_split(tmp_path, class_names=["ants"]) is None
