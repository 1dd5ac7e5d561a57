"""The bundled MNIST sample: size, balance, and fidelity to the real MNIST files."""
from pathlib import Path

import numpy as np
import pytest

from tests import real_mnist
from visionfit.data.embedded import load_embedded
from visionfit.data.idx import read_idx

ASSET = Path(__file__).resolve().parents[2] / "src" / "visionfit" / "assets" / "mnist_sample.npz"


@pytest.fixture(scope="module")
def sample():
    return load_embedded()


def test_asset_fits_the_size_budget():
    assert ASSET.stat().st_size <= 3 * 1024 * 1024


def test_sizes_balance_and_types(sample):
    assert sample.name == "mnist-sample" and sample.class_names == [str(d) for d in range(10)]
    assert sample.train.images.shape == (12000, 28, 28) and sample.val.images.shape == (2000, 28, 28)
    assert sample.train.images.dtype == np.uint8 and sample.train.labels.dtype == np.int64
    assert np.bincount(sample.train.labels).tolist() == [1200] * 10
    assert np.bincount(sample.val.labels).tolist() == [200] * 10
    assert sample.test is None


@pytest.mark.parametrize("split, prefix", [("train", "train"), ("val", "t10k")])
def test_sample_rows_equal_the_real_mnist_rows(sample, split, prefix):
    mnist = real_mnist.folder()  # found, not downloaded: this test is not marked slow
    samples = getattr(sample, split)
    rows = [int(origin.rsplit("[", 1)[1].rstrip("]")) for origin in samples.origin]
    assert rows == sorted(set(rows))  # distinct rows, in file order
    np.testing.assert_array_equal(samples.images, read_idx(real_mnist.file(mnist, prefix, "images"))[rows])
    np.testing.assert_array_equal(samples.labels, read_idx(real_mnist.file(mnist, prefix, "labels"))[rows])
