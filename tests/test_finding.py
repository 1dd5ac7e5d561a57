"""visionfit.lr_find / `visionfit lr-find`, and `train --lr auto`: the finder on a real (tiny) run."""
import copy

import pytest
import torch
import yaml

import visionfit
from visionfit.cli import build_parser
from visionfit.cli.train import config_options
from visionfit.config import Config
from visionfit.errors import ConfigError

TINY = dict(batch_size=16, quiet=True, image_size=16, optimizer="sgd")


def test_lr_find_leaves_the_module_as_it_was_and_writes_its_plot_and_table(tiny_splits, tmp_path):
    net = visionfit.create_model("mlp", num_classes=3, in_channels=1, input_size=16)
    before = copy.deepcopy(net.state_dict())
    found = visionfit.lr_find(net, tiny_splits, steps=30, project=str(tmp_path), **TINY)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    assert found.run_dir == tmp_path / "lr_find" and found.plot.is_file()
    table = (found.run_dir / "lr_find.csv").read_text().splitlines()
    assert table[0] == "step,lr,loss,smoothed_loss" and len(table) == len(found.lrs) + 1
    assert found.suggestion == found.suggestions["valley"] and found.suggestion in found.lrs
    assert found.format().startswith(f"suggested lr: {found.suggestion:.3g} (valley; steep ")


def test_lr_auto_trains_at_the_found_lr_and_records_where_it_came_from(tiny_splits, tmp_path):
    auto = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), name="auto", epochs=1, lr="auto", **TINY)
    record = yaml.safe_load((auto.run_dir / "config.yaml").read_text())
    found = record["resolved"]["lr_finder"]
    assert record["train"]["lr"] == found["lr"] == found["suggestions"]["valley"] and found["from"] == "lr finder (valley)"
    assert (auto.run_dir / "lr_find.png").is_file() and any("LR finder" in note for note in record["resolved"]["notes"])
    # The sweep left nothing behind (weights, optimizer, RNG): the same run with that lr typed in is identical.
    typed = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), name="typed", epochs=1, lr=found["lr"], **TINY)
    assert auto.history[0]["loss"] == typed.history[0]["loss"]
    assert auto.history[0]["lr"] == pytest.approx(found["lr"])


@pytest.mark.parametrize("typed, value", [("auto", "auto"), ("0.01", 0.01), ("1e-3", 0.001)])
def test_the_lr_flag_takes_a_number_or_auto(typed, value):
    for command in ("train", "lr-find"):
        assert config_options(build_parser().parse_args([command, "--lr", typed]))["lr"] == value


@pytest.mark.parametrize("lr, message", [("fast", "--lr must be a number or auto, not .fast."), (100.0, "--lr must be")])
def test_other_words_and_out_of_range_numbers_are_refused(lr, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_options(lr=lr)


def test_a_config_file_may_say_lr_auto(tmp_path):
    (tmp_path / "c.yaml").write_text("train: {lr: auto}\n")
    assert Config.from_file(tmp_path / "c.yaml").train.lr == "auto"
    assert Config.from_options(lr=None).train.lr is None  # the recipes branch's "the recipe's lr"


def test_the_sweep_settings_are_checked(tiny_splits):
    with pytest.raises(ConfigError, match="--steps 3"):
        visionfit.lr_find("mlp", tiny_splits, steps=3)
    with pytest.raises(ConfigError, match="--start-lr 1 and --end-lr 0.1"):
        visionfit.lr_find("mlp", tiny_splits, start_lr=1.0, end_lr=0.1)
