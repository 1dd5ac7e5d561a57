"""visionfit.compare and `visionfit compare`: one row per net, true counts, recipes and overrides, errors up front."""
import csv

import numpy as np
import pytest
import yaml
from PIL import Image

import visionfit
from visionfit.cli import main
from visionfit.cli.compare import _override
from visionfit.comparing import CSV_COLUMNS, plan_runs, shared_splits

from .conftest import pattern_images

FAST = dict(epochs=1, image_size=16, quiet=True)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_compare_writes_one_row_per_net_with_true_counts(tiny_splits, tmp_path):
    result = visionfit.compare(["mlp", "lenet", "lenet_bn"], tiny_splits, project=str(tmp_path),
                               overrides={"lenet": {"lr": 0.02, "act": "relu"}}, **FAST)
    out = tmp_path / "compare"
    assert result.out_dir == out
    with open(out / "results.csv", newline="") as f:
        assert next(csv.reader(f)) == CSV_COLUMNS
    rows = {row["model"]: row for row in read_csv(out / "results.csv")}
    assert list(rows) == ["mlp", "lenet", "lenet_bn"]
    for name, row in rows.items():
        net = visionfit.create_model(name, num_classes=3, in_channels=1, input_size=16)
        assert int(row["params"]) == sum(p.numel() for p in net.parameters())
        assert row["image_size"] == "16" and row["run"] == name and (out / name / "best.safetensors").exists()
        assert 0 <= float(row["best_val_acc"]) <= 1 and float(row["images_per_s"]) > 0
    assert int(rows["mlp"]["macs"]) == 16 * 16 * 512 + 512 * 512 + 512 * 3
    # lenet at 16 px: conv 6@16x16 (1x5x5, padded), conv 16@4x4 (6x5x5), then 64 -> 120 -> 84 -> 3
    assert int(rows["lenet"]["macs"]) == 16 * 16 * 6 * 25 + 4 * 4 * 16 * 150 + 64 * 120 + 120 * 84 + 84 * 3
    assert (rows["lenet_bn"]["lr"], rows["lenet_bn"]["batch_size"]) == ("1.0", "256")  # d2l's recipe
    assert (rows["lenet"]["lr"], rows["lenet"]["batch_size"]) == ("0.02", "256")  # overridden for lenet alone
    lenet_config = yaml.safe_load((out / "lenet" / "config.yaml").read_text())
    assert lenet_config["model"]["model_args"]["act"] == "relu" and lenet_config["train"]["momentum"] == 0.0
    assert (rows["mlp"]["lr"], rows["mlp"]["batch_size"]) == ("0.05", "128")  # no recipe: visionfit's defaults
    table = (out / "results.md").read_text().strip().splitlines()
    assert len(table) == 2 + 3 and table[2].startswith("| mlp | 16 |") and result.markdown == "\n".join(table) + "\n"
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("models, options, error, message", [
    (["mlp", "lenet5"], {}, visionfit.ModelError, "Did you mean lenet"),
    (["mlp", "alexnet_d2l"], {"max_image_size": 32}, visionfit.ModelError, "--set alexnet_d2l.image_size"),
    (["mlp", "mlp"], {}, visionfit.ConfigError, "more than once"),
    (["mlp"], {"overrides": {"lenet": {"lr": 0.1}}}, visionfit.ConfigError, "not in --models"),
    (["mlp", "lenet"], {"overrides": {"lenet": {"lr": -1}}}, visionfit.ConfigError, "--lr must be > 0"),
    (["mlp"], {"model": "lenet"}, visionfit.ConfigError, "--models"),
])
def test_bad_settings_fail_before_any_training(tiny_splits, tmp_path, models, options, error, message):
    with pytest.raises(error, match=message.replace(".", r"\.").replace("-", r"\-")):
        visionfit.compare(models, tiny_splits, project=str(tmp_path), **options)
    assert not any(tmp_path.iterdir())  # no run directory: nothing trained


def test_settings_stack_recipe_then_common_then_one_net():
    plans = plan_runs(["lenet", "resnet18_d2l", "vgg11_d2l"], {"epochs": 2}, {"vgg11_d2l": {"lr": 0.02}}, 48)
    sizes = {p.name: p.options["image_size"] for p in plans}
    assert sizes == {"lenet": 28, "resnet18_d2l": 48, "vgg11_d2l": 48}  # the cap only shrinks
    vgg = plans[2].options
    assert (vgg["lr"], vgg["batch_size"], vgg["epochs"], vgg["model_args"]) == (0.02, 128, 2, {"ratio": 4})
    ratio_8 = plan_runs(["vgg11_d2l"], {"image_size": 32}, {"vgg11_d2l": {"ratio": 8}}, None)[0].options
    assert ratio_8["model_args"] == {"ratio": 8} and ratio_8["image_size"] == 32


def test_validation_is_sliced_the_same_for_every_net(tiny_splits):
    splits = shared_splits(tiny_splits, {}, seed=0, max_val_per_class=4)
    assert len(splits.val) == 12 and np.bincount(splits.val.labels).tolist() == [4, 4, 4]
    assert len(tiny_splits.val) == 30  # the caller's splits are left alone


def test_override_flags_split_at_the_last_dot():
    assert _override("vgg11_d2l.lr=0.02") == ("vgg11_d2l", "lr", 0.02)
    assert _override("timm:vit_tiny.augreg.ratio=8") == ("timm:vit_tiny.augreg", "ratio", 8)


def test_cli_compare_on_class_folders(tmp_path, capsys):
    images, labels = pattern_images(45, side=16)
    for i, (image, label) in enumerate(zip(images, labels)):
        (tmp_path / "data" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "data" / str(label) / f"{i}.png")
    main(["compare", "--data", str(tmp_path / "data"), "--models", "lenet", "--set", "lenet.lr=0.02",
          "--epochs", "1", "--image-size", "16", "--quiet", "--project", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "| lenet | 16 | 256 | 0.02 |" in out and "results.md" in out


@pytest.mark.parametrize("argv, message", [
    (["--set", "lr=0.1"], "NET.KEY=VALUE"),
    (["--models", "mlp", "--model", "lenet"], "--models"),
])
def test_cli_bad_flags_exit_with_code_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--project", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
