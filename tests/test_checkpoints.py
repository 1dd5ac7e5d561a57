import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

import visionfit
from visionfit.checkpoints import atomic_path, read_meta, save_model_file
from visionfit.errors import ModelError

from .conftest import model_meta


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "best.safetensors"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["best.safetensors"]


def test_model_file_round_trip_keeps_outputs_and_metadata(tmp_path):
    net = visionfit.create_model("lenet_bn", num_classes=4, in_channels=3).eval()
    net(torch.randn(2, 3, 28, 28))  # running stats are part of the file too
    save_model_file(tmp_path / "m.safetensors", net, model_meta("lenet_bn", list("abcd"), in_channels=3))
    loaded = visionfit.load_model(tmp_path / "m.safetensors")
    x = torch.randn(3, 3, 28, 28)
    assert torch.equal(loaded(x), net(x))
    assert read_meta(tmp_path / "m.safetensors")["class_names"] == ["a", "b", "c", "d"]
    assert not loaded.training


def test_plain_weights_are_not_mistaken_for_a_model_file(tmp_path):
    safetensors.torch.save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(ModelError, match="plain weights"):
        visionfit.load_model(tmp_path / "plain.safetensors")


@pytest.mark.parametrize("content", [None, b"garbage bytes"])
def test_missing_or_corrupt_model_files_get_a_clear_error(tmp_path, content):
    path = tmp_path / "best.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=str(path)):
        visionfit.load_model(path)


def test_tied_weights_are_stored_once_and_tied_again(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "models"))
    net = visionfit.create_model("custom_net:TiedNet", num_classes=3).eval()
    save_model_file(tmp_path / "m.safetensors", net, model_meta("custom_net:TiedNet"))
    with safetensors.safe_open(tmp_path / "m.safetensors", framework="pt") as f:
        assert len(list(f.keys())) == 5  # 6 state_dict entries, one of them shared
    loaded = visionfit.load_model(tmp_path / "m.safetensors", trust_code=True)
    assert loaded.classify.weight is loaded.encode.weight
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), net(x))


def test_a_file_written_by_a_release_without_preprocess_and_format_still_loads(tmp_path):
    net = visionfit.create_model("lenet", num_classes=3)
    meta = model_meta(visionfit_version="0.1.0", dataset="bars", weights=None, metrics={"val_acc": 0.9})
    safetensors.torch.save_model(net, str(tmp_path / "m.safetensors"), metadata={"visionfit": json.dumps(meta)})
    assert visionfit.load_model(tmp_path / "m.safetensors").visionfit_meta["metrics"] == {"val_acc": 0.9}
