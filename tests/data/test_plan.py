"""plan_input's storage decisions for photos: the presize, --presize 0, and --pad 0 (the eval view)."""
import dataclasses

import numpy as np
import pytest

from visionfit.config import DataConfig
from visionfit.data.plan import plan_input
from visionfit.data.preprocess import WeightsPreprocessing
from visionfit.data.samples import Samples
from visionfit.errors import ConfigError


@pytest.fixture
def photos() -> Samples:
    """Eight 120 x 90 RGB arrays: bigger than SMALL_IMAGE_SIDE, so the photo recipe."""
    return Samples(labels=np.arange(8) % 2, images=np.zeros((8, 90, 120, 3), dtype=np.uint8))


def test_photos_are_presized_to_115_percent_of_the_input_by_default(photos):
    plan = plan_input(DataConfig(image_size=224), photos, natural_size=224)
    assert (plan.presize, plan.store_side, plan.resized_crop) == (258, None, True)  # round(224 x 1.15)
    assert plan_input(DataConfig(image_size=64), photos, natural_size=64).presize == 74  # round(73.6)


def test_presize_given_zero_or_too_small_for_the_weights_input(photos):
    assert plan_input(DataConfig(image_size=64, presize=80), photos, natural_size=64).presize == 80
    whole = plan_input(DataConfig(image_size=64, presize=0), photos, natural_size=64)
    assert (whole.presize, whole.store_side) == (None, 91)  # kept whole: 73 x 1.25, cropped per image
    weights = WeightsPreprocessing(size=224)  # the input size comes from the weights, not --image-size
    with pytest.raises(ConfigError, match=r"^--presize must be 0 or at least the input size \(224\), not 100"):
        plan_input(DataConfig(presize=100), photos, natural_size=64, weights=weights)


@pytest.mark.parametrize("options", [{"augment": "none"}, {"pad": 0}, {"pad": 0, "presize": 300}])
def test_photos_without_a_random_resized_crop_train_on_their_eval_view(photos, options):
    plan = plan_input(DataConfig(image_size=64, **options), photos, natural_size=64)
    assert plan.trains_on_eval_view and not plan.resized_crop and plan.presize is None and plan.store_side is None
    assert plan.preset((0.5,) * 3, (0.2,) * 3).train_starts_from_eval_view
    if options.get("pad") == 0:  # what config.yaml records (pad 0) is what runs, and the run says so
        assert ("pad 0 (--pad, a recipe's, or a frozen backbone's default): no random resized crop either; training starts from each photo's "
                "eval view (stored as such)") in plan.notes
    if "presize" in options:
        assert "--presize 300 unused: training images are stored at their eval view or own size" in plan.notes


def test_pad_zero_on_small_images_only_drops_their_padding():
    digits = Samples(labels=np.arange(4) % 2, images=np.zeros((4, 28, 28), dtype=np.uint8))
    plan = plan_input(DataConfig(pad=0), digits, natural_size=28)
    assert plan.small and plan.pad == 0 and plan.presize is None and not plan.trains_on_eval_view


@pytest.mark.parametrize("presize", [0, -3, 10**6, 2.5])
def test_a_recorded_presize_is_checked(photos, presize):
    plan = plan_input(DataConfig(image_size=64), photos, natural_size=64)
    with pytest.raises(ValueError, match="image sides"):
        dataclasses.replace(plan, presize=presize)


def test_geometry_is_the_eval_rule_at_the_presize(photos):
    plan = plan_input(DataConfig(image_size=64, interpolation="bicubic"), photos, natural_size=64)
    geometry = plan.geometry(plan.presize)
    assert (geometry.size, geometry.resize_side, geometry.resize, geometry.interpolation) == (74, 74, "shorter", "bicubic")
    assert plan.geometry().to_dict() | {"mean": None, "std": None} == \
        plan.preprocess((0.3,) * 3, (0.2,) * 3).to_dict() | {"mean": None, "std": None}
