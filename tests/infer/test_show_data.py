"""show-data: sample choice, the eval view, and augmentation identical to training's."""
import importlib

import numpy as np
import pytest
import torch

import visionfit
from visionfit.cli import main
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.errors import DataError
from visionfit.infer.plots import short
from visionfit.infer.show_data import spread_over_classes

from ..conftest import pattern_images
from .test_evaluate import LONG_NAMES


@pytest.fixture
def twenty_classes() -> DatasetSplits:
    images, labels = pattern_images(120, num_classes=20, side=40)
    return DatasetSplits("bars20", LONG_NAMES, Samples(labels=labels, images=images))


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """What show_data hands to the plotting function, captured instead of drawn."""
    captured = {}
    module = importlib.import_module("visionfit.infer.show_data")  # the attribute of visionfit.infer is the function
    monkeypatch.setattr(module, "plot_image_grid",
                        lambda path, images, titles, **kw: captured.update(images=images, titles=titles, **kw))
    return captured


def test_every_class_shows_before_any_repeats():
    labels = np.repeat(np.arange(5), [1, 4, 4, 4, 10])
    picks = spread_over_classes(labels, 8, seed=0)
    assert len(set(picks.tolist())) == 8 and set(labels[picks[:5]].tolist()) == {0, 1, 2, 3, 4}


def test_grid_titles_are_the_class_names(twenty_classes, drawn, tmp_path):
    visionfit.show_data(twenty_classes, out=tmp_path / "grid.png", n=20, val_split=0)
    assert sorted(drawn["titles"]) == sorted(short(name) for name in LONG_NAMES)
    # resized as training would resize them: to the default model's (lenet_relu) natural 28 px
    assert all(image.shape == (1, 28, 28) and image.dtype == torch.uint8 for image in drawn["images"])


def test_augmented_view_is_the_training_flip_of_the_same_image(twenty_classes, drawn, tmp_path):
    visionfit.show_data(twenty_classes, out=tmp_path / "grid.png", n=16, augment=True, flip=True, pad=0, val_split=0)
    images, titles = drawn["images"], drawn["titles"]
    assert len(images) == 32 and titles[1] == "(augmented)"
    flipped = 0
    for view, augmented in zip(images[::2], images[1::2]):
        # within one grey level: the loader resamples and normalises in float, show_data rounds back
        same, mirrored = (_max_diff(view, augmented) <= 1), (_max_diff(view.flip(-1), augmented) <= 1)
        assert same or mirrored  # flip is the only augmentation asked for
        flipped += mirrored and not same
    assert 0 < flipped < 16  # a coin per image, as in training


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a.int() - b.int()).abs().max())


def test_show_data_cli_writes_a_png(tmp_path, capsys):
    main(["show-data", "-o", str(tmp_path / "grid.png"), "--n", "8", "--augment", "--rotation", "15"])
    assert (tmp_path / "grid.png").stat().st_size > 5_000 and "wrote" in capsys.readouterr().out


def test_a_missing_split_is_a_data_error(twenty_classes, tmp_path):
    with pytest.raises(DataError, match="no test split"):
        visionfit.show_data(twenty_classes, out=tmp_path / "g.png", split="test", val_split=0)
