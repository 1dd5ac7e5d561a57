"""Run a trained classifier over samples: decode, eval preprocessing, batch, softmax (or a
sigmoid per class for a multi-label model, as its file says).

    classifier = load_classifier("runs/exp/best.safetensors", device="cpu")
    outputs = classify(classifier, read_samples("test/", class_names=classifier.class_names))
    outputs.probs        # float32 N x K, a NaN row where an image could not be read or scored
    classifier.tags(outputs.probs[0])    # a multi-label model's classes over their thresholds
    outputs.errors       # {sample index: why it has no probabilities}

evaluate, predict and export's parity check all see images through this one path, which
is also the one validation takes during training (Preprocess.apply on the full-size decoded
image), so the same image gets the same numbers from each of them, whatever the batch size.
"""
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import progress
from ..checkpoints import load_model
from ..data.decode import load_image, match_channels
from ..data.folders import IMAGE_SUFFIXES, class_folders, image_files
from ..data.samples import UNLABELLED, Samples
from ..data.sources import evaluation_split, load_split
from ..data.transforms import Preset, preset_from_meta
from ..devices import resolve_device
from ..errors import ConfigError, DataError


NOT_FINITE = "the model's output is not finite"
NOT_FINITE_REASON = f"{NOT_FINITE} (NaN/inf): its weights may have diverged; retrain with a lower --lr"


@dataclass
class Classifier:
    """A model with what it needs to be used: its class names (index order) and preprocessing."""

    model: nn.Module  # in eval mode, on `device`
    class_names: list[str]
    preset: Preset
    device: torch.device
    meta: dict = field(default_factory=dict)
    path: Path | None = None  # the model file, when it came from one

    @property
    def multi_label(self) -> bool:
        """Each image gets a set of classes: sigmoid probabilities, each class over its own threshold."""
        return bool(self.meta.get("multi_label", False))

    @property
    def thresholds(self) -> np.ndarray:
        """A multi-label model's per-class thresholds (chosen on validation, kept in its file)."""
        return np.asarray(self.meta["thresholds"], dtype=np.float64)

    def tags(self, probs: np.ndarray) -> list[str]:
        """The classes whose probability reaches their threshold, in class order (multi-label)."""
        return [name for name, over in zip(self.class_names, probs >= self.thresholds) if over]


@dataclass
class Outputs:
    probs: np.ndarray  # float32 N x K softmax (multi-label: sigmoid) probabilities; NaN rows where `errors` has the index
    errors: dict[int, str]  # sample index -> why it has no probabilities (unreadable, non-finite output)


def load_classifier(model, device=None, class_names: list[str] | None = None, preset: Preset | None = None,
                    trust_code: bool = False) -> Classifier:
    """A Classifier from a model file, or from a module (its `visionfit_meta`, or the names and preset given).

    trust_code: allow a model file whose architecture is code outside visionfit (see load_model).
    """
    device = resolve_device(device)
    path = None
    if isinstance(model, (str, Path)):
        path, model = Path(model), load_model(model, device, trust_code)
    meta = dict(getattr(model, "visionfit_meta", {}))
    names = class_names or meta.get("class_names")
    if preset is None and "preset" in meta:
        preset = preset_from_meta(meta)
    if names is None or preset is None:
        raise ConfigError(
            "this module has no visionfit metadata; pass class_names=[...] and preset=Preset(...), "
            "or pass the model file (runs/<name>/best.safetensors) instead"
        )
    return Classifier(model.to(device).eval(), list(names), preset, device, meta, path)


def read_samples(data, images: str | None = None, class_names: list[str] | None = None,
                 multi_label: bool | None = None) -> Samples:
    """Samples from one image file, a list of files, a folder, a CSV, or a Samples object; or the
    test (else validation) split of an IDX folder, a train/val folder or a dataset name.

    A folder whose subfolders are all classes of the model is labelled by them;
    any other folder is read recursively as unlabelled images. multi_label: how a CSV's labels
    are read (a multi-label model's: as tags; see data/tags.py).
    """
    if isinstance(data, Samples):
        return data
    if isinstance(data, (list, tuple)):
        return Samples(labels=[UNLABELLED] * len(data), paths=[Path(p) for p in data])
    held_out = evaluation_split(data, images, class_names)
    if held_out is not None:
        return held_out
    path = Path(data).expanduser()
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return Samples(labels=[UNLABELLED], paths=[path])
    if path.is_dir() and not _class_labelled(path, class_names):
        files = image_files(path)
        if not files:
            raise DataError(f"{path} has no images ({' '.join(sorted(IMAGE_SUFFIXES))}) in it or its subfolders")
        return Samples(labels=[UNLABELLED] * len(files), paths=files)
    return load_split(path, images, class_names, multi_label=multi_label)


def _class_labelled(folder: Path, class_names: list[str] | None) -> bool:
    subfolders = {sub.name for sub in class_folders(folder)}
    return bool(subfolders) and class_names is not None and subfolders <= set(class_names)


def classify(classifier: Classifier, samples: Samples, batch_size: int = 64, tta: bool = False,
             workers: int | None = None, label: str = "classifying") -> Outputs:
    """Softmax probabilities (a multi-label model's: sigmoid) for every sample, in order;
    unreadable images and non-finite model outputs (NaN/inf logits) become errors, not crashes
    or a made-up label.

    tta: average the probabilities of each image and of its horizontal flip. `label` names the progress bar.
    """
    with progress.bar(total=len(samples), desc=label) as bar:
        return _classify(classifier, samples, batch_size, tta, workers, bar)


def _classify(classifier: Classifier, samples: Samples, batch_size: int, tta: bool, workers: int | None,
              bar) -> Outputs:
    probs = np.full((len(samples), len(classifier.class_names)), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    for rows, decoded in _decoded_batches(samples, classifier.preset, batch_size, workers):
        good = [(row, image) for row, image in zip(rows, decoded) if isinstance(image, torch.Tensor)]
        errors.update({row: str(image) for row, image in zip(rows, decoded) if isinstance(image, DataError)})
        if good:
            probs[[row for row, _ in good]] = pixel_probabilities(classifier, [image for _, image in good], tta)
        bar.update(len(rows))
    errors.update({int(row): NOT_FINITE_REASON for row in np.flatnonzero(~np.isfinite(probs).all(axis=1))
                   if row not in errors})
    return Outputs(probs, errors)


def pixel_probabilities(classifier: Classifier, images: list[torch.Tensor], tta: bool = False) -> np.ndarray:
    """Softmax (multi-label: sigmoid) probabilities, float32 N x K, of images as decode_sample or decode_upload give them."""
    x = classifier.preset.normalize(eval_pixels(images, classifier.device))
    return class_probabilities(classifier.model, x, tta, classifier.multi_label).cpu().numpy()


@torch.inference_mode()
def class_probabilities(model: nn.Module, x: torch.Tensor, tta: bool = False, multi_label: bool = False) -> torch.Tensor:
    """Softmax over the classes, or for a multi-label model a sigmoid per class."""
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        return logits.float().sigmoid() if multi_label else logits.float().softmax(dim=1)

    probs = probabilities(model(x))
    if tta:
        probs = (probs + probabilities(model(x.flip(-1)))) / 2
    return probs


def eval_pixels(images: list[torch.Tensor], device: torch.device | None = None) -> torch.Tensor:
    """Preprocessed uint8 C x size x size images -> float 0..255 N x C x size x size on `device`.

    Images travel as uint8 (4x less to copy) and become float where the model runs.
    """
    return torch.stack(images).to(device).float()


def decode_sample(samples: Samples, index: int, preset: Preset) -> torch.Tensor:
    """One sample through the eval preprocessing, as uint8 C x size x size; raises DataError
    for an unreadable file. Decoded at full size: the one resize is the preprocessing's."""
    if samples.images is not None:
        pixels = match_channels(samples.images[index], preset.channels)
    else:
        pixels = load_image(samples.paths[index], preset.channels)
    return _eval_tensor(pixels, preset)


def decode_upload(data: bytes, name: str, preset: Preset, max_pixels: int) -> torch.Tensor:
    """An uploaded image file's bytes through the same decoding and eval preprocessing as a file
    on disk (decode_sample), as uint8 C x size x size. Raises DataError for an unreadable upload,
    TooManyPixels (before decoding) for one of more than max_pixels pixels."""
    return _eval_tensor(load_image(io.BytesIO(data), preset.channels, max_pixels=max_pixels, name=name), preset)


def _eval_tensor(pixels: np.ndarray, preset: Preset) -> torch.Tensor:
    return torch.from_numpy(preset.preprocess.apply(pixels).transpose(2, 0, 1).copy())


def _decoded_batches(samples: Samples, preset: Preset, batch_size: int, workers: int | None):
    """(rows, decoded images or DataErrors) per batch; the next batch decodes while this one runs."""
    threads = workers or min(8, os.cpu_count() or 1)

    def decode(index: int):
        try:
            return decode_sample(samples, index, preset)
        except DataError as error:
            return error

    # Threads: PIL releases the GIL while decoding, and threads hand back tensors without pickling.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead = None  # the batch that decodes while the caller runs the one before it
        for start in range(0, len(samples), batch_size):
            rows = range(start, min(start + batch_size, len(samples)))
            current, ahead = ahead, (rows, [pool.submit(decode, row) for row in rows])
            if current is not None:
                yield current[0], [future.result() for future in current[1]]
        if ahead is not None:
            yield ahead[0], [future.result() for future in ahead[1]]
