"""One eval preprocessing: every path that shows a model an image gives the same tensor."""
import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from visionfit.config import Config
from visionfit.data.loader import BatchLoader
from visionfit.data.preprocess import Preprocess
from visionfit.data.prepare import eval_store
from visionfit.data.samples import Samples
from visionfit.data.transforms import Preset
from visionfit.errors import ModelError
from visionfit.infer.parity import check_pixels
from visionfit.infer.runner import Classifier, decode_sample

SIZES = [(1, 1), (63, 64), (500, 37), (37, 500), (28, 28), (24, 20)]  # (height, width)
RULES = [("shorter", 18), ("both", 16), ("both", 20)]
CPU = torch.device("cpu")


def photo_files(folder, channels: int) -> list:
    rng = np.random.default_rng(channels)
    paths = []
    for i, (height, width) in enumerate(SIZES):
        shape = (height, width, 3) if channels == 3 else (height, width)
        path = folder / f"{i}_{height}x{width}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("channels, rule, interpolation", [
    (c, r, i) for c, r, i in itertools.product((1, 3), RULES, ("bilinear", "bicubic", "nearest"))])
def test_validation_eval_predict_and_export_check_see_identical_pixels(tmp_path, channels, rule, interpolation):
    resize, side = rule
    spec = Preprocess(16, channels, resize, side, interpolation, (0.5,) * channels, (0.25,) * channels)
    preset = Preset(spec, small=False, flip=False)
    samples = Samples(labels=np.zeros(len(SIZES), dtype=np.int64), paths=photo_files(tmp_path, channels))
    cached = Config.from_options().data
    uncached = Config.from_options(cache="none").data

    validation = eval_store(cached, samples, preset, workers=2).images  # what training validates on
    streamed = torch.stack([image for image, in zip(eval_store(uncached, samples, preset, workers=0).images)])
    predicted = torch.stack([decode_sample(samples, i, preset) for i in range(len(samples))])  # eval, predict
    classifier = Classifier(torch.nn.Identity(), ["a"], preset, CPU)
    export_check = check_pixels(classifier, samples)  # export --check: the first 7, here all 6 then reused

    assert validation.shape == (len(SIZES), channels, 16, 16) and validation.dtype == torch.uint8
    assert torch.equal(validation, streamed) and torch.equal(validation, predicted)
    assert torch.equal(export_check[: len(SIZES)], validation)
    (batch, _), = list(BatchLoader(eval_store(cached, samples, preset, workers=0), preset, batch_size=8,
                                   train=False, device=CPU))
    assert torch.equal(batch, preset.normalize(validation))  # the loader adds normalisation only


def test_the_shorter_side_rule_matches_torchvisions_resize_and_center_crop():
    """The consumer contract: torchvision's Resize(side) + CenterCrop(size) on a PIL image gives our pixels."""
    from torchvision.transforms import CenterCrop, InterpolationMode, PILToTensor, Resize

    rng = np.random.default_rng(0)
    for height, width in [(300, 451), (451, 300), (37, 500), (257, 256)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for interpolation in ("bilinear", "bicubic"):
            spec = Preprocess(224, 3, "shorter", 256, interpolation, (0.5,) * 3, (0.5,) * 3)
            theirs = PILToTensor()(CenterCrop(224)(Resize(256, InterpolationMode(interpolation))(Image.fromarray(pixels))))
            assert torch.equal(torch.from_numpy(spec.apply(pixels)).permute(2, 0, 1), theirs), (height, width)


@pytest.mark.parametrize("values, problem", [
    ({"size": 0}, "sizes must satisfy"),
    ({"size": 300}, "sizes must satisfy"),
    ({"resize_side": 10 ** 6}, "sizes must satisfy"),
    ({"channels": 4}, "channels must be 1 or 3"),
    ({"resize": "crop"}, "resize must be one of"),
    ({"interpolation": "lanczos9"}, "interpolation must be one of"),
    ({"mean": [float("nan")] * 3}, "mean must be 3 finite numbers"),
    ({"std": [0.0] * 3}, "std values must be > 0"),
    ({"size": "224"}, "size must be an integer"),
])
def test_a_spec_read_from_a_file_is_checked(values, problem):
    good = Preprocess(224, 3, "shorter", 256, "bilinear", (0.5,) * 3, (0.5,) * 3).to_dict()
    with pytest.raises(ModelError, match=problem):
        Preprocess.from_dict({**good, **values})


def test_describe_round_trips_and_says_how():
    spec = Preprocess(224, 1, "shorter", 256, "bicubic", (0.1,), (0.3,))
    described = spec.describe()
    assert Preprocess.from_dict(described) == spec
    assert described["channel_order"].startswith("L") and "floor(longer * resize_side / shorter)" in described["resize_rule"]
