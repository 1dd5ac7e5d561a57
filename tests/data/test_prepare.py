"""prepare_data's training stores for photos: presized squares, or the eval view, decoded once."""
import numpy as np
import pytest
import torch
from PIL import Image

from visionfit.config import DataConfig
from visionfit.data import transforms
from visionfit.data.loader import BatchLoader
from visionfit.data.plan import plan_input
from visionfit.data.prepare import eval_store, prepare_data
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.data.scan import with_scan
from visionfit.data.store import LazyImages

from tests.photos import CLASSES, write_odd_photos

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def photo_splits(tmp_path_factory) -> DatasetSplits:
    """Six real photos of odd sizes and aspect ratios (PNGs and JPEGs), three per class."""
    root = write_odd_photos(tmp_path_factory.mktemp("photos") / "train", per_class=3)
    paths = sorted(root.glob("*/*"))
    samples = with_scan(Samples(labels=[CLASSES.index(p.parent.name) for p in paths], paths=paths))
    return DatasetSplits("photos", list(CLASSES), samples)


def prepared(splits, **options):
    config = DataConfig(workers=2, **options)
    return prepare_data(config, splits, plan_input(config, splits.train, natural_size=32))


def pil_presized(path, side: int, resample) -> np.ndarray:
    """The reference, with Pillow alone: shorter side to `side` (torchvision's rule for the longer
    one), then the center side x side square."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    longer = max(side, int(max(width, height) * side / min(width, height)))
    image = image.resize((longer, side) if height <= width else (side, longer), resample)
    pixels = np.asarray(image)
    top, left = round((pixels.shape[0] - side) / 2), round((pixels.shape[1] - side) / 2)
    return pixels[top : top + side, left : left + side]


@pytest.mark.parametrize("interpolation, resample", [("bilinear", Image.Resampling.BILINEAR),
                                                     ("bicubic", Image.Resampling.BICUBIC)])
def test_photos_are_stored_as_presized_center_squares(photo_splits, interpolation, resample):
    data = prepared(photo_splits, image_size=32, interpolation=interpolation)
    store = data.train
    assert store.uniform and not store.eval_ready and store.images.shape == (6, 3, 37, 37)  # round(32 x 1.15)
    for image, path in zip(store.images, photo_splits.train.paths):
        expected = pil_presized(path, 37, resample)
        assert torch.equal(image, torch.from_numpy(expected.transpose(2, 0, 1).copy())), path


def test_cache_none_decodes_the_same_squares_on_access(photo_splits):
    in_ram = prepared(photo_splits, image_size=32, presize=45).train
    lazy = prepared(photo_splits, image_size=32, presize=45, cache="none").train
    assert isinstance(lazy.images, LazyImages) and in_ram.images.shape == (6, 3, 45, 45)
    for index in range(6):
        assert torch.equal(lazy.images[index], in_ram.images[index])


@pytest.mark.parametrize("options", [{"augment": "none"}, {"pad": 0}])
def test_training_from_the_eval_view_stores_the_eval_view(photo_splits, options, monkeypatch):
    data = prepared(photo_splits, image_size=32, **options)
    assert data.train.eval_ready and data.train.images.shape == (6, 3, 32, 32)
    validation = eval_store(DataConfig(), photo_splits.train, data.preset, workers=1, label="val")
    assert torch.equal(data.train.images, validation.images)  # exactly what validation and predict see

    def per_image_transform(self, image):
        raise AssertionError("a training batch ran the eval transform per image")

    monkeypatch.setattr(transforms._EvalTransform, "__call__", per_image_transform)
    loader = BatchLoader(data.train, data.preset, batch_size=4, train=True, device=CPU, seed=3)
    assert loader.batched
    x, y = next(iter(loader))
    order = loader.indices()[:4]
    if not data.preset.flip:  # --augment none: the eval view itself, normalised
        assert torch.equal(x, data.preset.normalize(data.train.images[order]))
    else:  # --pad 0 keeps the flip: each image is its eval view or that mirrored
        views = data.preset.normalize(data.train.images[order])
        assert all(torch.allclose(a, b) or torch.allclose(a, b.flip(-1)) for a, b in zip(x, views))


def test_per_image_ops_crop_the_presized_squares_in_workers(photo_splits):
    data = prepared(photo_splits, image_size=32, augment="medium")
    loader = BatchLoader(data.train, data.preset, batch_size=3, train=True, device=CPU, seed=0, colour_on_device=False)
    assert data.train.uniform and not loader.batched  # TrivialAugment runs per image (where workers can take it)
    batches = list(loader)
    assert [tuple(x.shape) for x, _ in batches] == [(3, 3, 32, 32)] * 2
    loader.close()
