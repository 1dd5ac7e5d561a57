"""A disk that fills up while visionfit writes: one clear line, exit 2, the previous files intact.

The real thing runs on a tiny tmpfs (needs the right to mount: root on Linux; skipped
elsewhere); the same path is also driven portably by a writer that raises ENOSPC.
"""
import errno
import gc
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import visionfit
from visionfit.checkpoints import load_resume_state
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.train.callbacks import Checkpointer

from ..conftest import pattern_images
from ..infer.conftest import save_png
from .conftest import cli_error

CLASSES = ["left", "middle", "right"]
DISK_BYTES = 2 << 20  # holds a run of lenet_relu at 16 px (~0.5 MiB) with room to spare
TRAIN = ["--model", "lenet_relu", "--image-size", "16", "--batch-size", "16", "--optimizer", "adam", "--epochs", "2",
         "--quiet", "--device", "cpu"]


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A 2 MiB tmpfs mounted for one test."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("a tmpfs needs Linux and mount")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or 'mount failed'}")
    yield mount_point
    gc.collect()  # a writer that failed may hold its file until collected
    subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.fixture
def bars_folder(tmp_path) -> Path:
    images, labels = pattern_images(48, seed=0)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        save_png(tmp_path / "bars" / CLASSES[label] / f"{i}.png", pixels)
    return tmp_path / "bars"


def fill(disk: Path, leave_bytes: int) -> None:
    """Write a file that leaves `leave_bytes` free (real bytes: a sparse file would take no space)."""
    chunk = b"\0" * (64 << 10)
    with open(disk / "filler", "wb") as file:
        while (free := shutil.disk_usage(disk).free) > leave_bytes:
            file.write(chunk[:free - leave_bytes])
            file.flush()


def fill_before_epoch_2(monkeypatch, disk: Path, leave_bytes: int) -> None:
    """Let epoch 1 save everything, then fill the disk just before epoch 2's model files and checkpoint."""
    save = Checkpointer.on_epoch_end

    def on_epoch_end(self, trainer, metrics):
        if trainer.epoch == 1:
            fill(disk, leave_bytes)
        save(self, trainer, metrics)

    monkeypatch.setattr(Checkpointer, "on_epoch_end", on_epoch_end)


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".lock"]


@pytest.mark.parametrize("leave_bytes, failing", [(0, r"(best|last)\.safetensors"), (160 << 10, r"last\.ckpt")],
                         ids=["model_file_write", "checkpoint_write"])
def test_training_that_fills_the_disk_exits_2_and_keeps_epoch_1(tiny_disk, bars_folder, monkeypatch, capsys,
                                                                 leave_bytes, failing):
    # Epoch 2's model files (~85 KiB each, written one at a time) fit in 160 KiB; its last.ckpt (~250 KiB with Adam) does not.
    fill_before_epoch_2(monkeypatch, tiny_disk, leave_bytes)
    run = tiny_disk / "runs" / "exp"
    line = cli_error(capsys, "train", "--data", bars_folder, "--project", tiny_disk / "runs", *TRAIN)
    assert line.startswith(f"visionfit: error: no space left on device while writing {run}/")
    assert f"; free space in {run} or choose another output folder; the previous " in line
    assert re.search(failing + " is intact$", line), line
    assert load_resume_state(run)["epoch"] == 0  # epoch 1's state, whole
    model = visionfit.load_model(run / "best.safetensors")
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 3)
    assert temporaries(run) == []


def test_resume_after_freeing_space_finishes_the_run(tiny_disk, bars_folder, monkeypatch, capsys):
    fill_before_epoch_2(monkeypatch, tiny_disk, 0)
    cli_error(capsys, "train", "--data", bars_folder, "--project", tiny_disk / "runs", *TRAIN)
    monkeypatch.undo()
    os.remove(tiny_disk / "filler")
    result = visionfit.fit(resume=str(tiny_disk / "runs" / "exp"))
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_predict_onto_a_full_disk_says_so_and_leaves_the_old_csv(tiny_disk, bars_folder, tmp_path, capsys):
    images, labels = pattern_images(24, seed=0)
    val_images, val_labels = pattern_images(12, seed=1)
    splits = DatasetSplits("bars", CLASSES, Samples(labels=labels, images=images),
                           Samples(labels=val_labels, images=val_images))
    trained = visionfit.fit("lenet_relu", splits, project=str(tmp_path / "runs"), epochs=1, quiet=True, image_size=16,
                            batch_size=16)
    out = tiny_disk / "predictions.csv"
    out.write_text("image,label\nold,row\n")
    fill(tiny_disk, 0)
    line = cli_error(capsys, "predict", trained.best_model, bars_folder, "-o", out, "--device", "cpu")
    assert line == (f"visionfit: error: no space left on device while writing {out}; free space in {tiny_disk} or "
                    f"choose another output folder; the previous predictions.csv is intact")
    assert out.read_text() == "image,label\nold,row\n" and temporaries(tiny_disk) == []


def test_training_whose_checkpoint_write_fails_with_enospc_portably(bars_folder, tmp_path, monkeypatch, capsys):
    """The same path without a tiny disk: torch.save raises ENOSPC from epoch 2 on."""
    real_save = torch.save

    def save_until_epoch_2(state, path, *args, **kwargs):
        if isinstance(state, dict) and state.get("epoch") == 1:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(state, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_epoch_2)
    run = tmp_path / "runs" / "exp"
    line = cli_error(capsys, "train", "--data", bars_folder, "--project", tmp_path / "runs", *TRAIN)
    assert line == (f"visionfit: error: no space left on device while writing {run / 'last.ckpt'}; free space in {run} "
                    f"or choose another output folder; the previous last.ckpt is intact")
    monkeypatch.undo()
    assert load_resume_state(run)["epoch"] == 0 and temporaries(run) == []
