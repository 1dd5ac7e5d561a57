"""Fixtures shared across the suite: tiny, learnable datasets made on the spot."""
import os

import numpy as np
import pytest
import torch

from visionfit.config import Config, TrainConfig
from visionfit.data.preprocess import Preprocess
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.data.transforms import EVAL_CROP_FRACTION, Preset
from visionfit.resolve import resolve_recipe


def pytest_configure(config):
    """Under pytest-xdist (`-n 2`), each worker gets its share of the cores for torch's
    threads: two workers with two threads each on two cores would fight over them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True, scope="session")
def private_disk_cache(tmp_path_factory):
    """Decoded stores go to a folder of this test session, never the user's cache (subprocesses inherit it)."""
    previous = os.environ.get("VISIONFIT_CACHE")
    os.environ["VISIONFIT_CACHE"] = str(tmp_path_factory.mktemp("disk-cache"))
    yield
    if previous is None:
        os.environ.pop("VISIONFIT_CACHE", None)
    else:
        os.environ["VISIONFIT_CACHE"] = previous


def pattern_images(n: int, num_classes: int = 3, side: int = 16, seed: int = 0):
    """Grey images whose class is where a bright bar sits: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    images = rng.integers(0, 60, size=(n, side, side), dtype=np.uint8)
    band = side // num_classes
    for i, label in enumerate(labels):
        images[i, :, label * band:(label + 1) * band] = 220
    return images, labels


def train_config(**options) -> TrainConfig:
    """A TrainConfig as a run resolves it: the options given, the default model's recipe for the rest."""
    return resolve_recipe(Config.from_options(**options))[0].train


@pytest.fixture
def tiny_splits() -> DatasetSplits:
    train_images, train_labels = pattern_images(96, seed=0)
    val_images, val_labels = pattern_images(30, seed=1)
    return DatasetSplits(
        name="bars",
        class_names=["left", "middle", "right"],
        train=Samples(labels=train_labels, images=train_images),
        val=Samples(labels=val_labels, images=val_images),
    )


def make_preset(size: int, channels: int, mean, std, small: bool, flip: bool = False, rotation: float = 0.0,
                pad: int = 0, interpolation: str = "bilinear") -> Preset:
    """A preset as plan_input would make it: small images squashed to size, photos resized by
    their shorter side to size / 0.875 and center-cropped."""
    if small:
        spec = Preprocess.squash(size, channels, interpolation, mean, std)
    else:
        spec = Preprocess.for_crop(size, channels, EVAL_CROP_FRACTION, interpolation, mean, std)
    return Preset(spec, small=small, flip=flip, rotation=rotation, pad=pad)


def model_meta(architecture: str = "lenet", class_names=("a", "b", "c"), in_channels: int = 1, input_size: int = 28,
               **fields) -> dict:
    """Metadata as a visionfit run writes it into a model file (MNIST's statistics per channel);
    `fields` add to or replace its fields."""
    mean, std = (0.1307,) * in_channels, (0.3081,) * in_channels
    preset = make_preset(input_size, in_channels, mean, std, small=True)
    return {"architecture": architecture, "model_args": {}, "class_names": list(class_names),
            "in_channels": in_channels, "input_size": input_size, "mean": list(mean), "std": list(std),
            "preprocess": preset.preprocess.describe(), "preset": preset.augmentation(), **fields}


@pytest.fixture
def threads_restored(monkeypatch):
    """A fresh record of the threads torch started with (devices.share_cores_with_workers), and
    torch's thread count put back after the test."""
    import visionfit.devices as devices

    before = torch.get_num_threads()
    monkeypatch.setattr(devices, "_threads_at_start", None)
    yield
    torch.set_num_threads(before)
