"""--augment none|light|medium|strong: the parts each level plans, the ops each preset builds,
batched random erasing against torchvision's, and which loader path runs them."""
import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from visionfit.config import DataConfig
from visionfit.data.augment import ERASING_SCALE, describe, random_erasing
from visionfit.data.loader import BatchLoader
from visionfit.data.plan import plan_input
from visionfit.data.samples import Samples
from visionfit.data.store import ImageStore

CPU = torch.device("cpu")


def planned(level, side, **flags):
    """The input plan for 4 grey images of side x side at an --augment level (and flags)."""
    samples = Samples(labels=np.zeros(4, dtype=np.int64), images=np.zeros((4, side, side), dtype=np.uint8))
    return plan_input(DataConfig(augment=level, **flags), samples, natural_size=side)


@pytest.mark.parametrize("level, small_parts, photo_parts", [
    ("none", (0, False, None, 0.0, 0.0), (False, False, None, 0.0, 0.0)),
    ("light", (4, False, None, 0.0, 0.0), (True, True, None, 0.0, 0.0)),
    ("medium", (4, False, "trivial", 0.0, 0.1), (True, True, "trivial", 0.0, 0.1)),
    ("strong", (4, False, "rand", 0.4, 0.25), (True, True, "rand", 0.4, 0.25)),
])
def test_each_level_plans_its_parts_for_small_images_and_photos(level, small_parts, photo_parts):
    small, photo = planned(level, 32), planned(level, 96)
    assert (small.pad, small.flip, small.auto_augment, small.color_jitter, small.erasing) == small_parts
    assert (photo.resized_crop, photo.flip, photo.auto_augment, photo.color_jitter, photo.erasing) == photo_parts
    assert small.augment == photo.augment == level and photo.pad == 0


def test_single_flags_override_their_part_of_a_level():
    plan = planned("strong", 32, pad=1, flip=True, rotation=10.0)
    assert (plan.pad, plan.flip, plan.rotation, plan.auto_augment) == (1, True, 10.0, "rand")
    assert planned("none", 96, flip=True).flip and not planned("light", 96, flip=False).flip


def preset_at(level, small=True, **flags):
    return planned(level, 32 if small else 96, **flags).preset((0.5,), (0.25,))


def op_types(preset):
    return [type(op) for op in preset.train_transform().transforms]


def test_each_level_builds_torchvision_s_ops_and_none_is_deterministic():
    assert op_types(preset_at("medium"))[2:] == [v2.TrivialAugmentWide, v2.RandomErasing]
    assert op_types(preset_at("strong", small=False))[1:] == [v2.RandomHorizontalFlip, v2.RandAugment, v2.ColorJitter,
                                                               v2.RandomErasing]
    erasing = preset_at("strong").train_transform().transforms[-1]
    assert erasing.p == 0.25 and erasing.value == [128]  # the mean (0.5), which normalises to 0
    for small in (True, False):
        none = preset_at("none", small)
        assert none.train_is_deterministic and not none.per_sample_ops and describe(none) == "none (the eval view)"
        assert not preset_at("light", small).train_is_deterministic
        assert preset_at("medium", small).per_sample_ops and not preset_at("light", small).per_sample_ops
    assert describe(preset_at("strong")) == ("pad 4 + random crop, RandAugment (2 ops, magnitude 9), colour jitter 0.4, "
                                             "erasing p 0.25")


def test_augmentation_is_recorded_and_read_back_whole():
    from visionfit.data.transforms import preset_from_meta

    preset = preset_at("strong", small=False)
    again = preset_from_meta({"preprocess": preset.preprocess.describe(), "preset": preset.augmentation()})
    assert again == preset
    with pytest.raises(ValueError, match="auto_augment"):
        preset_from_meta({"preprocess": preset.preprocess.describe(), "preset": {**preset.augmentation(),
                                                                                 "auto_augment": "os.system"}})


def erased_fractions(images: torch.Tensor) -> torch.Tensor:
    """The share of each white image that became the fill (0)."""
    return (images == 0).flatten(1).float().mean(1)


def test_batched_erasing_draws_boxes_as_torchvision_does():
    white = torch.full((600, 1, 24, 32), 255.0)
    ours = random_erasing(white, 1.0, [0], torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    erase = v2.RandomErasing(p=1.0, value=0)
    theirs = torch.stack([erase(image) for image in white])
    ours_share, theirs_share = erased_fractions(ours), erased_fractions(theirs)
    assert abs(ours_share.mean() - theirs_share.mean()) < 0.02
    assert ours_share.min() >= ERASING_SCALE[0] * 0.5 and ours_share.max() <= ERASING_SCALE[1] * 1.3
    box = ours[0, 0] == 0  # one rectangle: its rows and columns span exactly the erased count
    rows, cols = box.any(1).nonzero(), box.any(0).nonzero()
    assert int(box.sum()) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    half = random_erasing(white, 0.5, [7], torch.Generator().manual_seed(1))
    assert 0.4 < (half == 7).flatten(1).any(1).float().mean() < 0.6


def test_per_image_ops_send_training_through_the_per_sample_path_and_eval_stays_batched(monkeypatch):
    """On a CPU with cores to spare for DataLoader workers (8 cores, 2 workers)."""
    import visionfit.devices as devices

    monkeypatch.setattr(devices, "usable_cores", lambda: 8)
    store = ImageStore(torch.randint(0, 255, (12, 1, 32, 32), dtype=torch.uint8), torch.arange(12) % 3,
                       [str(i) for i in range(12)])
    medium = BatchLoader(store, preset_at("medium"), batch_size=5, train=True, device=CPU, seed=0, workers=2)
    light = BatchLoader(store, preset_at("light"), batch_size=5, train=True, device=CPU, seed=0)
    evaluation = BatchLoader(store, preset_at("medium"), batch_size=5, train=False, device=CPU)
    assert not medium.batched and light.batched and evaluation.batched
    shapes = [tuple(x.shape) for x, _ in medium]
    assert shapes == [(5, 1, 32, 32), (5, 1, 32, 32), (2, 1, 32, 32)]
    medium.close()


@pytest.mark.parametrize("cores, workers, on_the_batch", [(2, 1, True), (4, 3, True), (8, 0, True), (8, 2, False),
                                                          (16, 8, False)])
def test_on_a_cpu_per_image_ops_run_on_the_batch_where_workers_would_leave_the_model_one_core(
        monkeypatch, cores, workers, on_the_batch):
    import visionfit.devices as devices
    from visionfit.data.loader import colour_on_device_by_default

    monkeypatch.setattr(devices, "usable_cores", lambda: cores)
    assert colour_on_device_by_default(CPU, workers) is on_the_batch
    assert colour_on_device_by_default(torch.device("cuda"), workers)


@pytest.mark.parametrize("level", ["medium", "strong"])
def test_on_a_gpu_the_per_image_policies_run_on_the_batch_there(level):
    """TrivialAugmentWide and RandAugment (torchvision's, every op of theirs) on the device batch:
    the CUDA default of colour_on_device, taken on the CPU."""
    store = ImageStore(torch.randint(0, 255, (12, 1, 32, 32), dtype=torch.uint8), torch.arange(12) % 3,
                       [str(i) for i in range(12)])
    loader = BatchLoader(store, preset_at(level), batch_size=12, train=True, device=CPU, seed=0, colour_on_device=True)
    assert loader.batched
    (x, _), = list(loader)
    pixels = x * 0.25 + 0.5  # back to 0..1
    assert x.shape == (12, 1, 32, 32) and pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    # light draws the same crops from the same seed: what differs is the policy's (and erasing's) work.
    (cropped, _), = list(BatchLoader(store, preset_at("light"), batch_size=12, train=True, device=CPU, seed=0))
    assert (x - cropped).abs().flatten(1).amax(1).gt(0.1).float().mean() > 0.5


def test_photos_at_none_train_on_their_eval_view():
    photos = ImageStore(torch.randint(0, 255, (6, 1, 120, 100), dtype=torch.uint8), torch.arange(6) % 2,
                        [str(i) for i in range(6)])
    none = preset_at("none", small=False)
    # The training store of such a run holds the eval views (prepare.py), so batches need no per-image work.
    views = torch.stack([none.eval_transform()(image) for image in photos.images])
    eval_views = ImageStore(views, photos.labels, photos.origin, eval_ready=True)
    with pytest.raises(ValueError, match="needs a store of eval views"):
        BatchLoader(photos, none, batch_size=6, train=True, device=CPU)
    train = BatchLoader(eval_views, none, batch_size=6, train=True, device=CPU, seed=3)
    evaluation = BatchLoader(photos, none, batch_size=6, train=False, device=CPU)
    (x_train, y_train), = list(train)
    (x_eval, y_eval), = list(evaluation)
    order = train.indices()
    assert torch.allclose(x_train, x_eval[order], atol=1e-5) and torch.equal(y_train, y_eval[order])
