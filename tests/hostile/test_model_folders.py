"""Model folders (config.json + model.safetensors, the Hub layout) are data, never code.

config.json is checked as a model file's metadata is, before anything is built: each
case is a folder a careless or hostile hand made, and each is one line naming the file.
"""
import json

import pytest
import safetensors.torch
import torch

import visionfit
from visionfit.errors import ModelError

from ..conftest import model_meta
from .conftest import cli_error
from .test_model_files import lenet_tensors


def write_folder(folder, config, tensors: dict | None = None):
    """A model folder: `config` (a dict, or raw bytes) as config.json, a 3-class lenet's tensors as model.safetensors."""
    folder.mkdir()
    (folder / "config.json").write_bytes(config if isinstance(config, bytes) else json.dumps(config).encode())
    safetensors.torch.save_file(lenet_tensors() if tensors is None else tensors, folder / "model.safetensors",
                                metadata={"format": "pt"})
    return folder


def test_a_well_made_folder_loads(tmp_path):
    model = visionfit.load_model(write_folder(tmp_path / "m", model_meta()))
    assert model.visionfit_meta["class_names"] == model_meta()["class_names"]


CASES = {
    "code_architecture": (model_meta("vf_crafted:Net"), "code outside visionfit"),
    "absurd_input_size": ({**model_meta(), "input_size": 10 ** 9}, "'input_size' is 1000000000, outside"),
    "not_json": (b"{'architecture': 'lenet'", "it is not JSON"),
    "not_utf8": (b"\xff\xfe{}", "it is not UTF-8 text"),
    "a_list": ([1, 2, 3], "it is a list, not an object"),
    "args_open_a_file": ({**model_meta(), "model_args": {"checkpoint_path": "/etc/passwd"}}, "read a file or download"),
}


@pytest.mark.parametrize("config, message", CASES.values(), ids=CASES.keys())
def test_a_bad_config_json_is_refused_before_anything_is_built(tmp_path, crafted_module, config, message):
    folder = write_folder(tmp_path / "m", config)
    with pytest.raises(ModelError, match=message) as caught:
        visionfit.load_model(folder)
    assert "config.json" in str(caught.value)


def test_an_oversized_config_json_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr("visionfit.checkpoints.MAX_CONFIG_BYTES", 100)
    with pytest.raises(ModelError, match="far more than a model's description"):
        visionfit.load_model(write_folder(tmp_path / "m", model_meta()))


def test_tensors_that_do_not_fit_the_config_are_refused(tmp_path):
    folder = write_folder(tmp_path / "m", model_meta(), {"fc.weight": torch.zeros(3, 784)})
    with pytest.raises(ModelError, match="do not fit architecture"):
        visionfit.load_model(folder)


def test_a_folder_without_config_json_is_one_line_on_the_command_line(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    line = cli_error(capsys, "eval", str(tmp_path / "m"), "--data", str(tmp_path))
    assert "has no config.json" in line
