"""Augmentation by strength: what `--augment none|light|medium|strong` adds to the eval view.

    parts = AUGMENT_LEVELS["medium"]       # auto_augment "trivial", erasing 0.1, ...
    ops = colour_ops(preset)               # torchvision v2 transforms, per image
    x = per_image(x_uint8, v2.Compose(ops), seed)  # ... on a batch already on the device
    x = random_erasing(x, 0.25, fill, generator)   # batched, drawn as v2.RandomErasing draws

Per level, photos | small images (at most 64 px a side: digits, CIFAR):
  none    nothing: training sees the eval view, the same every epoch (so a frozen backbone's
          features can be cached);
  light   random resized crop and horizontal flip | pad by a eighth of the side and crop back
          at random, no flip (a flipped 2 or 7 is not a digit); today's default;
  medium  light + TrivialAugmentWide (one random op of 14 at a random strength) + random erasing
          (p 0.1): torchvision's classification reference recipe;
  strong  light + RandAugment (2 ops at magnitude 9) + colour jitter 0.4 (brightness, contrast,
          saturation; grey images take the first two) + random erasing (p 0.25): timm's
          rand-m9, color_jitter 0.4, reprob 0.25.
--flip, --pad and --rotation override their parts of any level. Crop, flip, rotation and
erasing run batched on the device; TrivialAugment, RandAugment and colour jitter draw per
image (torchvision's own): on a CUDA device the loader runs them image by image on the batch
there (`per_image`), elsewhere a run that uses them feeds training through DataLoader workers.
"""
import math

import torch

LEVELS = ("none", "light", "medium", "strong")
AUGMENT_LEVELS = {
    "none": dict(crop=False, auto_augment=None, color_jitter=0.0, erasing=0.0),
    "light": dict(crop=True, auto_augment=None, color_jitter=0.0, erasing=0.0),
    "medium": dict(crop=True, auto_augment="trivial", color_jitter=0.0, erasing=0.1),
    "strong": dict(crop=True, auto_augment="rand", color_jitter=0.4, erasing=0.25),
}
AUTO_AUGMENTS = (None, "trivial", "rand")
RANDAUGMENT_OPS, RANDAUGMENT_MAGNITUDE = 2, 9  # timm's rand-m9-n2
ERASING_SCALE = (0.02, 0.33)  # area fraction of the erased box (torchvision's and timm's default)
ERASING_RATIO = (0.3, 3.3)
ERASING_ATTEMPTS = 10  # draws before giving up on an image, as torchvision


def colour_ops(auto_augment: str | None, color_jitter: float, interpolation) -> list:
    """The per-image torchvision v2 transforms of a level (uint8 C x H x W in and out)."""
    from torchvision.transforms import v2

    ops = []
    if auto_augment == "trivial":
        ops.append(v2.TrivialAugmentWide(interpolation=interpolation))
    elif auto_augment == "rand":
        ops.append(v2.RandAugment(num_ops=RANDAUGMENT_OPS, magnitude=RANDAUGMENT_MAGNITUDE, interpolation=interpolation))
    if color_jitter:
        ops.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    return ops


def per_image(x_uint8: torch.Tensor, transform, seed: int) -> torch.Tensor:
    """`transform` (colour_ops, composed) on each image of a uint8 N x C x H x W batch where it lies.

    torchvision's v2 transforms draw their parameters from torch's global CPU generator: it is
    set to `seed` for the batch and restored after, so the draws repeat with the seed (a resumed
    run sees the same images) and the caller's random stream is left as it was.
    Image by image on a GPU is fine: each op is a few small elementwise kernels on an image that
    is already there (no host decode, no copy, no worker processes), launched while the model's
    previous step still runs.
    """
    with torch.random.fork_rng(devices=[]):  # the CPU generator only: the ops draw nothing on the GPU
        torch.default_generator.manual_seed(seed)
        return torch.stack([transform(image) for image in x_uint8])


def erasing_fill(mean: tuple[float, ...]) -> list[int]:
    """The erased pixels' value per channel, 0..255: the data's mean, which normalisation turns
    into 0, as the torchvision references erase after normalising."""
    return [round(255 * m) for m in mean]


def random_erasing(x_0_255: torch.Tensor, p: float, fill: list[int], generator: torch.Generator) -> torch.Tensor:
    """v2.RandomErasing(p, scale, ratio, value=fill) on every image of an N x C x H x W batch,
    each drawn independently as torchvision draws it: with probability p, up to ERASING_ATTEMPTS
    (area, log-ratio) draws; the first box that fits is erased, none fitting leaves the image."""
    n, _, h, w = x_0_255.shape
    device = x_0_255.device
    shape = (n, ERASING_ATTEMPTS)
    area = torch.empty(shape, device=device).uniform_(*ERASING_SCALE, generator=generator) * h * w
    log_ratio = torch.empty(shape, device=device).uniform_(
        math.log(ERASING_RATIO[0]), math.log(ERASING_RATIO[1]), generator=generator)
    ratio = torch.exp(log_ratio)
    box_h, box_w = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
    fits = (box_h < h) & (box_w < w)
    first = fits.float().argmax(dim=1, keepdim=True)
    box_h, box_w = box_h.gather(1, first)[:, 0], box_w.gather(1, first)[:, 0]
    erase = fits.any(dim=1) & (torch.rand(n, device=device, generator=generator) < p)
    top = (torch.rand(n, device=device, generator=generator) * (h - box_h + 1)).floor()
    left = (torch.rand(n, device=device, generator=generator) * (w - box_w + 1)).floor()
    rows = torch.arange(h, device=device)[None, :]
    cols = torch.arange(w, device=device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])  # n, h
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])  # n, w
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None])[:, None]  # n, 1, h, w
    value = torch.tensor(fill, dtype=x_0_255.dtype, device=device).view(1, -1, 1, 1)
    return torch.where(mask, value, x_0_255)


def describe(preset) -> str:
    """The training augmentation of a Preset in words: 'pad 3 + random crop, TrivialAugmentWide, erasing p 0.1'."""
    if preset.small:
        parts = [f"pad {preset.pad} + random crop"] if preset.pad else []
    else:
        parts = ["random resized crop"] if preset.resized_crop else []
    parts += ["flip"] if preset.flip else []
    parts += [f"rotation +/-{preset.rotation:g} deg"] if preset.rotation else []
    parts += {"trivial": ["TrivialAugmentWide"], "rand": [f"RandAugment ({RANDAUGMENT_OPS} ops, magnitude "
                                                          f"{RANDAUGMENT_MAGNITUDE})"], None: []}[preset.auto_augment]
    parts += [f"colour jitter {preset.color_jitter:g}"] if preset.color_jitter else []
    parts += [f"erasing p {preset.erasing:g}"] if preset.erasing else []
    return ", ".join(parts) or "none (the eval view)"
