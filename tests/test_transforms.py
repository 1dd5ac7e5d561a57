import torch

from .conftest import make_preset


def small_preset(**overrides):
    values = dict(size=8, channels=1, mean=(0.5,), std=(0.25,), small=True, flip=False, rotation=0.0, pad=0)
    return make_preset(**{**values, **overrides})


def batch(n=6, c=1, h=8, w=8):
    return torch.arange(n * c * h * w, dtype=torch.int64).remainder(251).to(torch.uint8).view(n, c, h, w)


def test_small_preset_without_augmentation_is_identity():
    x = batch()
    out = small_preset().augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, x.float())


def test_flip_mirrors_some_images_and_keeps_the_rest():
    x = batch(n=32)
    out = small_preset(flip=True).augment_batch(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.allclose(o, i.float().flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.allclose(o, i.float()) for o, i in zip(out, x)])
    assert (flipped | kept).all()
    assert 4 < int(flipped.sum()) < 28


def test_padded_random_crop_is_a_shifted_window_of_the_padded_image():
    x = batch(n=16)
    pad = 2
    out = small_preset(pad=pad).augment_batch(x, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x.float(), (pad,) * 4)
    shifts = set()
    for o, p in zip(out, padded):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(o, p[:, dy:dy + 8, dx:dx + 8])]
        assert matches, "every crop must be a window of the padded image"
        shifts.add(matches[0])
    assert len(shifts) > 3  # offsets are drawn per image, not once per batch


def test_augmentation_is_reproducible_from_the_generator_seed():
    x = batch(n=8, c=3, h=40, w=30)
    preset = make_preset(size=16, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3, small=False, flip=True, rotation=10)
    a = preset.augment_batch(x, torch.Generator().manual_seed(3))
    b = preset.augment_batch(x, torch.Generator().manual_seed(3))
    c = preset.augment_batch(x, torch.Generator().manual_seed(4))
    assert a.shape == (8, 3, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_resized_crop_of_a_constant_image_stays_constant():
    x = torch.full((4, 3, 50, 70), 200, dtype=torch.uint8)
    preset = make_preset(size=24, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3, small=False, flip=True)
    out = preset.augment_batch(x, torch.Generator().manual_seed(0))
    # Crops stay inside the image: no zero padding may leak in.
    assert torch.allclose(out, torch.full_like(out, 200.0), atol=1e-3)


def test_normalize_uses_mean_and_std_per_channel():
    preset = make_preset(size=2, channels=3, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25), small=True, flip=False)
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = preset.normalize(x)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 1.0, 0.0]))


def test_deterministic_training_is_detected():
    assert small_preset().train_is_deterministic
    assert not small_preset(pad=2).train_is_deterministic
    assert not small_preset(flip=True).train_is_deterministic
