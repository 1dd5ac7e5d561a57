"""The two runtimes agree, and an ONNX file's metadata is checked like a model file's before it is served."""
import json

import numpy as np
import onnx
import pytest

import visionfit
from visionfit.errors import ModelError
from visionfit.infer.runner import decode_upload
from visionfit.serving.backends import load_backend, shown_metrics

from .conftest import DIGITS, served, uploads


def exported(mnist_model, folder, with_preprocessing: bool):
    path = folder / "digits.onnx"
    visionfit.export_onnx(mnist_model, path, with_preprocessing=with_preprocessing)
    return path


@pytest.fixture(scope="module")
def mnist_onnx(mnist_model, tmp_path_factory):
    """The digit net exported to ONNX, taking normalised float32 images."""
    return exported(mnist_model, tmp_path_factory.mktemp("onnx"), with_preprocessing=False)


@pytest.fixture(scope="module")
def mnist_onnx_uint8(mnist_model, tmp_path_factory):
    """The digit net exported with its normalisation inside the graph: it takes uint8 pixels."""
    return exported(mnist_model, tmp_path_factory.mktemp("onnx_uint8"), with_preprocessing=True)


def probabilities(model, paths) -> np.ndarray:
    backend = load_backend(model, "cpu")
    images = [decode_upload(path.read_bytes(), path.name, backend.preset, 10**6) for path in paths]
    return backend.probabilities(images)


def test_onnx_and_torch_give_the_same_top1_and_probabilities(mnist_model, mnist_onnx, mnist_onnx_uint8, digit_files):
    torch_probs = probabilities(mnist_model, digit_files)
    assert len(set(torch_probs.argmax(axis=1))) >= 4  # the digits get different answers: top-1 agreement means something
    for onnx_file in (mnist_onnx, mnist_onnx_uint8):
        onnx_probs = probabilities(onnx_file, digit_files)
        assert list(onnx_probs.argmax(axis=1)) == list(torch_probs.argmax(axis=1))
        np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-5)


def test_an_onnx_file_is_served_with_its_own_metadata(mnist_model, mnist_onnx, digit_files):
    with served(mnist_model) as client:
        from_torch = client.post("/predict", files=uploads(digit_files)).json()["predictions"]
    with served(mnist_onnx) as client:
        model = client.get("/model").json()
        from_onnx = client.post("/predict", files=uploads(digit_files)).json()["predictions"]
    assert model["runtime"] == "onnxruntime" and model["class_names"] == DIGITS and model["architecture"] == "lenet_relu"
    assert model["metrics"] == {}  # an export carries no training metrics
    assert [p["label"] for p in from_onnx] == [p["label"] for p in from_torch]


def edited(source, target, **props) -> None:
    """`source` ONNX saved to `target` with metadata_props changed (a value None removes the key)."""
    model = onnx.load(str(source))
    values = {p.key: p.value for p in model.metadata_props}
    values.update(props)
    del model.metadata_props[:]
    for key, value in values.items():
        if value is not None:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))


EDITS = {
    "no-metadata": (dict(class_names=None), "has no visionfit metadata"),
    "classes-not-json": (dict(class_names="[0, 1"), "'class_names' is not a JSON list"),
    "too-few-class-names": (dict(class_names=json.dumps(["a", "b"])), None),  # the graph scores 10: refused below
    "duplicate-classes": (dict(class_names=json.dumps(["a"] * 10)), "class name 'a' appears twice"),
    "size-not-a-number": (dict(input_size="twenty-eight"), "'input_size' is not a whole number"),
    "size-disagrees": (dict(input_size="32"), "preprocessing is for"),
    "std-zero": (dict(std="[0.0]"), "'std' is [0.0], not 1 finite number(s) above zero"),
    "deep-json": (dict(preprocess="[" * 100_000), "'preprocess' is not a JSON object"),
    "wrong-input-name": (dict(input_name="pixels"), "not the one input 'pixels'"),
    "wrong-input-format": (dict(input_format="bytes"), "its metadata says 'bytes'"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edited_onnx_file_is_refused_with_a_reason(mnist_onnx, tmp_path, case):
    props, words = EDITS[case]
    target = tmp_path / "edited.onnx"
    edited(mnist_onnx, target, **props)
    if case == "too-few-class-names":
        with pytest.raises(ModelError, match="scores 10 classes, its metadata names 2"):
            load_backend(target)
        return
    with pytest.raises(ModelError, match="edited.onnx") as error:
        load_backend(target)
    assert words in str(error.value)


def test_a_file_that_is_not_onnx_is_a_model_error(tmp_path):
    (tmp_path / "fake.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="fake.onnx is not an ONNX model onnxruntime can load"):
        load_backend(tmp_path / "fake.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        load_backend(tmp_path / "missing.onnx")


def test_only_short_finite_metrics_are_shown():
    assert shown_metrics({"val_acc": 0.9, "loss": float("nan"), "note": "x", "flag": True, "k" * 41: 1}) == {"val_acc": 0.9}
    assert shown_metrics(["val_acc", 0.9]) == {} and shown_metrics({str(i): i for i in range(65)}) == {}
