"""`visionfit export`: a model file to ONNX or TorchScript, with its preprocessing on board.

    visionfit.export_onnx("runs/exp/best.safetensors", "model.onnx", check=True)
    visionfit.export_torchscript("runs/exp/best.safetensors", "model.pt", check=True)

The exported graph takes "images" with a dynamic batch axis and returns "logits" (N x classes):
softmax them, or for a multi-label model (metadata "multi_label") a sigmoid per class compared
with the metadata's per-class "thresholds".
"images" is float32 N x C x H x W normalised by the model's preset, or, with
with_preprocessing=True, uint8 0..255 with the scaling and normalisation inside the graph,
so a deployment cannot feed wrongly normalised data. Class names and preprocessing travel
in the file (ONNX metadata_props, or TorchScript's extra file visionfit.json).
"""
import copy
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..errors import ConfigError, ModelError
from ..data.transforms import normalize
from ..files import atomic_path, check_outputs
from .parity import Parity, check_pixels, compare, require_parity
from .protected import protected_inputs
from .runner import Classifier, load_classifier

INPUT_NAME, OUTPUT_NAME = "images", "logits"
EXAMPLE_BATCH = 2  # torch.export specialises a size-1 dimension to a constant; 2 stays symbolic
# The torch.export-based exporter writes opset 18 and converts down from there; below 17 its
# converter gives up and silently keeps 18, so we refuse those before spending the export's time.
MIN_OPSET = 17
NATIVE_OPSET = 18  # the oldest opset the exporter writes without converting
# Reduce ops that gained the noop_with_empty_axes attribute in opset 18 (ReduceSum had it from 13).
REDUCE_OPS_WITH_NOOP_FROM_18 = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                                "ReduceMin", "ReduceProd", "ReduceSumSquare"}
TORCHSCRIPT_META = "visionfit.json"


@dataclass
class ExportResult:
    path: Path
    checks: list[Parity] = field(default_factory=list)  # empty unless check=True


class Preprocessed(nn.Module):
    """uint8 N x C x H x W (0..255) in, logits out: the preset's normalisation inside the graph."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))  # buffers: constants for tracers
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.model(normalize(images_uint8, self.mean, self.std))


def export_onnx(model, path: str | Path, opset: int | None = None, with_preprocessing: bool = False,
                check: bool = False, check_data=None, tolerance: float = 1e-4, trust_code: bool = False) -> ExportResult:
    """Write `model` (a model file, or a module with visionfit metadata) as ONNX to `path`.

    check=True runs onnx.checker and compares onnxruntime with PyTorch on real images
    (`check_data`, else the bundled MNIST sample), raising ParityError over `tolerance`.
    trust_code: allow a model file whose architecture is code outside visionfit (see load_model).
    """
    check_outputs({"--onnx": path}, protected_inputs(model, check_data if check else None))
    if opset is not None and opset < MIN_OPSET:
        raise ConfigError(f"--opset {opset}: the exporter writes opset {MIN_OPSET} or newer; use --opset {MIN_OPSET} or more")
    classifier, module = deployable(model, with_preprocessing, trust_code)
    inputs = _check_inputs(classifier, with_preprocessing, check_data) if check else None  # bad --check-data fails fast
    program = _onnx_program(module, _example(classifier, with_preprocessing), opset)
    program.model.metadata_props.update(export_metadata(classifier, with_preprocessing))
    with atomic_path(path) as tmp:
        program.save(str(tmp), external_data=False)
    result = ExportResult(Path(path))
    if check:
        result.checks = compare(module, onnxruntime_runner(path), inputs)
        require_parity(result.checks, tolerance, f"ONNX model {path} (onnxruntime)")
    return result


def export_torchscript(model, path: str | Path, with_preprocessing: bool = False, check: bool = False,
                       check_data=None, tolerance: float = 1e-4, trust_code: bool = False) -> ExportResult:
    """Write `model` as a traced TorchScript file; check=True compares torch.jit.load's output with PyTorch."""
    check_outputs({"--torchscript": path}, protected_inputs(model, check_data if check else None))
    classifier, module = deployable(model, with_preprocessing, trust_code)
    inputs = _check_inputs(classifier, with_preprocessing, check_data) if check else None
    with warnings.catch_warnings():
        # torch 2.14 marks torch.jit deprecated; the user asked for TorchScript by name.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
        # check_trace re-traces to compare graphs (10 s for an EfficientNet); check=True's
        # comparison on real images after saving and loading is the stronger test.
        traced = torch.jit.trace(module, _example(classifier, with_preprocessing), check_trace=False)
        meta = {TORCHSCRIPT_META: json.dumps(export_metadata(classifier, with_preprocessing))}
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files=meta)
        loaded = torch.jit.load(str(path)) if check else None
    result = ExportResult(Path(path))
    if check:
        result.checks = compare(module, _torchscript_runner(loaded), inputs)
        require_parity(result.checks, tolerance, f"TorchScript model {path} (torch.jit.load)")
    return result


def export_metadata(classifier: Classifier, with_preprocessing: bool) -> dict[str, str]:
    """What a deployment needs to feed the model and read its output, as strings (ONNX metadata_props).

    "preprocess" is the whole eval spec (Preprocess.describe: decode, resize rule and side,
    interpolation, center crop, scale, mean, std, channel order); the flat keys repeat its
    numbers for consumers that read one key at a time. examples/onnx_consumer.py reproduces
    visionfit's predictions from this metadata alone, with Pillow and numpy.
    """
    spec = classifier.preset.preprocess
    if with_preprocessing:
        input_format = "uint8 N x C x H x W, pixel values 0..255 after resize and crop; normalisation is inside the graph"
    else:
        input_format = "float32 N x C x H x W, (pixel / 255 - mean) / std per channel, after resize and crop"
    return {
        "visionfit_version": __version__,
        "architecture": str(classifier.meta.get("architecture", type(classifier.model).__name__)),
        "class_names": json.dumps(classifier.class_names),
        "input_name": INPUT_NAME, "output_name": OUTPUT_NAME, "input_format": input_format,
        "input_size": str(spec.size), "channels": str(spec.channels),
        "channel_order": "RGB" if spec.channels == 3 else "L",
        "resize": spec.resize, "resize_side": str(spec.resize_side), "interpolation": spec.interpolation,
        "crop": "center", "mean": json.dumps(list(spec.mean)), "std": json.dumps(list(spec.std)),
        "preprocess": json.dumps(spec.describe()),
        "augmentation": json.dumps(classifier.preset.augmentation()),
        **_head_metadata(classifier),
    }


def _head_metadata(classifier: Classifier) -> dict[str, str]:
    """How to read "logits": softmax over the classes, or for a multi-label model a sigmoid per
    class and each class present where its probability reaches its threshold."""
    if not classifier.multi_label:
        return {"multi_label": "false", "output_activation": "softmax"}
    return {"multi_label": "true", "output_activation": "sigmoid",
            "thresholds": json.dumps([float(t) for t in classifier.thresholds])}


def deployable(model, with_preprocessing: bool, trust_code: bool) -> tuple[Classifier, nn.Module]:
    """The classifier on the CPU, and the module to export (wrapped when preprocessing goes inside)."""
    if isinstance(model, nn.Module):
        model = copy.deepcopy(model)  # moving to the CPU must not move the caller's module
    classifier = load_classifier(model, device="cpu", trust_code=trust_code)
    module = classifier.model
    if with_preprocessing:
        module = Preprocessed(module, classifier.preset.mean, classifier.preset.std).eval()
    return classifier, module


def _example(classifier: Classifier, with_preprocessing: bool) -> torch.Tensor:
    preset = classifier.preset
    shape = (EXAMPLE_BATCH, preset.channels, preset.size, preset.size)
    return torch.zeros(shape, dtype=torch.uint8) if with_preprocessing else torch.zeros(shape)


def _onnx_program(module: nn.Module, example: torch.Tensor, opset: int | None):
    """torch.export-based ("dynamo") export with a symbolic batch dimension, at `opset`, stamped
    with the oldest IR version that opset allows, so every onnxruntime that runs the opset loads it.

    Chosen over the TorchScript-based exporter (dynamo=False): it is torch's default and
    maintained path, and gave parity within 1e-5 on every net we test (classic, torchvision, timm).
    """
    batch = torch.export.Dim("batch")
    try:
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False,
                                    opset_version=None if opset is None else max(opset, NATIVE_OPSET),
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: batch},))
    except Exception as error:  # torch.export and the ONNX translator raise many internal types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"torch.onnx.export could not export this model: {first_line}") from error
    if opset is not None and opset < NATIVE_OPSET:
        program.model = _converted_down(program.model, opset)
    produced = program.model.opset_imports.get("", None)
    if opset is not None and produced != opset:
        raise ConfigError(f"--opset {opset}: the exporter produced opset {produced} instead; try another --opset")
    program.model.ir_version = _oldest_ir_version(program.model.opset_imports)
    return program


def _oldest_ir_version(opset_imports: dict[str, int]) -> int:
    """The IR version of the onnx release that introduced these opsets: 8 for opset 17 and 18, 9 for
    19 and 20, 10 for 21. The exporter stamps its own newest IR (10 with torch 2.14), which
    onnxruntime before 1.18 refuses whatever the opset; an exported float classifier uses nothing
    newer than its opset's IR (no float8, int4 or function overloads)."""
    from onnx import helper

    return helper.find_min_ir_version_for([helper.make_opsetid(domain, version) for domain, version in
                                           opset_imports.items()], ignore_unknown=True)


def _converted_down(model, opset: int):
    """`model` (an onnx_ir model at NATIVE_OPSET) converted to the older `opset` by onnx's converter.

    Converted here, once the exporter has folded constants: its own conversion runs before,
    when a global average pool's ReduceMean has no constant axes yet, and quietly keeps opset 18.
    """
    import onnx
    from onnxscript import ir

    try:
        proto = onnx.version_converter.convert_version(ir.serde.serialize_model(model), opset)
        _drop_noop_with_empty_axes(proto.graph)
        onnx.checker.check_model(proto)
    except (RuntimeError, onnx.checker.ValidationError) as error:  # a converter assertion, or an invalid result
        first_line = str(error).strip().splitlines()[0]
        raise ConfigError(f"--opset {opset}: onnx could not convert this model to opset {opset} ({first_line}); "
                          f"use --opset {NATIVE_OPSET} or newer") from error
    return ir.serde.deserialize_model(proto)


def _drop_noop_with_empty_axes(graph) -> None:
    """onnx's 18 -> 17 adapter (onnx/onnx#5606) moves a Reduce op's axes back to an attribute but
    keeps noop_with_empty_axes, which those ops only have from opset 18. 0 is the default and the
    only behaviour opset 17 has, so it goes; a 1 stays, for the checker to refuse."""
    for node in graph.node:
        if node.op_type in REDUCE_OPS_WITH_NOOP_FROM_18:
            kept = [a for a in node.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)]
            del node.attribute[:]
            node.attribute.extend(kept)


def onnxruntime_runner(path: str | Path):
    """The ONNX file at `path`, checked by onnx.checker, as a function: numpy images in, logits out."""
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _torchscript_runner(loaded: torch.jit.ScriptModule):
    def run(x):
        with torch.inference_mode():
            return loaded(torch.from_numpy(x)).numpy()

    return run


def _check_inputs(classifier: Classifier, with_preprocessing: bool, check_data) -> torch.Tensor:
    """The check images as the exported graph takes them: uint8 pixels, or normalised floats."""
    pixels = check_pixels(classifier, check_data)
    return pixels if with_preprocessing else classifier.preset.normalize(pixels)
