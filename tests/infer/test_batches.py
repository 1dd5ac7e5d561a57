"""batches: the batched eval path gives exactly the per-image path's numbers; threads only where they pay."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from visionfit.data.preprocess import Preprocess
from visionfit.data.samples import UNLABELLED, Samples
from visionfit.errors import DataError
from visionfit.infer.batches import THREADED_DECODE_BYTES, decode_threads, eval_batches, is_model_input
from visionfit.infer.runner import classify, decode_sample, load_classifier, pixel_probabilities, read_samples

from .conftest import save_png, with_meta


def tiny_net(channels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 10))


def noise(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def equal_size_folder(tmp_path):
    """Six grey 16 x 16 PNGs: already the model's input, so no image needs Preprocess.apply."""
    for i in range(6):
        save_png(tmp_path / "equal" / f"{i}.png", noise((16, 16), i))
    return tmp_path / "equal"


@pytest.fixture
def mixed_size_folder(tmp_path):
    """Colour PNGs of five sizes (one already 16 x 16), one grey, and a file that is not an image."""
    shapes = [(16, 16, 3), (40, 30, 3), (17, 64, 3), (9, 9, 3), (16, 16, 3), (33, 33)]
    for i, shape in enumerate(shapes):
        save_png(tmp_path / "mixed" / f"{i}.png", noise(shape, 10 + i))
    (tmp_path / "mixed" / "6.png").write_bytes(b"not a png")
    return tmp_path / "mixed"


def per_image_probabilities(classifier, samples: Samples) -> tuple[np.ndarray, list[int]]:
    """What the runner computed before batching: decode_sample (Preprocess.apply) per image, one
    C x H x W tensor each, stacked; the same images in one forward pass, as the batched run has them."""
    rows, images = [], []
    for row in range(len(samples)):
        try:
            images.append(decode_sample(samples, row, classifier.preset))
            rows.append(row)
        except DataError:
            continue
    return pixel_probabilities(classifier, images), rows


@pytest.mark.parametrize("folder, channels, small", [("equal_size_folder", 1, True), ("mixed_size_folder", 3, False)])
def test_batched_probabilities_are_bit_identical_to_the_per_image_path(folder, channels, small, request):
    classifier = load_classifier(with_meta(tiny_net(channels), "tiny", 16, channels), "cpu")
    samples = read_samples(request.getfixturevalue(folder))
    assert classifier.preset.small == small  # small: squashed to 16, photos: shorter side to 18, crop 16
    expected, rows = per_image_probabilities(classifier, samples)
    outputs = classify(classifier, samples, batch_size=len(samples))
    assert np.array_equal(outputs.probs[rows], expected)  # exactly, not approximately
    assert sorted(outputs.errors) == sorted(set(range(len(samples))) - set(rows))


def test_only_images_that_are_not_yet_the_model_input_go_through_preprocess_apply(
        equal_size_folder, mixed_size_folder, monkeypatch):
    applied = []
    original = Preprocess.apply
    monkeypatch.setattr(Preprocess, "apply", lambda spec, pixels: applied.append(pixels.shape) or original(spec, pixels))
    grey = Preprocess.squash(16, 1, "bilinear", (0.5,), (0.25,))
    list(eval_batches(read_samples(equal_size_folder), grey, batch_size=4))
    assert applied == []
    colour = Preprocess.squash(16, 3, "bilinear", (0.5,) * 3, (0.25,) * 3)
    list(eval_batches(read_samples(mixed_size_folder), colour, batch_size=4))
    assert sorted(applied) == sorted([(40, 30, 3), (17, 64, 3), (9, 9, 3), (33, 33, 3)])


def test_is_model_input_follows_the_resize_rule():
    square = np.zeros((16, 16, 3), dtype=np.uint8)
    assert is_model_input(square, Preprocess.squash(16, 3, "bilinear", (0.5,) * 3, (0.25,) * 3))
    # The ImageNet recipe resizes 16 to 18 and crops 16 back: that is not the image itself.
    assert not is_model_input(square, Preprocess.for_crop(16, 3, 0.875, "bilinear", (0.5,) * 3, (0.25,) * 3))
    assert not is_model_input(np.zeros((16, 17, 3), dtype=np.uint8), Preprocess.squash(16, 3, "bilinear",
                                                                                        (0.5,) * 3, (0.25,) * 3))


def test_batches_keep_row_order_and_errors_on_threads_as_on_one(mixed_size_folder):
    samples = read_samples(mixed_size_folder)
    spec = Preprocess.for_crop(16, 3, 0.875, "bilinear", (0.5,) * 3, (0.25,) * 3)
    one, threaded = (list(eval_batches(samples, spec, batch_size=3, workers=workers)) for workers in (None, 2))
    assert [list(b.rows) for b in one] == [list(b.rows) for b in threaded] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.scored for b in one] == [b.scored for b in threaded] == [[0, 1, 2], [3, 4, 5], []]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(one[:2], threaded[:2]))
    assert list(one[2].errors) == list(threaded[2].errors) == [6] and one[2].pixels is None


def test_threads_decode_only_big_files_on_several_cores(equal_size_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    small = read_samples(equal_size_folder)
    assert decode_threads(small) == 0  # tiny PNGs: the calling thread is faster
    for i in range(3):  # noise does not compress: 128 x 128 x 3 is 48 KiB
        save_png(tmp_path / "big" / f"{i}.png", noise((128, 128, 3), i))
    large = read_samples(tmp_path / "big")
    assert os.path.getsize(large.paths[0]) >= THREADED_DECODE_BYTES
    assert decode_threads(large) == 4
    assert decode_threads(large, workers=2) == 2 and decode_threads(small, workers=3) == 3  # the user's number
    arrays = Samples(labels=[UNLABELLED] * 2, images=noise((2, 16, 16), 0))
    assert decode_threads(arrays) == 0  # nothing to decode
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert decode_threads(large) == 0  # one core: threads would only take turns
