"""`visionfit eval --cam`: Grad-CAM of the top losses, in the grid and as one PNG per image.

    layer = find_cam_layer(classifier, "layer4")                 # or None: found in the model
    overlays = top_loss_cams(classifier, samples, report.top_losses, layer)
    write_cam_folder(out_dir / "cam", report.top_losses, overlays)

Each map is for the class the model predicted: where it found the evidence for its wrong answer.
"""
import csv
import re
from pathlib import Path

import torch

from ..data.samples import Samples
from ..files import atomic_path, writing
from .cam import check_layer, grad_cam, overlay, target_layer
from .runner import Classifier, decode_sample, eval_pixels

CAM_FOLDER = "cam"
NAME_CHARS = 60  # of an image's name in its CAM file's name


def find_cam_layer(classifier: Classifier, name: str | None) -> str:
    """The layer Grad-CAM reads: `name` (--cam-layer) when given and real, else the one the model shows."""
    if name is not None:
        return check_layer(classifier.model, name)
    preset = classifier.preset
    example = torch.zeros(1, preset.channels, preset.size, preset.size, device=classifier.device)
    return target_layer(classifier.model, example)


def top_loss_cams(classifier: Classifier, samples: Samples, rows: list[dict], layer: str) -> list[torch.Tensor]:
    """uint8 3 x H x W overlays, one per top-loss row: the predicted class's Grad-CAM over the image."""
    pixels = [decode_sample(samples, row["index"], classifier.preset) for row in rows]
    x = classifier.preset.normalize(eval_pixels(pixels, classifier.device))
    predicted = torch.tensor([classifier.class_names.index(row["predicted"]) for row in rows])
    heat = grad_cam(classifier.model, layer, x, predicted)
    return [overlay(image, maps) for image, maps in zip(pixels, heat)]


def write_cam_folder(folder: Path, rows: list[dict], overlays: list[torch.Tensor]) -> list[Path]:
    """folder/NN_<image>.png per top-loss image (worst first) and folder/index.csv that says which is which."""
    from PIL import Image

    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    paths = cam_paths(folder, rows)
    for path, tile in zip(paths, overlays):
        with atomic_path(path) as tmp:
            Image.fromarray(tile.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    with atomic_path(folder / "index.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8",
                                                         errors="surrogateescape") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "image", "true", "predicted", "confidence", "cam_class"])
        writer.writerows([[path.name, row["image"], row["true"], row["predicted"], f"{row['confidence']:.4f}",
                           row["predicted"]] for path, row in zip(paths, rows)])
    return paths


def cam_paths(folder: Path, rows: list[dict]) -> list[Path]:
    """Where each row's CAM goes: its rank, then its image's name in characters every file system takes."""
    return [folder / f"{rank:02d}_{_safe(row['image'])}.png" for rank, row in enumerate(rows, 1)]


def _safe(origin: str) -> str:
    stem = Path(origin).stem or origin
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:NAME_CHARS]
