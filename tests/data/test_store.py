"""build_store and channel_stats on stores built from data the tests make."""
import logging

import numpy as np
import pytest
import torch

from visionfit.data import store as store_module
from visionfit.data.decode import load_image
from visionfit.data.samples import Samples
from visionfit.data.scan import with_scan
from visionfit.data.store import ImageStore, build_store, channel_stats
from visionfit.errors import DataError


def file_samples(paths, labels=None) -> Samples:
    return Samples(labels=labels if labels is not None else list(range(len(paths))), paths=list(paths))


def test_same_size_files_make_a_uniform_store(tmp_path, png):
    paths = [png(tmp_path / f"{i}.png", np.full((5, 7), i, dtype=np.uint8)) for i in range(4)]
    store = build_store(file_samples(paths), channels=1, workers=2)
    assert store.uniform and store.image_shape == (1, 5, 7) and len(store) == 4
    assert store.images.dtype == torch.uint8
    assert store.images[:, 0, 0, 0].tolist() == [0, 1, 2, 3]  # order kept across threads


def test_mixed_sizes_make_a_ragged_store(tmp_path, png):
    paths = [png(tmp_path / f"{i}.png", np.zeros(shape, np.uint8)) for i, shape in enumerate([(4, 6, 3), (8, 5, 3)])]
    store = build_store(file_samples(paths), channels=3)
    assert not store.uniform and store.image_shape is None
    assert [tuple(image.shape) for image in store.images] == [(3, 4, 6), (3, 8, 5)]


def test_corrupt_file_is_skipped_counted_and_labels_stay_aligned(tmp_path, png, caplog):
    paths = [png(tmp_path / f"{i}.png", np.full((3, 3), 10 * i, dtype=np.uint8)) for i in range(4)]
    paths[1].write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        store = build_store(file_samples(paths, labels=[5, 6, 7, 8]), channels=1)
    assert store.labels.tolist() == [5, 7, 8]
    assert store.images[:, 0, 0, 0].tolist() == [0, 20, 30]
    assert store.origin == [str(paths[i]) for i in (0, 2, 3)]
    assert [origin for origin, _ in store.skipped] == [str(paths[1])]
    assert str(paths[1]) in caplog.text


def test_all_files_failing_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    with pytest.raises(DataError, match="none of the 1 images"):
        build_store(file_samples([bad]), channels=3)


def test_max_side_bounds_the_shorter_side(tmp_path, png):
    shapes = [(90, 30, 3), (20, 80, 3)]
    paths = [png(tmp_path / f"{i}.png", np.zeros(shape, np.uint8)) for i, shape in enumerate(shapes)]
    store = build_store(file_samples(paths), channels=3, max_side=10)
    assert [tuple(image.shape) for image in store.images] == [(3, 30, 10), (3, 10, 40)]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("stored", ["grey", "rgb"])
def test_array_channel_conversion_matches_decoding_files(tmp_path, png, channels, stored):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 6, 5) if stored == "grey" else (3, 6, 5, 3), dtype=np.uint8)
    paths = [png(tmp_path / f"{i}.png", image) for i, image in enumerate(images)]
    from_arrays = build_store(Samples(labels=[0, 1, 2], images=images), channels)
    from_files = torch.stack([torch.from_numpy(load_image(p, channels).transpose(2, 0, 1).copy()) for p in paths])
    assert from_arrays.image_shape == (channels, 6, 5)
    assert torch.equal(from_arrays.images, from_files)
    assert from_arrays.labels.dtype == torch.int64


def test_channel_stats_on_known_values():
    # Channel 0 is half 0, half 255: mean 0.5, std 0.5. Channel 1 is 51 everywhere: mean 0.2, std 0.
    images = torch.zeros(4, 2, 2, 2, dtype=torch.uint8)
    images[:, 0, 0] = 255
    images[:, 1] = 51
    store = ImageStore(images, torch.zeros(4, dtype=torch.int64), ["x"] * 4)
    mean, std = channel_stats(store)
    assert mean == pytest.approx([0.5, 0.2]) and std == pytest.approx([0.5, 0.0], abs=1e-9)
    ragged = ImageStore([images[0], images[1][:, :1]], torch.zeros(2, dtype=torch.int64), ["x", "y"])
    # Ragged: every image weighs the same. Channel 0 is 255 in half of the first image and in
    # all of the second: mean (0.5 + 1) / 2 = 0.75 (weighing pixels would give 4 / 6);
    # mean of squares (0.5 + 1) / 2 too, so std = sqrt(0.75 - 0.75^2).
    mean, std = channel_stats(ragged)
    assert mean == pytest.approx([0.75, 0.2]) and std == pytest.approx([(0.75 - 0.75**2) ** 0.5, 0.0], abs=1e-9)


def test_channel_stats_are_not_dominated_by_one_big_image():
    small = [torch.zeros(1, 2, 2, dtype=torch.uint8) for _ in range(9)]
    big = torch.full((1, 300, 300), 255, dtype=torch.uint8)  # 22,500x the pixels of a small one
    store = ImageStore([*small, big], torch.zeros(10, dtype=torch.int64), [""] * 10)
    assert channel_stats(store)[0] == pytest.approx([0.1])  # one image in ten is white


def test_channel_stats_limit_samples_a_subset():
    images = torch.arange(100, dtype=torch.uint8).reshape(100, 1, 1, 1)
    store = ImageStore(images, torch.zeros(100, dtype=torch.int64), [""] * 100)
    full_mean = channel_stats(store)[0][0]
    assert full_mean == pytest.approx(49.5 / 255)
    partial = [channel_stats(store, limit=10, seed=seed)[0][0] for seed in (0, 0, 1)]
    assert partial[0] == partial[1] != partial[2]


def test_files_the_scan_found_unusable_are_skipped_with_its_reason(tmp_path, png, monkeypatch):
    paths = [png(tmp_path / f"{i}.png", np.full((3, 3), 10 * i, dtype=np.uint8)) for i in range(3)]
    paths[1].write_bytes(b"")
    scanned = with_scan(file_samples(paths, labels=[5, 6, 7]))
    decoded = []
    monkeypatch.setattr(store_module, "_try_load", lambda path, *args: decoded.append(path) or torch.zeros(1, 3, 3))
    store = build_store(scanned, channels=1)
    assert decoded == [paths[0], paths[2]]  # the empty file is not decoded again
    assert store.labels.tolist() == [5, 7]
    assert store.skipped == [(str(paths[1]), f"cannot read image {paths[1]} (the file is empty (0 bytes)); "
                                             "remove or replace the file")]
