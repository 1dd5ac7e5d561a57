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
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import progress
from ..checkpoints import load_model
from ..data.decode import load_image
from ..data.disk_cache import cache_folder
from ..data.folders import IMAGE_SUFFIXES, class_folders, image_files, load_class_folders, visible_entries
from ..data.samples import UNLABELLED, Samples
from ..data.sources import evaluation_split, is_dataset_folder, load_split
from ..data.transforms import Preset, preset_from_meta
from ..devices import resolve_device
from ..errors import ConfigError, DataError
from ..train.memory_format import cpu_memory_format
from .batches import eval_batches, eval_view, model_input


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
    channels_last: bool | None = None  # None until a CPU classification long enough to time it decides

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
    path = Path(data).expanduser()
    if path.is_dir():
        return _read_folder(path, images, class_names)
    held_out = evaluation_split(data, images, class_names)  # a dataset's name
    if held_out is not None:
        return held_out
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return Samples(labels=[UNLABELLED], paths=[path])
    return load_split(path, images, class_names, multi_label=multi_label)


def _read_folder(folder: Path, images: str | None, class_names: list[str] | None) -> Samples:
    """A folder, listed once (a folder of 10,000 test images is not listed again for each question):
    a dataset's held-out split, class folders of the model's classes, else its images, unlabelled."""
    entries = visible_entries(folder)
    if is_dataset_folder(folder, entries):
        return evaluation_split(folder, images, class_names)
    subfolders = class_folders(folder, entries)
    if subfolders and class_names is not None and {sub.name for sub in subfolders} <= set(class_names):
        return load_class_folders(folder, class_names, entries)[1]
    files = image_files(folder, entries)
    if not files:
        raise DataError(f"{folder} has no images ({' '.join(sorted(IMAGE_SUFFIXES))}) in it or its subfolders")
    return Samples(labels=[UNLABELLED] * len(files), paths=files)


def classify(classifier: Classifier, samples: Samples, batch_size: int = 64, tta: bool = False,
             workers: int | None = None, label: str = "classifying") -> Outputs:
    """Softmax probabilities (a multi-label model's: sigmoid) for every sample, in order;
    unreadable images and non-finite model outputs (NaN/inf logits) become errors, not crashes
    or a made-up label.

    tta: average the probabilities of each image and of its horizontal flip. `label` names the progress bar.
    """
    use_faster_memory_format(classifier, len(samples), batch_size)
    with progress.bar(total=len(samples), desc=label) as bar:
        return _classify(classifier, samples, batch_size, tta, workers, bar)


def use_faster_memory_format(classifier: Classifier, images: int, batch_size: int) -> None:
    """On a CPU, put a model loaded from a file in the memory format that infers faster over
    `images` (train/memory_format.py: timed on copies when that takes little of the work, and
    remembered in the cache folder; channels_last made mobilenet_v3_small 1.4x faster here). Once
    per classifier; a module passed in by the caller is left as it is."""
    if classifier.device.type != "cpu" or classifier.path is None or classifier.channels_last is not None:
        return
    batch = max(1, min(batch_size, images))
    size, channels = classifier.preset.size, classifier.preset.channels
    choice = cpu_memory_format(classifier.model, (batch, channels, size, size), math.ceil(images / batch),
                               cache_folder(), training=False)
    if choice.note is None:  # not timed (too little work): decide again for a bigger one
        return
    classifier.channels_last = choice.channels_last
    if choice.channels_last:
        classifier.model.to(memory_format=torch.channels_last)


def _classify(classifier: Classifier, samples: Samples, batch_size: int, tta: bool, workers: int | None,
              bar) -> Outputs:
    probs = np.full((len(samples), len(classifier.class_names)), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    for batch in eval_batches(samples, classifier.preset.preprocess, batch_size, workers):
        errors.update({row: str(error) for row, error in batch.errors.items()})
        if batch.scored:
            x = model_input(batch.pixels, classifier.preset, classifier.device)
            if classifier.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            probs[batch.scored] = class_probabilities(classifier.model, x, tta, classifier.multi_label).cpu().numpy()
        bar.update(len(batch.rows))
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
    pixels = eval_view(samples, index, preset.preprocess)
    if isinstance(pixels, DataError):
        raise pixels
    return _chw_tensor(pixels)


def decode_upload(data: bytes, name: str, preset: Preset, max_pixels: int) -> torch.Tensor:
    """An uploaded image file's bytes through the same decoding and eval preprocessing as a file
    on disk (decode_sample), as uint8 C x size x size. Raises DataError for an unreadable upload,
    TooManyPixels (before decoding) for one of more than max_pixels pixels."""
    pixels = load_image(io.BytesIO(data), preset.channels, max_pixels=max_pixels, name=name)
    return _chw_tensor(preset.preprocess.apply(pixels))


def _chw_tensor(pixels_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels_hwc.transpose(2, 0, 1).copy())  # a copy: Pillow's arrays are read-only
