"""What a run prints: its resolved summary, epoch lines and results on stdout; hints and warnings on stderr."""
import dataclasses
import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from visionfit.cli import main
from visionfit.config import Config
from visionfit.resolve import RecipeChoice, resolve_recipe
from visionfit.train.report import augmentation_text, class_counts, recipe_text, training_storage

from ..conftest import make_preset, pattern_images, train_config


@pytest.fixture
def bars_folder(tmp_path):
    """left/, middle/, right/: ten 16 px bar images each, as PNG files."""
    images, labels = pattern_images(30)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        path = tmp_path / "bars" / ["left", "middle", "right"][label] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return tmp_path / "bars"


def tiny_run(folder, project, *flags):
    main(["train", "--data", str(folder), "--epochs", "2", "--batch-size", "8", "--workers", "0",
          "--project", str(project), *flags])


def test_a_run_writes_its_record_to_stdout_and_nothing_else_there(capsys, tmp_path, bars_folder):
    tiny_run(bars_folder, tmp_path)  # capsys's stderr is no terminal: no bars
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"run folder: {tmp_path / 'exp'}"
    assert lines[1] == "  data:    bars: 3 classes, 24 training, 6 validation images"
    assert lines[2] == "  classes: left 8, middle 8, right 8"
    assert lines[3].startswith("  input:   28x28, both sides to 28 (bilinear), 1 channel, mean ")
    assert "  augment: light: pad 3 + random crop" in lines
    assert "  model:   lenet_relu; 61,111 of 61,111 parameters trainable, 415.93 KMACs per image" in lines
    assert "  device:  cpu, fp32, channels_last off" in lines
    assert ("  recipe:  default (no recipe of its own): sgd lr 0.05 momentum 0.9 weight decay 0, cosine schedule, "
            "2 epochs of batch 8, seed 0, init default; yours: --epochs, --batch-size" in lines)
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line[:9] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert lines[-2].startswith("best epoch ") and "val_acc" in lines[-2] and "2 epochs in" in lines[-2]
    assert lines[-1].startswith(f"files: {tmp_path / 'exp'} (best.safetensors")
    assert "epoch 1/2" not in err and "run folder" not in err and "best epoch" not in err


def test_hints_go_to_stderr_and_the_cost_of_augmenting_a_frozen_backbone_to_the_summary(capsys, tmp_path,
                                                                                          bars_folder):
    tiny_run(bars_folder, tmp_path, "--freeze", "backbone", "--augment", "light")
    out, err = capsys.readouterr()
    assert "hint: the backbone is frozen, but its features are not cached" in err
    assert not [line for line in out.splitlines() if "hint:" in line]
    assert "  model:   lenet_relu; 255 of 61,111 parameters trainable (frozen: backbone), 415.93 KMACs" in out
    assert ("  augment: light: pad 3 + random crop; not cached: augmentation runs the frozen backbone on every image "
            "every epoch, about 2x the compute of cached features (one forward per image per epoch, not once); "
            "--cache-features trains the head on each image's eval view, computed once") in out.splitlines()


def test_a_frozen_backbone_s_default_photo_view_is_said_to_cache_both_orientations():
    """Photos without a random resized crop flip: each image's features and its mirror's are
    cached (the small-image 'none' case runs end to end in tests/transfer/test_cached_features.py)."""
    config, recipe = resolve_recipe(Config.from_options(freeze="backbone"))
    photos = dataclasses.replace(make_preset(32, 3, (0.5,) * 3, (0.25,) * 3, small=False, flip=True),
                                 resized_crop=False)
    resolved = SimpleNamespace(config=config, recipe=recipe, preset=photos)
    assert augmentation_text(resolved, None, "mirrored") == (
        "flip only (frozen backbone: features of each image and its mirror cached; --augment light to train on "
        "random crops instead)")
    asked = SimpleNamespace(**{**vars(resolved), "recipe": RecipeChoice("default", {"pad": "your setting"}),
                               "plan": SimpleNamespace(augment="light")})
    assert augmentation_text(asked, None, "mirrored") == (
        "light: flip; the head trains on cached backbone features of each image and its mirror")


def test_the_summary_says_where_per_image_colour_ops_run_on_each_device(monkeypatch):
    """Equal-size images with colour jitter: DataLoader workers on a CPU with cores to spare (8, 2
    workers), the device batch on a GPU and on a CPU the workers would leave one core
    (data/loader.py's colour_on_device default)."""
    import visionfit.devices as devices

    monkeypatch.setattr(devices, "usable_cores", lambda: 8)
    config, recipe = resolve_recipe(Config.from_options(workers=2))
    jitter = dataclasses.replace(make_preset(8, 3, (0.5,) * 3, (0.25,) * 3, small=True, pad=1), color_jitter=0.4)
    plan = SimpleNamespace(small=True, store_shape=(8, 8), augment="strong")
    resolved = SimpleNamespace(config=config, recipe=recipe, preset=jitter, plan=plan)
    prepared = SimpleNamespace(train=SimpleNamespace(images=torch.zeros(2, 3, 8, 8), uniform=True,
                                                     from_disk_cache=False))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training_storage(resolved, prepared, cpu) == (
        "training images stored at 8x8; random crop + colour jitter per image in DataLoader workers")
    assert training_storage(resolved, prepared, cuda) == (
        "training images stored at 8x8; random crop + colour jitter on the device")
    assert "DataLoader worker" in augmentation_text(resolved, prepared, None, cpu)
    assert augmentation_text(resolved, prepared, None, cuda) == "strong: pad 1 + random crop, colour jitter 0.4"
    monkeypatch.setattr(devices, "usable_cores", lambda: 3)  # 2 workers would leave the model one core
    assert training_storage(resolved, prepared, cpu).endswith("colour jitter on the device")
    assert augmentation_text(resolved, prepared, None, cpu) == "strong: pad 1 + random crop, colour jitter 0.4"


def test_many_classes_are_summarised_not_listed():
    names = [f"c{i}" for i in range(30)]
    labels = torch.from_numpy(np.repeat(np.arange(30), np.arange(1, 31)))
    assert class_counts(names, labels) == "training images per class: min 1 (c0), median 15, max 30 (c29)"
    assert class_counts(["a", "b"], torch.tensor([0, 1, 1])) == "a 1, b 2"


@pytest.mark.parametrize("options, text", [
    ({}, "sgd lr 0.05 momentum 0.9 weight decay 0, cosine schedule, 10 epochs of batch 128, seed 0"),
    (dict(optimizer="adamw", lr=0.001, weight_decay=0.05, scheduler="step", step_size=3, warmup_epochs=1.0,
          label_smoothing=0.1, accumulate=4, seed=7),
     "adamw lr 0.001 weight decay 0.05, step schedule (step 3, gamma 0.1), 10 epochs of batch 128, warmup 1 epochs, "
     "label smoothing 0.1, accumulate 4, seed 7"),
])
def test_the_recipe_line_names_what_the_run_uses(options, text):
    assert recipe_text(train_config(**options), 128) == text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_go_to_the_terminal_on_stderr_and_never_to_stdout(capsys, monkeypatch, tmp_path, bars_folder):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)  # in the test: pytest's capture resets sys.stderr after fixtures
    tiny_run(bars_folder, tmp_path, "--epochs", "1")
    drawn = terminal.getvalue()
    for phase in ("scanning:", "decoding train:", "decoding val:", "epoch 1/1:"):
        assert f"\r{phase}" in drawn, phase
    out = capsys.readouterr().out
    assert "\r" not in out and "epoch 1/1  loss" in out and "best epoch" in out
    quiet_terminal = Terminal()
    monkeypatch.setattr("sys.stderr", quiet_terminal)
    tiny_run(bars_folder, tmp_path, "--epochs", "1", "--quiet")
    said = quiet_terminal.getvalue()  # no bars; warnings (this tiny run has too few steps) still say so
    assert "\r" not in said and all(line.startswith("warning: ") for line in said.splitlines())
