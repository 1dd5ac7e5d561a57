import json

import pytest
import torch
import yaml

import visionfit
from visionfit.checkpoints import load_resume_state, read_meta
from visionfit.data.prepare import prepare_data, resolve_splits
from visionfit.errors import ConfigError
from visionfit.resolve import saved_plan
from visionfit.train.callbacks import METRIC_COLUMNS

from .photos import write_odd_photos

FAST = dict(epochs=3, lr=0.05, optimizer="adam", batch_size=16, quiet=True, image_size=16)


def test_fit_leaves_a_complete_run_directory(tiny_splits, tmp_path):
    result = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), **FAST)
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "metrics.csv", "curves.png", "best.safetensors", "last.safetensors", "last.ckpt",
            "summary.json"} <= files
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    single_label = [column for column in METRIC_COLUMNS  # without the EMA's and multi-label's columns
                    if not column.startswith("ema_") and not column.endswith(("micro_f1", "map"))]
    assert rows[0].split(",") == single_label and len(rows) == 4
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["best_epoch"] == result.best_epoch and summary["classes"] == ["left", "middle", "right"]
    assert summary["best_weights"] == "raw" and visionfit.read_meta(result.best_model)["trained_weights"] == "raw"
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert config["data"]["image_size"] == 16 and config["resolved"]["input"]["channels"] == 1
    assert result.best_score > 0.9  # the bars are easy; a broken loop would sit at 1/3


def test_run_directories_are_numbered(tiny_splits, tmp_path):
    first = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), **{**FAST, "epochs": 1})
    second = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), **{**FAST, "epochs": 1})
    assert (first.run_dir.name, second.run_dir.name) == ("exp", "exp2")


def test_best_model_file_rebuilds_the_model_with_identical_outputs(tiny_splits, tmp_path):
    result = visionfit.fit("lenet", tiny_splits, project=str(tmp_path), model_args={"act": "relu"}, **FAST)
    model = visionfit.load_model(result.run_dir / "last.safetensors")
    state = load_resume_state(result.run_dir)
    reference = visionfit.create_model("lenet", num_classes=3, in_channels=1, act="relu", input_size=16)
    reference.load_state_dict(state["model"])
    reference.eval()
    x = torch.randn(5, 1, 16, 16)
    assert torch.equal(model(x), reference(x))
    meta = model.visionfit_meta
    assert meta["class_names"] == ["left", "middle", "right"] and meta["input_size"] == 16
    assert meta["metrics"]["epoch"] == 3


@pytest.mark.parametrize("regularize", [{}, {"mixup": 0.4, "cutmix": 1.0, "ema": 0.9, "batch_size": 15}],
                         ids=["plain", "mixed_ema_odd_batches"])
def test_resumed_run_ends_where_an_uninterrupted_one_does(tiny_splits, tmp_path, regularize):
    options = dict(FAST, epochs=3, optimizer="sgd", scheduler="cosine", lr=0.1, pad=2, flip=True, **regularize)
    full = visionfit.fit("lenet_bn", tiny_splits, project=str(tmp_path / "a"), **options)

    class Crash(Exception):
        pass

    from visionfit.train import trainer as trainer_module

    original = trainer_module.Trainer.train_one_epoch

    def crash_in_third_epoch(self):
        if self.epoch == 2:
            raise Crash
        return original(self)

    trainer_module.Trainer.train_one_epoch = crash_in_third_epoch
    try:
        with pytest.raises(Crash):
            visionfit.fit("lenet_bn", tiny_splits, project=str(tmp_path / "b"), **options)
    finally:
        trainer_module.Trainer.train_one_epoch = original
    resumed = visionfit.fit(data=tiny_splits, resume=str(tmp_path / "b" / "exp"))
    a = load_resume_state(full.run_dir)
    b = load_resume_state(resumed.run_dir)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [row["loss"] for row in a["history"]] == [row["loss"] for row in b["history"]]
    if regularize:
        assert a["ema"]["steps"] == b["ema"]["steps"] == 3 * 7  # 96 images in batches of 15: 7 steps an epoch
        header = (resumed.run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
        assert header == [column for column in METRIC_COLUMNS if not column.endswith(("micro_f1", "map"))]
        for key in a["ema"]["weights"]:
            assert torch.equal(a["ema"]["weights"][key], b["ema"]["weights"][key]), key


def test_early_stopping_ends_the_run(tiny_splits, tmp_path):
    # lr so small nothing improves after the first epoch
    result = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), **{**FAST, "epochs": 10, "lr": 1e-9,
                                                                         "optimizer": "sgd", "patience": 2})
    assert len(result.history) == 3


def test_gradient_accumulation_matches_a_bigger_batch(tiny_splits, tmp_path):
    base = dict(FAST, epochs=1, optimizer="sgd", momentum=0.0, lr=0.1, pad=0)
    big = visionfit.fit("mlp", tiny_splits, project=str(tmp_path / "a"), **{**base, "batch_size": 32})
    accumulated = visionfit.fit("mlp", tiny_splits, project=str(tmp_path / "b"), **{**base, "batch_size": 16,
                                                                                    "accumulate": 2})
    a = load_resume_state(big.run_dir)["model"]
    b = load_resume_state(accumulated.run_dir)["model"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_fit_accepts_an_nn_module(tiny_splits, tmp_path):
    net = visionfit.create_model("mlp", num_classes=3, in_channels=1, input_size=16)
    result = visionfit.fit(net, tiny_splits, project=str(tmp_path), **FAST)
    assert result.best_model.exists()
    model = visionfit.load_model(result.best_model)
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 3)


def test_fit_of_a_module_the_file_cannot_rebuild_ends_with_its_best_weights(tiny_splits, tmp_path):
    # torchvision's ShuffleNetV2(stages_repeats, stages_out_channels): the file names its class but
    # not the arguments it was built with (as for ResNet(block, layers)).
    from torchvision.models import ShuffleNetV2
    net = ShuffleNetV2([1, 1, 1], [8, 8, 16, 32, 64], num_classes=3)
    result = visionfit.fit(net, tiny_splits, project=str(tmp_path), channels=3, **FAST)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["best_epoch"] == result.best_epoch and (result.run_dir / "MODEL_CARD.md").is_file()


def test_max_per_class_trains_on_a_balanced_slice(tiny_splits, tmp_path):
    result = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), max_per_class=5, **{**FAST, "epochs": 1})
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["train_images"] == 15 and summary["val_images"] == 30


def test_monitor_class_weights_and_sampler_run_and_resume_keeps_the_monitor(tiny_splits, tmp_path, capsys):
    options = dict(FAST, epochs=2, monitor="val_loss", class_weights="auto", sampler="balanced")
    result = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), **options)
    with pytest.raises(ConfigError, match="--monitor cannot change"):
        visionfit.fit(data=tiny_splits, resume=str(result.run_dir), epochs=3, monitor="val_acc")
    capsys.readouterr()
    resumed = visionfit.fit(data=tiny_splits, resume=str(result.run_dir), epochs=3)
    said = capsys.readouterr()
    losses = [row["val_loss"] for row in resumed.history]
    summary = json.loads((resumed.run_dir / "summary.json").read_text())
    assert resumed.best_epoch == losses.index(min(losses)) + 1 == summary["best_epoch"]
    assert resumed.best_score == -min(losses) and summary["monitor"] == "val_loss"
    assert f"best epoch {resumed.best_epoch}: val_loss {min(losses):.4f}" in said.out
    assert "class weights (auto): " in said.err
    assert read_meta(resumed.best_model)["metrics"]["epoch"] == resumed.best_epoch
    config = yaml.safe_load((resumed.run_dir / "config.yaml").read_text())
    assert (config["train"]["monitor"], config["train"]["class_weights"], config["data"]["sampler"]) == (
        "val_loss", "auto", "balanced")


def test_a_photo_run_records_its_presize_and_resumes_with_it(tmp_path, capsys):
    root = write_odd_photos(tmp_path / "photos", per_class=6)
    options = dict(epochs=1, lr=0.01, optimizer="adam", batch_size=4, image_size=16, presize=20, workers=0, quiet=True)
    result = visionfit.fit("lenet_relu", str(root), project=str(tmp_path / "runs"), **options)
    assert "training images stored at 20x20 (presize); random resized crop + flip on the device" in capsys.readouterr().out
    recorded = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert recorded["data"]["presize"] == 20 and recorded["resolved"]["input"]["presize"] == 20
    resumed = visionfit.fit(resume=str(result.run_dir), epochs=2)
    assert resumed.resolved.plan.presize == 20 and [row["epoch"] for row in resumed.history] == [1, 2]
    said = capsys.readouterr().out  # the same files and presize: the store comes from the disk cache
    assert "training images stored at 20x20 (presize), read from the disk cache; random resized crop" in said
    # A record from before the presize existed still loads, and trains on whole photos as that run did.
    old = resumed.resolved.record()
    del old["resolved"]["input"]["presize"]
    old["resolved"]["input"]["store_side"] = 22
    plan = saved_plan(old)[0]
    assert (plan.presize, plan.store_side) == (None, 22)
    config = resumed.resolved.config
    train = prepare_data(config.data, resolve_splits(config.data, config.train.seed), plan).train
    assert not train.uniform and min(min(image.shape[1:]) for image in train.images) == 22
