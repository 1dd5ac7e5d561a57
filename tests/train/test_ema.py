"""The EMA of the weights: its arithmetic (warmup included), one update per optimizer step,
validation beside the raw weights, the checkpointer keeping the better, and its resume state."""
import io

import pytest
import safetensors.torch
import torch
from torch import nn

from visionfit.checkpoints import read_meta, read_resume_state
from visionfit.errors import ModelError
from visionfit.train.callbacks import Checkpointer, ProgressPrinter, weights_to_keep
from visionfit.train.ema import WeightAverage

from ..conftest import model_meta
from ..test_trainer import make_trainer


def closed_form(values: list[float], decay: float) -> float:
    """sum_t w_t (1 - d_t) prod_{j > t} d_j, with timm's warmup d_t = min(decay, 1 - t^(-2/3)), d_1 = 0."""
    decays = [0.0] + [min(decay, 1 - t ** (-2 / 3)) for t in range(2, len(values) + 1)]
    total = 0.0
    for t, value in enumerate(values):
        weight = 1 - decays[t]
        for later in decays[t + 1:]:
            weight *= later
        total += value * weight
    return total


@pytest.mark.parametrize("decay", [0.8, 0.99])  # 0.8 caps the warmup from step 12 on; 0.99 never within 30 steps
def test_after_k_steps_the_average_is_the_warmup_closed_form(decay):
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    ema = WeightAverage(net, decay)
    values = [float((t * 7) % 11 - 5) for t in range(1, 31)]
    for value in values:
        with torch.no_grad():
            net[0].weight.fill_(value)
            net[1].running_mean.fill_(2 * value)
            net[1].num_batches_tracked.fill_(len(values))
        ema.update()
    expected = closed_form(values, decay)
    assert ema.module[0].weight.item() == pytest.approx(expected, rel=1e-5)
    assert ema.module[1].running_mean.item() == pytest.approx(2 * expected, rel=1e-5)  # buffers are averaged too
    assert ema.module[1].num_batches_tracked.item() == len(values)  # integers are copied
    assert ema.steps == 30 and ema.decay == pytest.approx(min(decay, 1 - 30 ** (-2 / 3)))


def test_the_first_update_copies_the_weights():
    net = nn.Linear(3, 2)
    ema = WeightAverage(net, 0.999)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update()
    assert torch.equal(ema.module.weight, net.weight)


def test_the_trainer_updates_it_once_per_optimizer_step_and_validates_it():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    ema = WeightAverage(net, 0.9)
    trainer = make_trainer(net, train_batches=6, val_batches=2, accumulate=4)
    trainer.ema = ema
    history = trainer.fit()
    assert ema.steps == 2 * 2  # 6 batches in groups of 4: two optimizer steps per epoch, two epochs
    assert {"ema_val_loss", "ema_val_acc", "ema_val_macro_f1", "ema_val_balanced_acc"} <= set(history[-1])
    assert not torch.equal(ema.module[1].weight, net[1].weight)
    assert history[-1]["ema_val_loss"] == pytest.approx(trainer.evaluate(trainer.val_loader, ema.module)["loss"])
    assert history[-1]["val_loss"] != pytest.approx(history[-1]["ema_val_loss"])


def test_the_epoch_line_shows_the_ema_accuracy():
    stream = io.StringIO()
    metrics = {"epoch": 1, "loss": 0.5, "acc": 0.8, "val_loss": 0.4, "val_acc": 0.81, "ema_val_acc": 0.835,
               "lr": 0.1, "images_per_s": 100.0, "seconds": 1.0}
    ProgressPrinter(quiet=True, line_stream=stream).on_epoch_end(make_trainer(nn.Linear(16, 3)), metrics)
    assert "val_acc 81.00%  ema_val_acc 83.50%  lr" in stream.getvalue()


def test_weights_to_keep_prefers_raw_on_a_tie_and_without_validation():
    row = {"epoch": 1, "acc": 0.7, "val_acc": 0.8, "ema_val_acc": 0.9, "val_loss": 0.5, "ema_val_loss": 0.3}
    kept, view = weights_to_keep(row)
    assert kept == "ema" and view["val_acc"] == 0.9 and view["val_loss"] == 0.3 and view["acc"] == 0.7
    assert weights_to_keep({**row, "ema_val_acc": 0.8})[0] == "raw"
    assert weights_to_keep({"epoch": 1, "acc": 0.7})[0] == "raw"


def test_the_checkpointer_keeps_whichever_weights_score_better(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    trainer = make_trainer(net)
    trainer.ema = WeightAverage(net, 0.9)
    with torch.no_grad():
        trainer.ema.module[1].weight.fill_(0.25)  # tell the two apart
    checkpointer = Checkpointer(tmp_path, model_meta(architecture="mlp", input_size=16), {})

    def epoch(number: int, val_acc: float, ema_val_acc: float):
        metrics = {"epoch": number, "loss": 1.0, "acc": 0.5, "val_loss": 1.0, "val_acc": val_acc,
                   "ema_val_loss": 1.0, "ema_val_acc": ema_val_acc, "lr": 0.1}
        trainer.epoch = number - 1
        trainer.history.append(metrics)
        checkpointer.on_epoch_end(trainer, metrics)
        return read_meta(tmp_path / "best.safetensors")["trained_weights"], _weight(tmp_path / "best.safetensors")

    assert epoch(1, val_acc=0.6, ema_val_acc=0.7) == ("ema", 0.25)
    assert checkpointer.best_score == 0.7
    assert epoch(2, val_acc=0.65, ema_val_acc=0.68) == ("ema", 0.25)  # neither beats 0.7: best stays
    assert checkpointer.best_epoch == 1
    assert epoch(3, val_acc=0.9, ema_val_acc=0.8) == ("raw", net[1].weight[0, 0].item())
    assert read_meta(tmp_path / "last.safetensors")["trained_weights"] == "raw"
    state = read_resume_state(tmp_path / "last.ckpt")
    assert state["ema"]["steps"] == 0 and torch.equal(state["ema"]["weights"]["1.weight"], torch.full((3, 16), 0.25))


def test_its_state_round_trips_and_a_missing_state_is_refused():
    net = nn.Linear(4, 2)
    ema = WeightAverage(net, 0.9)
    for _ in range(3):
        with torch.no_grad():
            net.weight.mul_(2)
        ema.update()
    again = WeightAverage(nn.Linear(4, 2), 0.9)
    again.load_state_dict(ema.state_dict())
    assert again.steps == 3 and torch.equal(again.module.weight, ema.module.weight)
    with pytest.raises(ModelError, match="the run's last.ckpt has no EMA weights although the run averages them"):
        again.load_state_dict(None, "the run's last.ckpt")
    with pytest.raises(ModelError, match="has EMA weights that do not fit the model"):
        WeightAverage(nn.Linear(5, 2), 0.9).load_state_dict(ema.state_dict())


def _weight(path) -> float:
    return safetensors.torch.load_file(str(path))["1.weight"][0, 0].item()
