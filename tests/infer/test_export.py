"""ONNX / TorchScript export: parity with PyTorch on real images at batch 1 and 7, metadata, errors."""
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import visionfit
from visionfit.cli import main
from visionfit.errors import ConfigError, DataError
from visionfit.infer.export import export_onnx, export_torchscript
from visionfit.infer.parity import Parity, ParityError, check_pixels, require_parity
from visionfit.infer.runner import load_classifier
from visionfit.models import apply_init

from .conftest import calibrate_batchnorm, with_meta

TOLERANCE = 1e-4
# (name, input side, model args): reduced sizes where the net allows, to keep the suite fast.
CLASSIC_NETS = [
    ("mlp", 28, {}), ("lenet", 28, {}), ("lenet_relu", 28, {}), ("lenet_bn", 28, {}),
    ("alexnet_d2l", 96, {"input_size": 96}), ("vgg11_d2l", 32, {"input_size": 32, "ratio": 8}),
    ("nin", 96, {"input_size": 96}), ("googlenet_d2l", 64, {}), ("resnet18_d2l", 64, {}),
]
IMAGENET_NETS = [("resnet18", 64, {}), ("mobilenet_v3_small", 64, {}), ("timm:efficientnet_lite0", 64, {})]


def realistic_random_net(name: str, size: int, channels: int, model_args: dict, check_data):
    """Random weights whose logits depend on the image (He init, BatchNorm statistics from real images).

    Returns the model and its logits on the check images.
    """
    torch.manual_seed(0)
    model = with_meta(visionfit.create_model(name, num_classes=10, in_channels=channels, **model_args), name, size, channels)
    apply_init(model, "kaiming")
    classifier = load_classifier(model, "cpu")
    x = classifier.preset.normalize(check_pixels(classifier, check_data))
    calibrate_batchnorm(model, x)
    with torch.no_grad():
        return model, model(x)


def assert_not_degenerate(logits: torch.Tensor) -> None:
    assert logits.std(dim=1).min() > 10 * TOLERANCE  # classes differ
    assert logits.std(dim=0).mean() > 10 * TOLERANCE  # images differ: a graph ignoring its input would fail


def assert_parity(checks: list[Parity]) -> None:
    assert [c.batch_size for c in checks] == [1, 7]
    for check in checks:
        assert check.max_abs_diff <= TOLERANCE and check.top1_agreement == 1.0, check


@pytest.mark.parametrize("name, size, model_args", CLASSIC_NETS + IMAGENET_NETS, ids=lambda v: v if isinstance(v, str) else "")
def test_onnx_matches_pytorch_on_real_images(name, size, model_args, mnist_digits, photos, tmp_path):
    channels, check_data = (3, photos) if (name, size, model_args) in IMAGENET_NETS else (1, mnist_digits)
    model, logits = realistic_random_net(name, size, channels, model_args, check_data)
    assert_not_degenerate(logits)
    result = export_onnx(model, tmp_path / "model.onnx", check=True, check_data=check_data)
    assert_parity(result.checks)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (images,), (logits,) = session.get_inputs(), session.get_outputs()
    assert (images.name, logits.name) == ("images", "logits")
    assert isinstance(images.shape[0], str) and images.shape[1:] == [channels, size, size]  # dynamic batch


def test_onnx_metadata_carries_classes_and_preprocessing(bars_model, tmp_path):
    result = export_onnx(bars_model, tmp_path / "m.onnx", opset=18, check=True)  # checked on the bundled digits
    assert_parity(result.checks)
    exported = onnx.load(str(result.path))
    assert exported.opset_import[0].version == 18
    props = {p.key: p.value for p in exported.metadata_props}
    meta = visionfit.read_meta(bars_model)
    assert json.loads(props["class_names"]) == ["left", "middle", "right"]
    assert int(props["input_size"]) == 16 and int(props["channels"]) == 1
    assert json.loads(props["mean"]) == pytest.approx(meta["mean"]) and json.loads(props["std"]) == pytest.approx(meta["std"])
    assert props["input_format"].startswith("float32")


def test_with_preprocessing_takes_uint8_and_matches_the_float_pipeline(bars_model, mnist_digits, tmp_path):
    result = export_onnx(bars_model, tmp_path / "pre.onnx", with_preprocessing=True, check=True, check_data=mnist_digits)
    assert_parity(result.checks)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    classifier = load_classifier(bars_model, "cpu")
    pixels = check_pixels(classifier, mnist_digits)
    with torch.no_grad():
        expected = classifier.model(classifier.preset.normalize(pixels)).numpy()
    got = session.run(["logits"], {"images": pixels.numpy()})[0]
    assert np.abs(got - expected).max() <= TOLERANCE
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert props["input_format"].startswith("uint8")


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*:FutureWarning")
@pytest.mark.parametrize("with_preprocessing", [False, True])
def test_torchscript_matches_pytorch_and_keeps_metadata(bars_model, mnist_digits, tmp_path, with_preprocessing):
    result = export_torchscript(bars_model, tmp_path / "m.pt", with_preprocessing=with_preprocessing, check=True,
                                check_data=mnist_digits)
    assert_parity(result.checks)
    extra = {"visionfit.json": ""}
    torch.jit.load(str(result.path), _extra_files=extra)
    assert json.loads(json.loads(extra["visionfit.json"])["class_names"]) == ["left", "middle", "right"]


def test_torchscript_of_an_imagenet_net_on_real_photos(photos, tmp_path):
    model, logits = realistic_random_net("resnet18", 64, 3, {}, photos)
    assert_not_degenerate(logits)
    assert_parity(export_torchscript(model, tmp_path / "m.pt", check=True, check_data=photos).checks)


def test_parity_over_tolerance_is_an_error_naming_the_difference():
    with pytest.raises(ParityError, match=r"up to 0.002 at batch 7 \(tolerance 0.0001\)"):
        require_parity([Parity(1, 1e-6, 1.0), Parity(7, 2e-3, 1.0)], 1e-4, "ONNX model m.onnx")
    with pytest.raises(ParityError):
        require_parity([Parity(1, float("nan"), 0.0)], 1e-4, "ONNX model m.onnx")


def pooled_net() -> torch.nn.Module:
    """A tiny net ending in a global average pool: a ReduceMean, the op whose axes moved in opset 18."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
              torch.nn.Linear(8, 10)]
    return with_meta(torch.nn.Sequential(*layers), "pooled", 16, 1)


# The oldest IR each opset allows (onnx's release table): what onnxruntime releases of that opset load.
IR_FOR_OPSET = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


@pytest.mark.parametrize("opset", [17, 19, 21, None], ids=lambda opset: f"opset{opset or '-default'}")
def test_onnx_carries_the_oldest_ir_version_its_opset_allows(mnist_digits, tmp_path, opset):
    result = export_onnx(pooled_net(), tmp_path / "m.onnx", opset=opset, check=True, check_data=mnist_digits)
    assert_parity(result.checks)  # check=True: onnx.checker full_check, then onnxruntime against PyTorch
    exported = onnx.load(str(result.path))
    produced = exported.opset_import[0].version
    assert produced == (opset or produced) and exported.ir_version == IR_FOR_OPSET[produced]
    onnx.checker.check_model(exported, full_check=True)
    reduce_attributes = {a.name for node in exported.graph.node if node.op_type == "ReduceMean" for a in node.attribute}
    if produced < 18:  # converted down: axes back to an attribute, and no attribute opset 17 lacks
        assert reduce_attributes == {"axes", "keepdims"}
    else:
        assert "axes" not in reduce_attributes  # an input from opset 18


def test_an_opset_the_exporter_cannot_produce_is_a_config_error(bars_model, tmp_path):
    with pytest.raises(ConfigError, match="--opset 13"):
        export_onnx(bars_model, tmp_path / "m.onnx", opset=13)


def test_check_data_without_readable_images_is_a_data_error(bars_model, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="--check-data"):
        export_onnx(bars_model, tmp_path / "m.onnx", check=True, check_data=tmp_path / "bad")


def test_export_cli_prints_parity_and_fails_with_exit_2(bars_model, tmp_path, capsys):
    main(["export", str(bars_model), "--onnx", str(tmp_path / "m.onnx"), "--torchscript", str(tmp_path / "m.pt"),
          "--check"])
    out = capsys.readouterr().out
    assert "wrote ONNX" in out and "wrote TorchScript" in out
    assert out.count("batch 1: max |logit diff|") == 2 and out.count("batch 7:") == 2
    with pytest.raises(SystemExit) as info:
        main(["export", str(bars_model)])
    assert info.value.code == 2 and "nothing to export" in capsys.readouterr().err
