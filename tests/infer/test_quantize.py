"""export --quantize int8: onnxruntime static quantization calibrated on training images, reported
against the float export, checked against PyTorch by top-1 agreement, with the float file's metadata."""
import json

import numpy as np
import onnx
import pytest

import visionfit
from visionfit.cli import main
from visionfit.errors import DataError
from visionfit.infer.export import export_metadata
from visionfit.infer.parity import Parity, ParityError
from visionfit.infer.quantize import export_int8, require_agreement
from visionfit.infer.runner import load_classifier

from .conftest import save_png
from ..conftest import pattern_images


@pytest.fixture(scope="module")
def bars_folder(tmp_path_factory):
    """left/, middle/, right/: 20 bar PNGs each (a run trained on them records this folder)."""
    root = tmp_path_factory.mktemp("bars_folder")
    images, labels = pattern_images(60, seed=3)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        save_png(root / ["left", "middle", "right"][label] / f"{i}.png", pixels)
    return root


def test_int8_calibrates_on_the_recorded_training_data_and_measures_validation(bars_folder, tmp_path):
    run = visionfit.fit("lenet_relu", str(bars_folder), project=str(tmp_path / "runs"), epochs=3, lr=0.05,
                        optimizer="adam", batch_size=16, image_size=16, quiet=True, workers=0)
    result = export_int8(run.best_model, tmp_path / "m.int8.onnx", check=True, check_data=str(bars_folder))
    assert result.calibration_images == 48 and result.accuracy_images == run.val_images == 12
    assert result.float_accuracy == pytest.approx(run.best_score)  # the float export scores as training did
    assert abs(result.int8_accuracy - result.float_accuracy) <= 1 / 12
    assert result.int8_bytes < result.float_bytes and result.int8_ms > 0
    assert all(parity.top1_agreement >= 0.85 for parity in result.checks) and len(result.checks) == 2
    model = onnx.load(str(tmp_path / "m.int8.onnx"))
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    float_meta = export_metadata(load_classifier(run.best_model), with_preprocessing=False)
    int8_meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(int8_meta.pop("quantization"))["calibration_images"] == 48
    assert int8_meta == float_meta  # class names, preprocessing: all examples/onnx_consumer.py reads


def test_int8_on_the_command_line_with_calibration_data(bars_model, bars_folder, tmp_path, capsys):
    main(["export", str(bars_model), "--onnx", str(tmp_path / "m.onnx"), "--quantize", "int8",
          "--calibration-data", str(bars_folder), "--check", "--check-data", str(bars_folder)])
    out = capsys.readouterr().out
    assert "calibrated on 60 training images" in out and "accuracy: not measured" in out
    assert "top-1 agreement 100%" in out and (tmp_path / "m.onnx").is_file()


def test_without_calibration_data_or_a_readable_record_it_says_which_flag(bars_model, tmp_path, capsys):
    # bars_model's run trained on in-memory arrays: its config.yaml names no data on disk
    with pytest.raises(DataError, match="--calibration-data: the training data .*config.yaml records cannot be read"):
        export_int8(bars_model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(SystemExit) as exit_code:
        main(["export", str(bars_model), "--torchscript", str(tmp_path / "m.pt"), "--quantize", "int8"])
    assert exit_code.value.code == 2
    assert "--quantize int8 quantizes the ONNX file: give --onnx" in capsys.readouterr().err


def test_agreement_below_the_minimum_is_refused():
    six_of_seven = [Parity(1, 0.3, 1.0), Parity(7, 0.4, 6 / 7)]
    require_agreement(six_of_seven, 0.85, "int8 model")
    with pytest.raises(ParityError, match="agrees with PyTorch's top-1 class on 86% .* at batch 7"):
        require_agreement(six_of_seven, 0.9, "int8 model")
    with pytest.raises(ParityError):
        require_agreement([Parity(1, float("nan"), float("nan"))], 0.5, "int8 model")
    assert np.isnan(Parity(1, 0.0, float("nan")).top1_agreement)
