"""summary: output shapes, parameter counts (trainable / frozen) and MACs against known totals."""
from pathlib import Path

import pytest
from torch import nn

import visionfit
from visionfit.checkpoints import save_model_file
from visionfit.cli import main
from visionfit.errors import ConfigError, ModelError

from ..conftest import model_meta


def test_lenet_layers_and_totals():
    report = visionfit.summary("lenet")
    # d2l's LeNet on 1 x 28 x 28: 6*28*28*25 + 16*10*10*150 + 400*120 + 120*84 + 84*10 multiply-accumulates
    assert report.total_macs == 117_600 + 240_000 + 48_000 + 10_080 + 840
    assert report.trainable == 61_706 and report.frozen == 0
    assert [r.output_shape for r in report.rows if r.kind == "Conv2d"] == ["[1, 6, 28, 28]", "[1, 16, 10, 10]"]
    assert sum(r.macs for r in report.rows) == report.total_macs


def test_torchvision_resnet18_at_224_is_1_82_gmacs():
    report = visionfit.summary("resnet18", input_size=(1, 3, 224, 224))
    assert report.total_macs == pytest.approx(1.82e9, rel=0.01)
    assert report.trainable == 11_689_512
    assert report.rows[-1].name == "fc" and report.rows[-1].output_shape == "[1, 1000]"
    assert sum(r.macs for r in report.rows) == report.total_macs
    assert report.size_mb == pytest.approx(11_689_512 * 4 / 1e6, rel=0.01)


def test_functional_matmuls_count_under_the_module_that_runs_them():
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(8, 24)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            return (q @ k.transpose(-1, -2)).softmax(-1) @ v

    model = nn.Sequential(Attention(), nn.Flatten(), nn.Linear(16 * 8, 2))
    model[2].requires_grad_(False)
    report = visionfit.summary(model, input_size=(1, 16, 8))
    by_name = {r.name: r for r in report.rows}
    assert by_name["0.qkv"].macs == 16 * 8 * 24
    assert by_name["0"].macs == 2 * 16 * 16 * 8  # q @ k^T and attention @ v, the container's own work
    assert report.total_macs == 16 * 8 * 24 + 2 * 16 * 16 * 8 + 128 * 2
    assert report.frozen == 128 * 2 + 2 and by_name["2"].frozen == 258 and by_name["2"].trainable == 0


def test_a_model_file_is_summarised_at_its_own_input(bars_model):
    report = visionfit.summary(bars_model)
    assert report.input_size == (1, 1, 16, 16) and report.rows[-1].output_shape == "[1, 3]"


def test_classic_nets_are_built_for_the_asked_input():
    report = visionfit.summary("lenet_relu", input_size=(2, 3, 32, 32), num_classes=5)
    assert report.rows[0].output_shape == "[2, 6, 32, 32]" and report.rows[-1].output_shape == "[2, 5]"


def test_an_input_the_model_cannot_take_is_a_model_error():
    with pytest.raises(ModelError, match="cannot take input"):
        visionfit.summary(nn.Linear(4, 2), input_size=(1, 3))


def test_summary_cli_prints_the_table(capsys):
    main(["summary", "lenet", "--model-args", "act=relu"])
    out = capsys.readouterr().out
    assert "features.0" in out and "Conv2d" in out and "ReLU" in out
    assert "lenet: 61,706 parameters" in out and "416.52 KMACs for input 1x1x28x28" in out


def test_an_input_larger_than_any_image_is_refused_before_building():
    with pytest.raises(ConfigError, match="at most 4096 px a side"):
        visionfit.summary("resnet18", input_size=(1, 3, 5000, 5000))


def test_a_model_file_naming_outside_code_needs_trust(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "models"))
    path = tmp_path / "m.safetensors"
    save_model_file(path, visionfit.create_model("custom_net:TinyNet", num_classes=3, in_channels=1),
                    model_meta("custom_net:TinyNet", input_size=32))
    with pytest.raises(ModelError, match="code outside visionfit; loading it would import and run 'custom_net'"):
        visionfit.summary(path)
    assert visionfit.summary(path, trust_code=True).rows[-1].output_shape == "[1, 3]"
