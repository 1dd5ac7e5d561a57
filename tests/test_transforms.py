import math

import torch

from visionfit.data import transforms

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


def coordinate_image(height: int = 64, width: int = 96) -> torch.Tensor:
    """3 x H x W uint8: red grows left to right, green top to bottom, so a crop's box can be read off it."""
    xs = torch.linspace(0, 255, width).round()
    ys = torch.linspace(0, 255, height).round()
    return torch.stack([xs[None].expand(height, width), ys[:, None].expand(height, width),
                        torch.full((height, width), 128.0)]).to(torch.uint8)


def crop_statistics(out: torch.Tensor, height: int, width: int) -> dict:
    """Per-image area fraction, aspect ratio and mirroring, measured from coordinate_image crops."""
    size = out.shape[-1]
    out = out.float()
    width_fraction = (out[:, 0, :, -1] - out[:, 0, :, 0]).mean(1) * size / (size - 1) / 255  # < 0: mirrored
    height_fraction = (out[:, 1, -1, :] - out[:, 1, 0, :]).mean(1) * size / (size - 1) / 255
    return {"scale": width_fraction.abs() * height_fraction,
            "ratio": width_fraction.abs() * width / (height_fraction * height),
            "flipped": (width_fraction < 0).float().mean().item(),
            "pixel_mean": out.mean((0, 2, 3)), "pixel_std": out.std((0, 2, 3))}


def test_batched_and_per_sample_random_resized_crops_draw_from_one_distribution():
    """airbench-style batch augmentation and torchvision's per-sample v2 pipeline must not train
    two different models: crop scales, aspect ratios, flip rate and pixel statistics agree."""
    n, (height, width) = 1500, (64, 96)
    image = coordinate_image(height, width)
    preset = make_preset(size=16, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3, small=False, flip=True)
    batched = preset.augment_batch(image[None].expand(n, -1, -1, -1).contiguous(), torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    per_sample = torch.stack([preset.train_transform()(image) for _ in range(n)])
    a, b = crop_statistics(batched, height, width), crop_statistics(per_sample, height, width)
    for stats in (a, b):
        assert 0.07 <= stats["scale"].min() and stats["scale"].max() <= 1.0
        assert 0.7 <= stats["ratio"].min() and stats["ratio"].max() <= 1.42
        assert 0.45 <= stats["flipped"] <= 0.55
    assert abs(a["scale"].mean() - b["scale"].mean()) < 0.03
    for q in (0.1, 0.5, 0.9):
        assert abs(a["scale"].quantile(q) - b["scale"].quantile(q)) < 0.05
        assert abs(a["ratio"].quantile(q) - b["ratio"].quantile(q)) < 0.05
    assert torch.allclose(a["pixel_mean"], b["pixel_mean"], atol=2.5) and torch.allclose(a["pixel_std"], b["pixel_std"], atol=3)


def test_batched_and_per_sample_padded_crops_draw_the_same_shifts():
    n, pad = 1200, 3
    image = coordinate_image(16, 16)[:1]  # one channel: red, 0..255 left to right
    preset = make_preset(size=16, channels=1, mean=(0.5,), std=(0.5,), small=True, flip=True, pad=pad)
    batched = preset.augment_batch(image[None].expand(n, -1, -1, -1).contiguous(), torch.Generator().manual_seed(1))
    torch.manual_seed(1)
    per_sample = torch.stack([preset.train_transform()(image) for _ in range(n)]).float()

    def shifts_and_flips(out):
        middle = out[:, 0, 8, 4:12]  # away from the zero padding
        flipped = middle[:, -1] < middle[:, 0]
        step = 255 / 15
        start = torch.where(flipped, middle[:, -1], middle[:, 0])
        return (start / step).round() - 4, flipped.float().mean().item()

    (shift_a, flip_a), (shift_b, flip_b) = shifts_and_flips(batched), shifts_and_flips(per_sample)
    for shift in (shift_a, shift_b):
        assert shift.min() == -pad and shift.max() == pad
    counts_a = torch.bincount((shift_a + pad).long(), minlength=2 * pad + 1) / n
    counts_b = torch.bincount((shift_b + pad).long(), minlength=2 * pad + 1) / n
    assert (counts_a - counts_b).abs().max() < 0.05 and abs(flip_a - flip_b) < 0.07


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.double().sort().values, b.double().sort().values
    points = torch.cat([a, b])
    gap = torch.searchsorted(a, points, right=True) / len(a) - torch.searchsorted(b, points, right=True) / len(b)
    return gap.abs().max().item()


def test_batched_crop_draws_torchvisions_random_resized_crop_on_the_presized_square():
    """The crops cut from a presized P x P store on the device have the scale (area fraction) and
    aspect ratio distribution of torchvision's RandomResizedCrop.get_params on that square."""
    from torchvision.transforms import RandomResizedCrop

    side, ours_n, theirs_n = 258, 40_000, 4_000  # get_params draws one crop per Python call: fewer of them
    theta = transforms._random_resized_crop_theta(ours_n, (side, side), torch.device("cpu"),
                                                  torch.Generator().manual_seed(0)).double()
    ours = {"scale": theta[:, 0, 0] * theta[:, 1, 1], "log_aspect": torch.log(theta[:, 0, 0] / theta[:, 1, 1])}
    torch.manual_seed(0)
    square = torch.zeros(1, side, side)
    crops = torch.tensor([RandomResizedCrop.get_params(square, transforms.RRC_SCALE, transforms.RRC_RATIO)[2:]
                          for _ in range(theirs_n)], dtype=torch.float64)  # (h, w) per draw
    theirs = {"scale": crops[:, 0] * crops[:, 1] / side**2, "log_aspect": torch.log(crops[:, 1] / crops[:, 0])}
    for name in ours:
        # The 0.1% critical value of the two-sample KS statistic for these sizes is 0.032.
        assert ks_statistic(ours[name], theirs[name]) < 0.032, name
        for q in (0.05, 0.5, 0.95):
            assert abs(ours[name].quantile(q) - theirs[name].quantile(q)) < 0.03, (name, q)
    assert ours["scale"].min() >= 0.079 and ours["log_aspect"].abs().max() <= math.log(4 / 3) + 0.01
    # Crops stay inside the square: centre offset plus half-width never passes the border.
    assert ((theta[:, 0, 2].abs() + theta[:, 0, 0]) <= 1 + 1e-6).all()
    assert ((theta[:, 1, 2].abs() + theta[:, 1, 1]) <= 1 + 1e-6).all()
