"""Model files are data, never code: crafted, malformed and mismatched model and weight files.

A model file here is what `visionfit train` writes (safetensors weights + JSON metadata under
"visionfit"), made by hand: a lenet's tensors with metadata a test edits, or raw tensors and
raw metadata text for the cases a writer would never produce.
"""
import json
import re
import sys
import time
import types

import pytest
import safetensors.torch
import torch

import visionfit
from visionfit.checkpoints import META_KEY
from visionfit.cli import main
from visionfit.errors import ModelError

from ..conftest import model_meta
from .conftest import cli_error, write_marker_module

# The commands that read a model file, as argv after the file (inputs need not exist:
# the model file is read first).
READERS = {
    "predict": lambda model, tmp: ["predict", model, tmp / "images", "-o", tmp / "p.csv"],
    "eval": lambda model, tmp: ["eval", model, "--data", tmp / "images"],
    "export": lambda model, tmp: ["export", model, "--onnx", tmp / "m.onnx"],
    "summary": lambda model, tmp: ["summary", model],
}


def lenet_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return visionfit.create_model("lenet", num_classes=3).state_dict()


def write_model_file(path, meta, tensors: dict | None = None):
    """A model file holding `tensors` (a 3-class lenet's by default) and `meta` (a dict, or raw text)."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    safetensors.torch.save_file(lenet_tensors() if tensors is None else tensors, path, metadata={META_KEY: text})
    return path


def meta_with(**fields) -> dict:
    """A run's metadata with `fields` replaced as they are, however wrong."""
    return {**model_meta(), **fields}


def crafted_file(tmp_path, architecture: str = "vf_crafted:Net"):
    """A file whose architecture is code outside visionfit, with tensors that would fit it."""
    tensors = {"fc.weight": torch.zeros(3, 784), "fc.bias": torch.zeros(3)}
    return write_model_file(tmp_path / "best.safetensors", model_meta(architecture), tensors)


# --- architecture: a name read from a file never imports a module --------------------------


@pytest.mark.parametrize("command", list(READERS))
def test_custom_module_architecture_is_refused_by_every_command(crafted_module, tmp_path, capsys, command):
    path = crafted_file(tmp_path)
    message = cli_error(capsys, *READERS[command](path, tmp_path))
    assert f"{path} names its architecture 'vf_crafted:Net', code outside visionfit" in message
    assert "import and run 'vf_crafted'" in message and "--trust-code" in message


def test_custom_module_architecture_is_refused_by_load_model(crafted_module, tmp_path):
    with pytest.raises(ModelError, match=r"trust_code=True"):
        visionfit.load_model(crafted_file(tmp_path))


def test_this_is_never_imported(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    message = cli_error(capsys, "summary", crafted_file(tmp_path, "this:s"))
    assert "import and run 'this'" in message
    assert "this" not in sys.modules


def test_trust_code_loads_a_custom_module_file(tmp_path, capsys, monkeypatch):
    folder, marker = tmp_path / "trusted", tmp_path / "TRUSTED.marker"
    write_marker_module(folder, "vf_trusted", marker)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "vf_trusted", raising=False)
    path = crafted_file(tmp_path, "vf_trusted:Net")
    try:
        model = visionfit.load_model(path, trust_code=True)
        assert marker.exists() and model.fc.out_features == 3
        main(["summary", str(path), "--trust-code"])
        assert "2,355 parameters" in capsys.readouterr().out  # Linear(784, 3)
    finally:
        sys.modules.pop("vf_trusted", None)


@pytest.mark.parametrize("architecture, match", [
    ("resnet81", r"describes architecture 'resnet81', which visionfit cannot build: unknown model 'resnet81'"),
    ("timm:resnet81", r"describes architecture 'timm:resnet81', which visionfit cannot build: unknown timm model"),
    ("", r"names its architecture '', which is not a model name"),
    ("x" * 5000, r"names its architecture 'xxxx.*\.\.\., which is not a model name"),
], ids=["unknown", "unknown-timm", "empty", "5000-chars"])
def test_unknown_or_malformed_architecture(tmp_path, capsys, architecture, match):
    path = write_model_file(tmp_path / "m.safetensors", model_meta(architecture))
    assert re.search(match, cli_error(capsys, "summary", path))


# --- model_args: checked before anything is built ----------------------------------------------


@pytest.mark.parametrize("architecture, model_args, match", [
    ("timm:resnet18", {"checkpoint_path": "/etc/passwd"}, "'checkpoint_path' would make the builder read a file"),
    ("timm:resnet18", {"pretrained_cfg_overlay": {"file": "/etc/passwd"}}, "'pretrained_cfg_overlay' would make"),
    ("resnet18", {"weights": "IMAGENET1K_V1"}, "may not set 'weights'"),
    ("timm:resnet18", {"features_only": True}, "'features_only' would make"),
    ("lenet", {"in_channels": 3}, "may not set 'in_channels'"),
    ("lenet", {"depth": 3}, "'depth' is not an argument of 'lenet' .it takes num_classes, in_channels, input_size"),
    ("lenet", {"act": {"relu": 1}}, r"model_args act=\{'relu': 1\} is out of bounds \(values are numbers, text"),
    ("lenet", {"input_size": 100_000}, r"input_size=100000 is out of bounds \(input_size is a whole number from 8 to"),
    ("lenet", ["act", "relu"], "model_args must be an object"),
], ids=["checkpoint_path", "pretrained_cfg_overlay", "weights", "features_only", "reserved-in_channels",
        "unknown-key", "dict-value", "input_size-too-big", "not-an-object"])
def test_model_args_are_refused(tmp_path, capsys, architecture, model_args, match):
    path = write_model_file(tmp_path / "m.safetensors", meta_with(architecture=architecture, model_args=model_args))
    assert re.search(match, cli_error(capsys, "predict", path, tmp_path, "-o", tmp_path / "p.csv"))


def test_model_args_that_would_allocate_gigabytes_build_nothing(tmp_path):
    # lenet at 4096 px needs a 2-billion-weight classifier (8 GB); the file holds 28 px tensors.
    path = write_model_file(tmp_path / "m.safetensors", meta_with(model_args={"input_size": 4096}))
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"head.1.weight is \(120, 400\) in the file, \(120, 16711744\) in the arch"):
        visionfit.load_model(path)
    assert time.perf_counter() - started < 0.5


def test_hundred_million_input_channels_fail_fast(tmp_path, capsys):
    path = write_model_file(tmp_path / "m.safetensors", meta_with(in_channels=100_000_000))
    started = time.perf_counter()
    with pytest.raises(ModelError, match="'in_channels' is 100000000, outside 1..16"):
        visionfit.load_model(path)
    assert time.perf_counter() - started < 0.5
    assert "outside 1..16" in cli_error(capsys, "eval", path, "--data", tmp_path)


def test_huge_input_size_in_metadata(tmp_path, capsys):
    path = write_model_file(tmp_path / "m.safetensors", meta_with(input_size=1_000_000))
    assert "'input_size' is 1000000, outside 8..4096" in cli_error(capsys, "summary", path)


# --- metadata: malformed or incomplete -------------------------------------------------------


def _without(field: str) -> dict:
    meta = model_meta()
    del meta[field]
    return meta


@pytest.mark.parametrize("meta, match", [
    ("{not json", "it is not JSON"),
    ("[1, 2, 3]", "it is a list, not an object"),
    ("[" * 100_000, "it is not JSON"),
    (_without("architecture"), "it has no 'architecture'"),
    (_without("class_names"), "it has no 'class_names'"),
    (_without("preset"), "it has no 'preset'"),
    (meta_with(class_names=[1, 2, 3]), "class name 1 is a whole number, not text"),
    (meta_with(class_names=["a", "b", "a"]), "class name 'a' appears twice"),
    (meta_with(class_names=[]), "it has 0 class names"),
    (meta_with(in_channels="1"), "'in_channels' is text, not a whole number"),
    (meta_with(in_channels=True), "'in_channels' is true or false, not a whole number"),
    (meta_with(architecture=["lenet"]), "'architecture' is a list, not text"),
    (meta_with(mean=[float("nan")]), r"'mean' is \[nan\], not 1 finite number"),
    (meta_with(std=[0.0]), r"'std' is \[0.0\], not 1 finite number\(s\) above zero"),
    (meta_with(mean=[0.1, 0.2, 0.3]), r"'mean' is \[0.1, 0.2, 0.3\], not 1 finite number"),
    (meta_with(preset={"size": 28}), r"its preprocessing is not usable \(KeyError: 'small'\)"),
    (meta_with(preset={**model_meta()["preset"], "auto_augment": "os.system"}), "auto_augment 'os.system' is not one of"),
    (meta_with(preset={**model_meta()["preset"], "erasing": 5.0}), r"erasing 5.0 must be in \[0, 1\]"),
    (meta_with(preprocess={"resize": 32, "crop": 28}), "its preprocessing is not usable .*missing size"),
    (meta_with(preprocess={**model_meta()["preprocess"], "size": 64, "resize_side": 64}),
     "its preprocessing is for 1 x 64 px input"),
    (meta_with(preprocess={**model_meta()["preprocess"], "resize_side": 10 ** 9}), "resize_side"),
    (meta_with(format="visionfit-model/9"), "format 'visionfit-model/9'; this visionfit reads visionfit-model/1"),
    (meta_with(multi_label="yes"), "'multi_label' is text, not true or false"),
    (meta_with(multi_label=True), "'thresholds' is None, not 3 number"),
    (meta_with(multi_label=True, thresholds=[0.5, 0.5]), r"'thresholds' is \[0.5, 0.5\], not 3 number"),
    (meta_with(multi_label=True, thresholds=[0.5, float("nan"), 0.5]), "not 3 number.* from 0 to 1"),
    (meta_with(multi_label=True, thresholds=[0.5, 1.5, True]), "not 3 number.* from 0 to 1"),
    (meta_with(thresholds=[0.5, 0.5, 0.5]), "it has 'thresholds' but is not multi-label"),
], ids=["not-json", "json-list", "nested-100000-deep", "no-architecture", "no-class_names", "no-preset",
        "int-class-names", "duplicate-class-names", "no-classes", "in_channels-text", "in_channels-bool",
        "architecture-list", "nan-mean", "zero-std", "mean-per-wrong-channels", "preset-incomplete",
        "preset-unknown-auto-augment", "preset-erasing-above-1",
        "preprocess-incomplete", "preprocess-other-size", "preprocess-huge-resize", "newer-format",
        "multi_label-text", "multi_label-no-thresholds", "thresholds-too-few", "thresholds-nan",
        "thresholds-out-of-range", "thresholds-single-label"])
def test_malformed_metadata(tmp_path, capsys, meta, match):
    path = write_model_file(tmp_path / "m.safetensors", meta)
    assert re.search(match, cli_error(capsys, "summary", path))
    with pytest.raises(ModelError, match=match):
        visionfit.read_meta(path)


def test_a_preprocess_field_from_a_newer_writer_is_accepted(tmp_path):
    meta = meta_with(preprocess={**model_meta()["preprocess"], "sharpen": "none"})
    assert visionfit.load_model(write_model_file(tmp_path / "m.safetensors", meta)).visionfit_meta["preprocess"]


# --- tensors that do not fit the architecture ------------------------------------------------


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.update({"features.0.weight": torch.zeros(6, 2, 5, 5)}),
     r"features.0.weight is \(6, 2, 5, 5\) in the file, \(6, 1, 5, 5\) in the architecture"),
    (lambda t: t.pop("head.5.bias"), r"head.5.bias \(3,\) is in the architecture, not in the file"),
    (lambda t: t.update({"backdoor": torch.zeros(1)}), r"backdoor \(1,\) is in the file, not in the architecture"),
], ids=["shape-changed", "tensor-missing", "extra-tensor"])
def test_tensors_that_do_not_fit(tmp_path, capsys, edit, match):
    tensors = lenet_tensors()
    edit(tensors)
    path = write_model_file(tmp_path / "m.safetensors", model_meta(), tensors)
    message = cli_error(capsys, "predict", path, tmp_path, "-o", tmp_path / "p.csv")
    assert f"tensors of {path} do not fit architecture 'lenet'" in message and re.search(match, message)
    assert "corrupt or was edited" in message


def test_truncated_model_file(tmp_path, capsys):
    path = write_model_file(tmp_path / "m.safetensors", model_meta())
    path.write_bytes(path.read_bytes()[:-100])
    assert "is not a readable safetensors file" in cli_error(capsys, "export", path, "--onnx", tmp_path / "m.onnx")


# --- --weights files ---------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"just some notes\n", b"<!DOCTYPE html><html><body>Not Found</body></html>",
                                     bytes(range(256))], ids=["text", "html", "random-bytes"])
def test_a_file_that_is_not_weights_is_not_called_pickled(tmp_path, capsys, content):
    (tmp_path / "weights.pth").write_bytes(content)
    message = cli_error(capsys, "train", "--weights", tmp_path / "weights.pth", "--project", tmp_path)
    assert "is not a PyTorch or safetensors weight file" in message and "pickled" not in message


def test_pickled_custom_class_as_weights_is_refused(crafted_module, tmp_path, capsys, monkeypatch):
    # Pickle an instance of vf_crafted.Net without importing the real module (its import writes the marker).
    fake = types.ModuleType("vf_crafted")
    fake.Net = type("Net", (), {"__module__": "vf_crafted"})
    monkeypatch.setitem(sys.modules, "vf_crafted", fake)
    torch.save({"model": fake.Net()}, tmp_path / "evil.pth")
    monkeypatch.delitem(sys.modules, "vf_crafted")
    message = cli_error(capsys, "train", "--weights", tmp_path / "evil.pth", "--project", tmp_path)
    assert "holds pickled Python objects" in message and "(Unsupported global: GLOBAL vf_crafted.Net)" in message


def test_malformed_model_file_as_weights(tmp_path, capsys):
    path = write_model_file(tmp_path / "m.safetensors", meta_with(std=[-1.0]))
    message = cli_error(capsys, "train", "--weights", path, "--project", tmp_path)
    assert f"--weights {path} has malformed visionfit metadata: 'std' is [-1.0]" in message
