"""Classify images with a visionfit ONNX export, using only its metadata, Pillow, numpy and onnxruntime.

    python examples/onnx_consumer.py model.onnx photo1.jpg photo2.png ...

No torch and no visionfit: this is what a deployment elsewhere needs, and the test suite runs
it (with torch made unimportable) to check that it agrees with `visionfit predict`. Every
preprocessing step comes from the file's "preprocess" metadata (visionfit's Preprocess.describe).
"""
import json
import sys

import numpy as np
import onnxruntime
from PIL import Image, ImageOps

RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC}


def decode(path: str, channels: int) -> np.ndarray:
    """H x W x channels uint8: EXIF orientation applied, transparency over black, RGB or luminance."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if "A" in image.getbands() or "transparency" in image.info:
            rgba = np.asarray(image.convert("RGBA")).astype(np.uint16)
            image = Image.fromarray(((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8))
        image = image.convert("RGB" if channels == 3 else "L")
        pixels = np.asarray(image)
    return pixels if channels == 3 else pixels[..., None]


def preprocess(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """The resize rule, the center crop, then (pixel / 255 - mean) / std, as C x size x size float32."""
    height, width = pixels.shape[:2]
    side, size = spec["resize_side"], spec["size"]
    if spec["resize"] == "both":
        target = (side, side)
    else:  # the shorter side to `side`; the longer one floor(longer * side / shorter)
        longer = max(side, int(max(height, width) * side / min(height, width)))
        target = (side, longer) if height <= width else (longer, side)
    if target != (height, width):
        grey = pixels.shape[-1] == 1
        image = Image.fromarray(pixels[..., 0] if grey else pixels)
        resized = np.asarray(image.resize(target[::-1], RESAMPLING[spec["interpolation"]]))
        pixels = resized[..., None] if grey else resized
    top, left = round((target[0] - size) / 2), round((target[1] - size) / 2)
    crop = pixels[top : top + size, left : left + size].astype(np.float32) / 255
    normalised = (crop - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    return normalised.transpose(2, 0, 1)


def classify(model_path: str, image_paths: list[str]) -> list[tuple[str, str, float]]:
    """(image, predicted class name, softmax probability) for each image; for a multi-label model
    (metadata "multi_label"), (image, its classes over their thresholds space-separated, the lowest
    sigmoid probability among them, or the highest of all when there are none)."""
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    spec, names = json.loads(meta["preprocess"]), json.loads(meta["class_names"])
    batch = np.stack([preprocess(decode(path, spec["channels"]), spec) for path in image_paths])
    logits = session.run([meta["output_name"]], {meta["input_name"]: batch})[0]
    if meta.get("multi_label") == "true":
        return tags(image_paths, names, logits, np.asarray(json.loads(meta["thresholds"])))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    best = probs.argmax(axis=1)
    return [(path, names[k], float(probs[i, k])) for i, (path, k) in enumerate(zip(image_paths, best))]


def tags(image_paths: list[str], names: list[str], logits: np.ndarray, thresholds: np.ndarray):
    probs = (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    rows = []
    for path, row in zip(image_paths, probs):
        over = row >= thresholds
        rows.append((path, " ".join(name for name, on in zip(names, over) if on),
                     float(row[over].min() if over.any() else row.max())))
    return rows


if __name__ == "__main__":
    for image, label, confidence in classify(sys.argv[1], sys.argv[2:]):
        print(f"{image},{label},{confidence:.6f}")
