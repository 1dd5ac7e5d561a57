"""Fixtures for the infer tests: a trained tiny model, real MNIST digits and real photos, image files."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import visionfit
from visionfit.data.embedded import load_embedded
from visionfit.data.samples import UNLABELLED, DatasetSplits, Samples
from visionfit.data.transforms import IMAGENET_MEAN, IMAGENET_STD

from ..conftest import make_preset, pattern_images

FAST = dict(epochs=3, lr=0.05, optimizer="adam", batch_size=16, quiet=True, image_size=16)


def save_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def bars_model(tmp_path_factory) -> Path:
    """A lenet_relu trained on the bar images (3 classes: left, middle, right); most predictions are right."""
    train_images, train_labels = pattern_images(96, seed=0)
    val_images, val_labels = pattern_images(30, seed=1)
    splits = DatasetSplits("bars", ["left", "middle", "right"], Samples(labels=train_labels, images=train_images),
                           Samples(labels=val_labels, images=val_images))
    result = visionfit.fit("lenet_relu", splits, project=str(tmp_path_factory.mktemp("runs")), **FAST)
    return result.best_model


@pytest.fixture(scope="session")
def bars_csv(tmp_path_factory) -> Path:
    """images/<i>.png and labels.csv (image,label as written: images/<i>.png) for 30 fresh bar images."""
    root = tmp_path_factory.mktemp("bars_files")
    images, labels = pattern_images(30, seed=7)
    names = ["left", "middle", "right"]
    lines = ["image,label"]
    for i, (pixels, label) in enumerate(zip(images, labels)):
        save_png(root / "images" / f"{i}.png", pixels)
        lines.append(f"images/{i}.png,{names[label]}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


@pytest.fixture(scope="session")
def mnist_digits() -> Samples:
    """Seven real MNIST test digits, 0 to 6, unlabelled (check images), from the bundled sample's test split."""
    test = load_embedded().val
    firsts = [int(np.flatnonzero(test.labels == digit)[0]) for digit in range(7)]
    return Samples(labels=[UNLABELLED] * 7, images=test.images[firsts])


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """A folder of seven real photos (scikit-image's chelsea, coffee, astronaut and crops of them)."""
    from skimage import data

    cat, coffee, astronaut = data.chelsea(), data.coffee(), data.astronaut()
    views = [cat, coffee, astronaut, cat[:, :300], coffee[100:, 200:], astronaut[:256, :256], astronaut[256:, 256:]]
    root = tmp_path_factory.mktemp("photos")
    for i, pixels in enumerate(views):
        save_png(root / f"photo{i}.png", np.ascontiguousarray(pixels))
    return root


def with_meta(model: torch.nn.Module, name: str, size: int, channels: int, num_classes: int = 10) -> torch.nn.Module:
    """Attach what a model file would carry, so the infer API takes the bare module."""
    photo = channels == 3
    preset = make_preset(size=size, channels=channels, mean=IMAGENET_MEAN if photo else (0.1307,),
                         std=IMAGENET_STD if photo else (0.3081,), small=not photo)
    model.visionfit_meta = {"architecture": name, "class_names": [f"class {k}" for k in range(num_classes)],
                            "in_channels": channels, "input_size": size, "preprocess": preset.preprocess.describe(),
                            "preset": preset.augmentation()}
    return model.eval()


def calibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Set BatchNorm statistics from real inputs, as a trained net would have them.

    With fresh statistics (mean 0, var 1) some nets (mobilenet_v3) output ~1e-10 for every
    image: any export would match such logits, so the parity test would test nothing.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one pass sets the statistics of x
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
