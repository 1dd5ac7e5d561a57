import pytest
import safetensors.torch
import torch

import visionfit
from visionfit.checkpoints import read_meta, save_model_file
from visionfit.errors import ModelError


def test_model_file_round_trip_keeps_outputs_and_metadata(tmp_path):
    net = visionfit.create_model("lenet_bn", num_classes=4, in_channels=3).eval()
    net(torch.randn(2, 3, 28, 28))  # running stats are part of the file too
    meta = {"architecture": "lenet_bn", "model_args": {}, "class_names": list("abcd"), "in_channels": 3}
    save_model_file(tmp_path / "m.safetensors", net, meta)
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
