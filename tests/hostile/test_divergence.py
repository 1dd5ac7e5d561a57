"""A run that diverges stops at the first nan/inf with exit 2, and its folder keeps the last finite epoch."""
import csv
import math
import re

import safetensors.torch
import torch
from torch import nn

import visionfit
from visionfit.checkpoints import load_resume_state
from visionfit.errors import TrainingDiverged

from .conftest import cli_error


def assert_run_keeps_epoch(run_dir, epoch: int) -> None:
    """Every file of the run is loadable, finite and from `epoch` (1-based)."""
    state = load_resume_state(run_dir)
    assert state["epoch"] + 1 == epoch and len(state["history"]) == epoch
    assert all(t.isfinite().all() for t in state["model"].values() if t.is_floating_point())
    for name in ("best.safetensors", "last.safetensors"):
        tensors = safetensors.torch.load_file(run_dir / name)
        assert all(t.isfinite().all() for t in tensors.values() if t.is_floating_point()), name
    with open(run_dir / "metrics.csv") as rows:
        assert [int(row["epoch"]) for row in csv.DictReader(rows)] == list(range(1, epoch + 1))


def test_a_learning_rate_too_high_stops_in_epoch_2_naming_the_step(capsys, tmp_path):
    # warmup ramps the lr from 0.1 to 10 over two epochs: epoch 1 stays finite, epoch 2 blows up
    line = cli_error(capsys, "train", "--model", "mlp", "--max-per-class", "10", "--image-size", "16",
                     "--batch-size", "16", "--epochs", "3", "--lr", "10", "--optimizer", "sgd", "--momentum", "0.9",
                     "--scheduler", "none", "--warmup-epochs", "2", "--workers", "0", "--quiet",
                     "--project", tmp_path)
    assert re.fullmatch(r"visionfit: error: the training loss became (nan|inf) at epoch 2, step \d+ \(lr [\d.]+\): "
                        r"the run diverged; try a 10x smaller --lr, or --warmup-epochs 1.*", line), line
    assert_run_keeps_epoch(tmp_path / "exp", epoch=1)


class TurnsNan(nn.Module):
    """Flatten + Linear, whose logits turn nan from the given training or evaluation forward on."""

    def __init__(self, from_call: int, in_training: bool = True):
        super().__init__()
        self.fc = nn.Linear(16 * 16, 3)
        self.from_call, self.in_training, self.calls = from_call, in_training, 0

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        if self.training == self.in_training:
            self.calls += 1
            if self.calls >= self.from_call:
                return logits * math.nan
        return logits


def fit_until_nan(tiny_splits, tmp_path, net) -> TrainingDiverged:
    try:
        visionfit.fit(net, tiny_splits, project=str(tmp_path), epochs=3, batch_size=16, image_size=16, quiet=True)
    except TrainingDiverged as error:
        return error
    raise AssertionError("the run did not stop")


def test_a_nan_training_loss_names_its_epoch_and_step(tiny_splits, tmp_path):
    error = fit_until_nan(tiny_splits, tmp_path, TurnsNan(from_call=9))  # 96 images / 16: 6 steps an epoch
    assert (error.what, error.epoch, error.step) == ("training loss", 2, 3) and math.isnan(error.value)
    assert_run_keeps_epoch(tmp_path / "exp", epoch=1)


def test_a_nan_validation_loss_stops_the_run_too(tiny_splits, tmp_path):
    val_batches = -(-30 // 16)
    error = fit_until_nan(tiny_splits, tmp_path, TurnsNan(from_call=2 * val_batches + 1, in_training=False))
    assert (error.what, error.epoch, error.step) == ("validation loss", 3, None)
    assert str(error).startswith("the validation loss became nan at epoch 3 (lr ")
    assert_run_keeps_epoch(tmp_path / "exp", epoch=2)
    assert torch.load(tmp_path / "exp" / "previous.ckpt", weights_only=True)["epoch"] == 0
