"""`visionfit show-data`: a labelled grid of samples, optionally beside what training makes of them.

    visionfit.show_data("hymenoptera/", out="grid.png", n=32, augment=True, model="resnet18")

--data and the data flags resolve exactly as in `visionfit train` (same config, same preset,
same BatchLoader), so the grid shows what training would see: the eval view of each image
and, with augment=True, the same image through the training augmentation, side by side.
"""
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.loader import BatchLoader
from ..data.plan import plan_input
from ..data.prepare import prepare_data, resolve_splits
from ..data.samples import DatasetSplits, label_text, strata
from ..data.transforms import Preset
from ..errors import ConfigError, DataError
from ..files import check_outputs, refuse_inside
from ..models import natural_input
from ..resolve import resolve_recipe
from .plots import plot_image_grid, short

SPLITS = ("train", "val", "test")


def show_data(data=None, out: str | Path = "grid.png", n: int = 32, augment: bool | str = False, seed: int = 0,
              split: str = "train", model: str = "lenet_relu", columns: int = 8, **data_options) -> Path:
    """Write a grid of `n` samples of `split` (spread over the classes, drawn with `seed`) to `out`.

    augment=True shows each image again as training augments it (the model's recipe's level),
    augment="medium" (none, light, medium, strong) at that level. data_options are train's data
    flags: images, image_size, channels, flip, rotation, pad, val_split, val_data, recipe, ...;
    `model` sets the default image size and augmentation, as in training.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split {split} is not one of {', '.join(SPLITS)}")
    if n < 1:
        raise ConfigError("--n must be at least 1")
    level = {"augment": augment} if isinstance(augment, str) else {}
    config, _ = resolve_recipe(Config.from_options(model=model, data=data, seed=seed, **level, **data_options))
    check_outputs({"-o": out})
    refuse_inside(("-o", out), [("the data folder", config.data.data), ("the image folder", config.data.images),
                                ("the validation folder", config.data.val_data)])  # a PNG there becomes data
    splits = resolve_splits(config.data, seed)
    samples = getattr(splits, split)
    if samples is None:
        raise DataError(f"{splits.name} has no {split} split; try --split train")
    picked = samples.subset(spread_over_classes(strata(samples.labels), n, seed))  # multi-label: by rarest tag
    plan = plan_input(config.data, splits.train if splits.train is not None else picked, natural_input(model)[1])
    prepared = prepare_data(config.data, DatasetSplits(splits.name, splits.class_names, train=picked), plan)
    images, titles = _views(prepared.train, prepared.preset, splits.class_names, augment, seed)
    heading = f"{splits.name} ({split}), {prepared.preset.size} px" + (
        f": each image, then as augment {plan.augment} makes it" if augment else "")
    plot_image_grid(out, images, titles, columns=columns, title=heading)
    return Path(out)


def spread_over_classes(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to n indices, taken from each class in turn (a seeded shuffle within each), so every class shows."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == label)) for label in np.unique(labels)]
    picks = []
    for position in range(max(len(rows) for rows in per_class)):
        picks += [int(rows[position]) for rows in per_class if position < len(rows)]
        if len(picks) >= n:
            break
    return np.asarray(picks[:n], dtype=np.int64)


def _views(store, preset: Preset, class_names: list[str], augment: bool, seed: int):
    """The images (eval view, then the augmented view when asked) and their titles."""
    to_eval_view = preset.eval_transform()
    shown = [to_eval_view(image) for image in store.images]
    names = [short(label_text(label, class_names)) for label in store.labels.numpy()]
    if not augment:
        return shown, names
    pairs = zip(shown, _augmented(store, preset, seed))
    titles = [title for name in names for title in (name, "(augmented)")]
    return [image for pair in pairs for image in pair], titles


def _augmented(store, preset: Preset, seed: int) -> list[torch.Tensor]:
    """Each image of the store as the training loader hands it over (epoch 0), back in store order."""
    loader = BatchLoader(store, preset, batch_size=len(store), train=True, device=torch.device("cpu"), seed=seed)
    x, _ = next(iter(loader))
    mean = torch.tensor(preset.mean).view(1, -1, 1, 1)
    std = torch.tensor(preset.std).view(1, -1, 1, 1)
    pixels = _to_uint8((x * std + mean) * 255)  # undo normalize(): back to what the eye can judge
    ordered = torch.empty_like(pixels)
    ordered[loader.indices()] = pixels  # the loader shuffles; put each image back in its place
    return list(ordered)


def _to_uint8(x_0_255: torch.Tensor) -> torch.Tensor:
    return x_0_255.round().clamp(0, 255).to(torch.uint8)

