"""Partial loading: every checkpoint tensor lands in exactly one report category, and only
the loaded (or adapted) ones change the model. Weight files load without unpickling code."""
import json

import pytest
import safetensors.torch
import torch
from torch import nn

from visionfit.errors import ModelError
from visionfit.models import create_model
from visionfit.models.partial import load_weights
from visionfit.models.weights import WeightSource, file_weights


def lenet_state(num_classes=10, in_channels=1, seed=1) -> dict:
    torch.manual_seed(seed)
    return create_model("lenet_bn", num_classes=num_classes, in_channels=in_channels).state_dict()


def crafted_checkpoint() -> dict:
    """lenet_bn weights for 10 classes with one renamed, one reshaped and one extra tensor."""
    state = lenet_state(num_classes=10, in_channels=3)
    state["features.renamed.weight"] = state.pop("features.1.weight")  # model: missing + ckpt: unexpected
    state["features.4.weight"] = torch.randn(7, 6, 5, 5)  # conv2 wants (16, 6, 5, 5): mismatched
    state["extra.bias"] = torch.zeros(3)  # unexpected
    return state


def test_report_sorts_every_tensor_and_loads_only_what_fits():
    model = create_model("lenet_bn", num_classes=4, in_channels=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = crafted_checkpoint()
    report = load_weights(model, WeightSource(ckpt, "crafted.pth"))

    assert report.adapted == ["features.0.weight (checkpoint (6, 3, 5, 5), model (6, 1, 5, 5))"]
    assert sorted(report.head) == ["head.7.bias", "head.7.weight"]
    assert report.mismatched == ["features.4.weight (checkpoint (7, 6, 5, 5), model (16, 6, 5, 5))"]
    assert report.missing == ["features.1.weight"]
    assert sorted(report.unexpected) == ["extra.bias", "features.renamed.weight"]
    after = model.state_dict()
    for key in report.loaded:
        assert torch.equal(after[key], ckpt[key]), key
    for key in ("features.1.weight", "features.4.weight", "head.7.weight", "head.7.bias"):
        assert torch.equal(after[key], before[key]), f"{key} should keep its initial value"
    # grey stem = the sum of the RGB kernels (timm's adapt_input_conv for one channel)
    assert torch.allclose(after["features.0.weight"], ckpt["features.0.weight"].sum(1, keepdim=True))
    text = report.text()
    assert "mismatched     1" in text and "unexpected     2" in text and "crafted.pth" in text


def test_strict_fails_with_the_report_but_accepts_a_replaced_head():
    with pytest.raises(ModelError, match=r"--strict: 4 tensors of crafted.pth do not fit") as error:
        load_weights(create_model("lenet_bn", num_classes=4), WeightSource(crafted_checkpoint(), "crafted.pth"),
                     strict=True)
    assert "mismatched" in str(error.value) and "features.4.weight" in str(error.value)
    report = load_weights(create_model("lenet_bn", num_classes=4), WeightSource(lenet_state(), "ok.pth"), strict=True)
    assert report.problems == [] and len(report.head) == 2


def test_order_mapping_pairs_tensors_whose_names_differ():
    ckpt = {f"layer{i}": tensor for i, tensor in enumerate(lenet_state(num_classes=4).values())}
    model = create_model("lenet_bn", num_classes=4)
    with pytest.raises(ModelError, match="try --weights-mapping order"):
        load_weights(model, WeightSource(ckpt, "renamed.pth"))
    report = load_weights(model, WeightSource(ckpt, "renamed.pth", mapping="order"))
    assert not report.problems and report.loaded[0] == "features.0.weight <- layer0"
    for value, (key, current) in zip(ckpt.values(), model.state_dict().items()):
        assert torch.equal(value, current), key


def test_report_files_are_written(tmp_path):
    report = load_weights(create_model("lenet_bn", num_classes=4), WeightSource(lenet_state(), "ok.pth"))
    report.write(tmp_path)
    saved = json.loads((tmp_path / "weights_report.json").read_text())
    assert saved["origin"] == "ok.pth" and len(saved["loaded"]) == len(report.loaded)
    assert (tmp_path / "weights_report.txt").read_text().startswith("weights: ok.pth (matched by name)")


# --- weight files ---------------------------------------------------------------------------


class Payload:
    """Unpickling this runs code: exactly what a weights-only load must refuse."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('ran')",))


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.pth"
    torch.save({"weight": torch.zeros(2), "payload": Payload()}, path)
    with pytest.raises(ModelError, match=r"model.pth holds pickled Python objects.*never unpickles code"):
        file_weights(path)
    assert not (tmp_path / "PWNED").exists()


def test_a_pickled_whole_model_is_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(ModelError, match="re-save just the weights"):
        file_weights(path)


@pytest.mark.parametrize("layout", ["plain", "nested", "ddp", "safetensors"])
def test_weight_file_layouts(tmp_path, layout):
    state = lenet_state()
    if layout == "safetensors":
        path = tmp_path / "w.safetensors"
        safetensors.torch.save_file(state, path)
    else:
        wrapped = {"plain": state, "nested": {"epoch": 3, "state_dict": state},
                   "ddp": {f"module.{k}": v for k, v in state.items()}}[layout]
        path = tmp_path / "w.pth"
        torch.save(wrapped, path)
    source = file_weights(path)
    assert source.state_dict.keys() == state.keys() and source.preprocessing.channels == 1 and source.preprocessing.mean is None


def test_a_file_without_a_state_dict_says_what_it_holds(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"epoch": 3, "notes": "hi"}, path)
    with pytest.raises(ModelError, match="a dict with keys epoch, notes, not a state_dict"):
        file_weights(path)
    with pytest.raises(ModelError, match="does not exist"):
        file_weights(tmp_path / "missing.pth")
