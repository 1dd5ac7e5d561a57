"""Named datasets through torchvision, with no network: the files are made in tmp_path.

MNIST and Fashion-MNIST only check that their raw IDX files exist, so real torchvision
code runs end to end. CIFAR-10 checks md5 sums of the real files, which made-up files
cannot match, so that one check (torchvision.datasets.cifar.check_integrity) is patched.
"""
import os
import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torchvision.datasets.cifar
import torchvision.datasets.mnist

from visionfit.data.named import named_key
from visionfit.data.sources import resolve
from visionfit.errors import DataError


def write_mnist_raw(root, folder: str, write_idx) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([0, 1, 2, 3, 4, 9], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 8, 9], dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(root / folder / "raw" / name, array)
    return arrays


@pytest.mark.parametrize(
    "spelling, folder, first_class",
    [
        ("MNIST", "MNIST", "0 - zero"),
        ("fashion_mnist", "FashionMNIST", "T-shirt/top"),
        ("FashionMNIST", "FashionMNIST", "T-shirt/top"),
    ],
)
def test_mnist_family_from_files_torchvision_finds(tmp_path, write_idx, spelling, folder, first_class):
    arrays = write_mnist_raw(tmp_path, folder, write_idx)
    splits = resolve(spelling, download_dir=str(tmp_path))
    assert splits.class_names[0] == first_class and len(splits.class_names) == 10
    np.testing.assert_array_equal(splits.train.images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(splits.train.labels, [0, 1, 2, 3, 4, 9])
    np.testing.assert_array_equal(splits.val.images, arrays["t10k-images-idx3-ubyte"])
    assert splits.val.labels.dtype == np.int64 and splits.train.images.dtype == np.uint8


def test_cifar10_batches_become_hwc_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    planes = np.repeat(np.array([10, 20, 30], dtype=np.uint8), 1024)  # R plane, G plane, B plane
    # Each batch brightened by its number, so no test image repeats a training image.
    for offset, batch in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        with open(folder / batch, "wb") as file:
            pickle.dump({"data": np.stack([planes + offset, planes // 2 + offset]), "labels": [3, 8]}, file)
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({"label_names": names}, file)
    splits = resolve("CIFAR10", download_dir=str(tmp_path))
    assert splits.class_names == names
    assert splits.train.images.shape == (10, 32, 32, 3) and splits.val.images.shape == (2, 32, 32, 3)
    assert splits.train.images[0, 5, 7].tolist() == [10, 20, 30]
    assert splits.train.images[1, 0, 0].tolist() == [5, 10, 15]
    np.testing.assert_array_equal(splits.val.labels, [3, 8])


@pytest.mark.parametrize(
    "name, module", [("mnist", torchvision.datasets.mnist), ("cifar10", torchvision.datasets.cifar)]
)
def test_failed_download_says_what_where_and_what_to_do(tmp_path, monkeypatch, name, module):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(module, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as error:
        resolve(name, download_dir=str(tmp_path / "cache"))
    message = str(error.value)
    assert name in message and str(tmp_path / "cache") in message and "internet" in message


def test_named_key_spellings():
    assert [named_key(s) for s in ("Fashion-MNIST", "fashion_mnist", "cifar-10", "mnist", "imagenet")] == [
        "fashion-mnist",
        "fashion-mnist",
        "cifar10",
        "mnist",
        None,
    ]
