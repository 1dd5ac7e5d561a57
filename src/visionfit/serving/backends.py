"""What `visionfit serve` runs images through: a model file under torch, or an ONNX export under onnxruntime.

    backend = load_backend("runs/exp/best.safetensors")       # or "model.onnx"
    probs = backend.probabilities([decode_upload(data, "digit.png", backend.preset, max_pixels)])

Both take the uint8 C x size x size images that infer/runner.py's decode path gives (the
one eval preprocessing) and return float32 N x classes softmax probabilities, so a served
image gets the numbers `visionfit predict` gives it. An ONNX file is data like a model file:
its metadata (infer/export.py `export_metadata`) is parsed and checked with the model
file's checks (checkpoints.check_meta), and its graph's input must be what that metadata says.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checkpoints import check_meta
from ..data.transforms import Preset, preset_from_meta
from ..errors import ModelError
from ..infer.runner import load_classifier, pixel_probabilities

ONNX_SUFFIX = ".onnx"
# ONNX metadata key -> (model-file field, parser, what the value must be, for messages).
ONNX_FIELDS = {
    "architecture": ("architecture", str, "text"),
    "class_names": ("class_names", json.loads, "a JSON list"),
    "channels": ("in_channels", int, "a whole number"),
    "input_size": ("input_size", int, "a whole number"),
    "mean": ("mean", json.loads, "a JSON list"),
    "std": ("std", json.loads, "a JSON list"),
    "preprocess": ("preprocess", json.loads, "a JSON object"),
    "augmentation": ("preset", json.loads, "a JSON object"),
}
ONNX_INPUT_TYPES = {"tensor(uint8)": "uint8", "tensor(float)": "float32"}  # graph input type -> input_format's start
MAX_METRICS = 64  # entries of a model file's "metrics" shown on the page; more is not a visionfit file


@dataclass
class Backend:
    """A loaded model, whichever runtime runs it."""

    runtime: str  # "torch" or "onnxruntime"
    path: Path
    class_names: list[str]
    preset: Preset
    meta: dict  # the file's checked metadata
    probabilities: Callable[[list[torch.Tensor]], np.ndarray]  # uint8 C x H x W images -> float32 N x K

    def describe(self) -> dict:
        """What GET /model answers and the page shows: plain JSON, every field from a checked source."""
        spec = self.preset.preprocess
        return {"name": self.path.name, "runtime": self.runtime, "architecture": self.meta["architecture"],
                "class_names": self.class_names, "input_size": spec.size, "channels": spec.channels,
                "preprocess": spec.summary(), "metrics": shown_metrics(self.meta.get("metrics")),
                "visionfit_version": str(self.meta.get("visionfit_version", ""))[:40]}


def load_backend(path: str | Path, device=None, trust_code: bool = False) -> Backend:
    """An ONNX file (by its suffix) under onnxruntime, else a visionfit model file under torch on `device`."""
    path = Path(path)
    if path.suffix.lower() == ONNX_SUFFIX:
        return _onnx_backend(path)
    classifier = load_classifier(path, device, trust_code=trust_code)
    return Backend("torch", path, classifier.class_names, classifier.preset, classifier.meta,
                   lambda images: pixel_probabilities(classifier, images))


def shown_metrics(metrics) -> dict[str, float]:
    """A model file's "metrics" (unchecked by load_model: any reader checks what it uses), kept only
    as a short mapping of short names to finite numbers; anything else is not shown."""
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        return {}
    return {key: value for key, value in metrics.items() if isinstance(key, str) and len(key) <= 40
            and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def _onnx_backend(path: Path) -> Backend:
    session = _onnx_session(path)
    props = session.get_modelmeta().custom_metadata_map
    meta = check_meta(onnx_meta(props, str(path)), str(path))
    preset = preset_from_meta(meta)
    input_name = _graph_input(session, props, preset, path)
    output_name = _graph_output(session, props, len(meta["class_names"]), path)
    takes_uint8 = session.get_inputs()[0].type == "tensor(uint8)"
    multi_label = props.get("multi_label") == "true"  # export_metadata: a sigmoid per class

    def probabilities(images: list[torch.Tensor]) -> np.ndarray:
        pixels = torch.stack(images)
        x = pixels if takes_uint8 else preset.normalize(pixels)
        logits = session.run([output_name], {input_name: x.numpy()})[0]
        logits = torch.from_numpy(logits).float()  # read as runner.class_probabilities reads them
        return (logits.sigmoid() if multi_label else logits.softmax(dim=1)).numpy()

    return Backend("onnxruntime", path, list(meta["class_names"]), preset, meta, probabilities)


def _onnx_session(path: Path):
    import onnxruntime

    if not path.is_file():
        raise ModelError(f"ONNX file {path} does not exist; write one with `visionfit export MODEL --onnx {path}`")
    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types (Fail, InvalidGraph, InvalidProtobuf...)
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelError(f"{path} is not an ONNX model onnxruntime can load ({first})") from error


def onnx_meta(props: dict[str, str], source: str) -> dict:
    """The model-file metadata an ONNX export's metadata_props carry (export_metadata's keys), parsed;
    check_meta then checks it as it checks a model file's."""
    if "class_names" not in props:
        raise ModelError(f"{source} has no visionfit metadata (no class_names); export it with "
                         "`visionfit export MODEL --onnx OUT.onnx`, which stores classes and preprocessing in it")
    meta = {"visionfit_version": props.get("visionfit_version", "")}
    for key, (field, parse, what) in ONNX_FIELDS.items():
        if key not in props:
            continue  # check_meta names the first missing field
        try:
            meta[field] = parse(props[key])
        except (ValueError, RecursionError) as error:  # RecursionError: absurdly nested JSON
            raise ModelError(f"{source} has malformed visionfit metadata: '{key}' is not {what} "
                             f"({type(error).__name__}). The file is corrupt or was edited; export it again") from error
    return meta


def _graph_input(session, props: dict[str, str], preset: Preset, path: Path) -> str:
    """The graph's one input, once it is what the metadata says: its name, uint8 or float32, C x size x size."""
    inputs = session.get_inputs()
    expected = props.get("input_name", "images")
    if len(inputs) != 1 or inputs[0].name != expected:
        raise ModelError(f"{path}: the graph's inputs {[i.name[:40] for i in inputs][:4]} are not the one input "
                         f"'{expected[:40]}' its metadata names; export it again with `visionfit export --onnx`")
    kind = ONNX_INPUT_TYPES.get(inputs[0].type)
    if kind is None or not props.get("input_format", kind).startswith(kind):
        raise ModelError(f"{path}: the graph takes {inputs[0].type[:40]} but its metadata says "
                         f"'{props.get('input_format', '')[:60]}'; export it again with `visionfit export --onnx`")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or shape[1:] != [preset.channels, preset.size, preset.size]:
        raise ModelError(f"{path}: the graph takes {shape} images, its metadata says N x {preset.channels} x "
                         f"{preset.size} x {preset.size}; export it again with `visionfit export --onnx`")
    return expected


def _graph_output(session, props: dict[str, str], classes: int, path: Path) -> str:
    """The output the metadata names, once the graph has it and it scores one value per class name."""
    name = props.get("output_name", "logits")
    output = next((output for output in session.get_outputs() if output.name == name), None)
    if output is None:
        raise ModelError(f"{path}: its metadata names output '{name[:40]}', which the graph does not have; "
                         "export it again with `visionfit export --onnx`")
    scored = output.shape[-1] if output.shape else None
    if isinstance(scored, int) and scored != classes:
        raise ModelError(f"{path}: the graph scores {scored} classes, its metadata names {classes}; "
                         "the file was edited: export it again with `visionfit export --onnx`")
    return name
