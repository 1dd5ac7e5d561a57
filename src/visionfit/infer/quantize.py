"""`visionfit export --onnx OUT --quantize int8`: onnxruntime's static int8 quantization, calibrated
on the model's training images, reported against the float export.

    result = visionfit.export_int8("runs/exp/best.safetensors", "model.int8.onnx", check=True)
    print(result.format())   # file size, latency, accuracy on validation: float against int8

The float graph is exported as `export_onnx` does, then onnxruntime quantizes it
(quant_pre_process, then quantize_static: QDQ, int8 weights per channel, int8 activations,
MinMax calibration). Calibration images go through the eval preprocessing (the model's
preset) and come from `calibration_data`, else from the training data the run's
config.yaml records. The int8 file keeps every metadata entry of the float export, so
examples/onnx_consumer.py reads it the same way.
"""
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.samples import Samples
from ..errors import DataError, ModelError
from ..files import atomic_path, check_outputs
from .export import INPUT_NAME, OUTPUT_NAME, deployable, onnxruntime_runner, export_onnx
from .parity import Parity, ParityError, check_pixels, compare
from .protected import protected_inputs
from .quantize_data import QuantizeData, quantize_data
from .runner import Classifier, decode_sample

LATENCY_RUNS = 30  # batch-1 runs timed per model, after WARMUP_RUNS
WARMUP_RUNS = 5
ACCURACY_BATCH = 64


@dataclass
class Int8Result:
    path: Path
    float_bytes: int
    int8_bytes: int
    float_ms: float  # median batch-1 latency, onnxruntime CPU
    int8_ms: float
    calibration_images: int
    float_accuracy: float | None = None  # on `accuracy_images` validation images; None without labelled validation
    int8_accuracy: float | None = None
    accuracy_images: int = 0
    checks: list[Parity] = field(default_factory=list)  # int8 against PyTorch, with check=True

    def format(self) -> str:
        lines = [f"int8 {self.int8_bytes / 1e6:.2f} MB vs float {self.float_bytes / 1e6:.2f} MB "
                 f"({self.float_bytes / self.int8_bytes:.1f}x smaller), calibrated on {self.calibration_images} "
                 f"training images",
                 f"latency at batch 1 (onnxruntime CPU, median of {LATENCY_RUNS}): int8 {self.int8_ms:.2f} ms, "
                 f"float {self.float_ms:.2f} ms"]
        if self.float_accuracy is None:
            lines.append("accuracy: not measured (no labelled validation data recorded for this model)")
        else:
            lines.append(f"accuracy on {self.accuracy_images:,} validation images: int8 {self.int8_accuracy:.2%}, "
                         f"float {self.float_accuracy:.2%}")
        return "\n".join(lines)


def export_int8(model, path: str | Path, calibration_data=None, images: str | None = None, opset: int | None = None,
                with_preprocessing: bool = False, check: bool = False, check_data=None, min_agreement: float = 0.85,
                trust_code: bool = False) -> Int8Result:
    """Write `model` (a model file or folder) as a statically quantized int8 ONNX file at `path`.

    calibration_data: a folder or CSV of images like the training data (labels not needed);
    default: the training data in the run's config.yaml beside the model file.
    check=True compares the int8 model with PyTorch on real images (as export's --check) and
    raises ParityError when the top-1 class agrees on less than `min_agreement` of them.
    """
    check_outputs({"--onnx": path}, protected_inputs(model, check_data if check else None))
    classifier, module = deployable(model, with_preprocessing, trust_code)
    data = quantize_data(classifier, calibration_data, images)  # a missing source fails before the export
    check_inputs = _graph_inputs(classifier, check_pixels(classifier, check_data), with_preprocessing) if check else None
    calibration = _graph_inputs(classifier, _pixels(classifier, data.calibration)[0], with_preprocessing)
    with tempfile.TemporaryDirectory(prefix="visionfit-int8-") as scratch:
        float_path = Path(scratch) / "float.onnx"
        export_onnx(model, float_path, opset=opset, with_preprocessing=with_preprocessing, trust_code=trust_code)
        _quantize(float_path, Path(path), calibration, Path(scratch))
        result = _measure(float_path, Path(path), classifier, data, with_preprocessing, calibration)
    if check:
        result.checks = compare(module, onnxruntime_runner(path), check_inputs)
        require_agreement(result.checks, min_agreement, f"int8 ONNX model {path}")
    return result


def _graph_inputs(classifier: Classifier, pixels: torch.Tensor, with_preprocessing: bool) -> torch.Tensor:
    """uint8 pixels as the exported graph takes them: as they are, or normalised floats."""
    return pixels if with_preprocessing else classifier.preset.normalize(pixels)


def _pixels(classifier: Classifier, samples: Samples) -> tuple[torch.Tensor, np.ndarray]:
    """(uint8 N x C x size x size, their sample indices): the readable samples through the eval preprocessing."""
    decoded, kept = [], []
    for index in range(len(samples)):
        try:
            decoded.append(decode_sample(samples, index, classifier.preset))
            kept.append(index)
        except DataError:
            continue  # an unreadable file among many: the others are enough
    if not decoded:
        raise DataError(f"none of the {len(samples)} images (first: {samples.origin[0]}) could be read; "
                        "give --calibration-data a folder or CSV of readable images")
    return torch.stack(decoded), np.asarray(kept, dtype=np.int64)


def _quantize(float_path: Path, out: Path, calibration: torch.Tensor, scratch: Path) -> None:
    """onnxruntime's recommended path: pre-process (shape inference, graph optimisation), then
    static QDQ quantization; the float file's metadata is copied onto the result."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT_NAME: image[None].numpy()} for image in calibration])

        def get_next(self):
            return next(self.batches, None)

    prepared, quantized = scratch / "prepared.onnx", scratch / "int8.onnx"
    try:
        quant_pre_process(str(float_path), str(prepared))
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    except Exception as error:  # onnxruntime's quantizer raises many internal types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"onnxruntime could not quantize this model ({first_line}); export it without "
                         "--quantize") from error
    proto = onnx.load(str(quantized))
    metadata = {entry.key: entry.value for entry in onnx.load(str(float_path), load_external_data=False).metadata_props}
    metadata["quantization"] = json.dumps({"method": "onnxruntime quantize_static", "format": "QDQ",
                                           "weights": "int8 per channel", "activations": "int8",
                                           "calibration": "MinMax", "calibration_images": len(calibration)})
    onnx.helper.set_model_props(proto, metadata)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))


def _measure(float_path: Path, int8_path: Path, classifier: Classifier, data: QuantizeData, with_preprocessing: bool,
             calibration: torch.Tensor) -> Int8Result:
    """File sizes, batch-1 latency (on a calibration image) and validation accuracy of both files."""
    sessions = [_session(float_path), _session(int8_path)]
    result = Int8Result(int8_path, float_path.stat().st_size, int8_path.stat().st_size,
                        *(_latency_ms(session, calibration[:1].numpy()) for session in sessions), len(calibration))
    if data.validation is not None:
        pixels, kept = _pixels(classifier, data.validation)
        x = _graph_inputs(classifier, pixels, with_preprocessing).numpy()
        labels = data.validation.labels[kept]
        result.float_accuracy, result.int8_accuracy = (_accuracy(session, x, labels) for session in sessions)
        result.accuracy_images = len(x)
    return result


def _session(path: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _latency_ms(session, x: np.ndarray) -> float:
    import time

    times = []
    for run in range(WARMUP_RUNS + LATENCY_RUNS):
        start = time.perf_counter()
        session.run([OUTPUT_NAME], {INPUT_NAME: x})
        if run >= WARMUP_RUNS:
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def _accuracy(session, x: np.ndarray, labels: np.ndarray) -> float:
    predicted = np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: x[i:i + ACCURACY_BATCH]})[0].argmax(axis=1)
                                for i in range(0, len(x), ACCURACY_BATCH)])
    return float((predicted == labels).mean())


def require_agreement(results: list[Parity], min_agreement: float, what: str) -> None:
    """ParityError when the top-1 class agrees with PyTorch on less than `min_agreement` of the check images."""
    worst = min(results, key=lambda r: r.top1_agreement)
    if not worst.top1_agreement >= min_agreement:
        raise ParityError(f"{what} agrees with PyTorch's top-1 class on {worst.top1_agreement:.0%} of the check images "
                          f"at batch {worst.batch_size} (--min-agreement {min_agreement:g}); calibrate on more "
                          "images like the training data (--calibration-data), or keep the float export")
