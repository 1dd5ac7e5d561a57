import io
import math

import pytest
import torch
from torch import nn

import visionfit
from visionfit.errors import TrainingDiverged
from visionfit.train.callbacks import Checkpointer, EarlyStopping, ProgressPrinter, score
from visionfit.train.trainer import Trainer, amp_dtype, set_train_mode
from .conftest import train_config

CUDA = torch.device("cuda")


@pytest.mark.parametrize("amp, bf16_supported, expected", [
    ("auto", True, torch.bfloat16),
    ("auto", False, torch.float16),
    ("bf16", True, torch.bfloat16),
    ("fp16", True, torch.float16),
    ("off", True, None),
])
def test_mixed_precision_choice_on_cuda(monkeypatch, amp, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    assert amp_dtype(amp, CUDA) is expected


def test_no_mixed_precision_on_cpu():
    assert amp_dtype("auto", torch.device("cpu")) is None
    assert amp_dtype("bf16", torch.device("cpu")) is None


def test_frozen_batchnorm_stays_in_eval_mode_and_keeps_its_statistics():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2),
                        nn.BatchNorm1d(2))
    for p in net[1].parameters():
        p.requires_grad_(False)
    set_train_mode(net)
    assert not net[1].training and net[5].training and net[0].training
    before = net[1].running_mean.clone()
    net(torch.randn(8, 1, 8, 8))
    assert torch.equal(net[1].running_mean, before)
    assert not torch.equal(net[5].running_mean, torch.zeros(2))


def test_channels_last_training_gives_the_same_model_as_contiguous(tiny_splits, tmp_path):
    options = dict(epochs=1, batch_size=16, quiet=True, image_size=16, pad=0, optimizer="sgd", momentum=0.0)
    a = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path / "a"), channels_last=False, **options)
    b = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path / "b"), channels_last=True, **options)
    x = torch.randn(4, 1, 16, 16)
    assert torch.allclose(visionfit.load_model(a.best_model)(x), visionfit.load_model(b.best_model)(x), atol=1e-5)


def test_tensorboard_logging_writes_an_event_file(tiny_splits, tmp_path):
    result = visionfit.fit("mlp", tiny_splits, project=str(tmp_path), epochs=1, quiet=True, image_size=16,
                           tensorboard=True)
    assert list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))


class Batches:
    """The loader interface the trainer uses (len, iter, set_epoch) over fixed batches."""

    def __init__(self, count: int, batch: int = 4, side: int = 4):
        generator = torch.Generator().manual_seed(0)
        self.batches = [(torch.randn(batch, 1, side, side, generator=generator), torch.arange(batch) % 3)
                        for _ in range(count)]

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)

    def set_epoch(self, epoch):
        pass


class TurnsBad(nn.Module):
    """A linear classifier whose logits become `bad` from its `from_call`-th forward (1-based)
    in the mode given: training forwards, or evaluation forwards."""

    def __init__(self, from_call: int, bad: float = math.nan, training: bool = True):
        super().__init__()
        self.fc = nn.Linear(16, 3)
        self.from_call, self.bad, self.in_training, self.calls = from_call, bad, training, 0

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        if self.training == self.in_training:
            self.calls += 1
            if self.calls >= self.from_call:
                return logits + torch.tensor([self.bad, 0.0, 0.0])
        return logits


def make_trainer(model, train_batches=5, val_batches=None, callbacks=(), **train_options):
    train_cfg = train_config(**{"epochs": 2, "lr": 0.1, **train_options})
    optimizer = torch.optim.SGD(model.parameters(), lr=train_cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    val = Batches(val_batches) if val_batches else None
    return Trainer(model, optimizer, scheduler, Batches(train_batches), val, torch.device("cpu"), train_cfg, callbacks)


def test_a_nan_loss_stops_training_at_that_step_before_it_touches_the_weights():
    model = TurnsBad(from_call=8)  # 5 steps per epoch: epoch 2, step 3
    trainer = make_trainer(model)
    with pytest.raises(TrainingDiverged) as caught:
        trainer.fit()
    error = caught.value
    assert (error.what, error.epoch, error.step, error.lr) == ("training loss", 2, 3, 0.1)
    assert math.isnan(error.value)
    assert str(error) == ("the training loss became nan at epoch 2, step 3 (lr 0.1): the run diverged; "
                          "try a 10x smaller --lr, or --warmup-epochs 1")
    assert all(p.isfinite().all() for p in model.parameters())  # on CPU it stops before backward
    assert len(trainer.history) == 1


def test_a_flag_read_every_50_steps_still_names_the_first_bad_step():
    """As on a GPU: the flag stays on the device and is read at the end of the epoch."""
    model = TurnsBad(from_call=4, bad=-math.inf)  # -inf on the true class of row 0: the loss is +inf, then nan
    trainer = make_trainer(model, train_batches=10)
    trainer.loss_watch.every = 50
    with pytest.raises(TrainingDiverged) as caught:
        trainer.fit()
    assert (caught.value.epoch, caught.value.step, caught.value.value) == (1, 4, math.inf)
    assert model.calls == 10  # read at the end of the epoch, after the last step


def test_a_nan_validation_loss_stops_the_run_before_the_epoch_is_recorded():
    seen = []

    class Recorder:
        def on_epoch_end(self, trainer, metrics):
            seen.append(metrics["epoch"])

    trainer = make_trainer(TurnsBad(from_call=3, training=False), val_batches=2, callbacks=[Recorder()])
    with pytest.raises(TrainingDiverged, match="the validation loss became nan at epoch 2 ") as caught:
        trainer.fit()
    assert caught.value.step is None
    assert seen == [1] and len(trainer.history) == 1


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # the scheduler steps past a skipped step
def test_loss_scaling_that_skips_inf_gradients_is_not_divergence():
    """fp16 GradScaler meets inf gradients and skips those steps; only the loss counts."""
    model = TurnsBad(from_call=10**6)
    handle = model.fc.weight.register_hook(lambda grad: grad * math.inf)  # every gradient overflows
    trainer = make_trainer(model, accumulate=2)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = model.fc.weight.detach().clone()
    trainer.fit()
    handle.remove()
    assert len(trainer.history) == 2
    assert trainer.scaler.get_scale() < 1024.0  # it did skip steps
    assert torch.equal(model.fc.weight, before)


@pytest.mark.parametrize("spoil", ["parameter_nan", "buffer_inf"])
def test_checkpointer_writes_nothing_from_non_finite_weights(tmp_path, spoil):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.BatchNorm1d(3))
    trainer = make_trainer(model)
    trainer.history = [{"epoch": 1, "loss": 1.0, "acc": 0.5, "lr": 0.1}]
    with torch.no_grad():
        if spoil == "parameter_nan":
            model[1].weight[0, 0] = math.nan
        else:
            model[2].running_var[1] = math.inf
    checkpointer = Checkpointer(tmp_path, {"architecture": "x"}, {})
    with pytest.raises(TrainingDiverged, match="the weights became non-finite at epoch 1 "):
        checkpointer.on_epoch_end(trainer, trainer.history[0])
    assert list(tmp_path.iterdir()) == []


def test_a_nan_score_never_counts_as_better():
    rows = [{"epoch": 1, "acc": 0.9, "val_acc": math.nan}, {"epoch": 2, "acc": 0.5, "val_acc": 0.4}]
    assert score(rows[0]) == -math.inf
    assert max(rows, key=score)["epoch"] == 2
    stopper = EarlyStopping(patience=5)
    stopper._update(rows[1])
    stopper._update(rows[0])
    assert (stopper.best, stopper.waited) == (0.4, 1)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_run_stopped_mid_epoch_still_clears_its_progress_bar():
    stream = Terminal()
    printer = ProgressPrinter(bar_stream=stream)
    with pytest.raises(TrainingDiverged):
        make_trainer(TurnsBad(from_call=3), callbacks=[printer]).fit()
    assert printer.bar is None
    assert stream.getvalue().endswith("\r")  # the bar's line is blanked, so the error starts a clean line


def test_the_caller_adds_what_the_run_folder_kept():
    error = TrainingDiverged("training loss", epoch=3, lr=1e6, step=41, value=math.nan)
    assert str(error.in_run("runs/exp")) == (
        "the training loss became nan at epoch 3, step 41 (lr 1e+06): the run diverged; try a 10x smaller --lr, "
        "or --warmup-epochs 1; runs/exp keeps the run up to epoch 2 (last.ckpt, last.safetensors, best.safetensors)")
    first_epoch = TrainingDiverged("weights", epoch=1, lr=0.1)
    assert str(first_epoch.in_run("runs/exp")).endswith("; runs/exp has no finished epoch")
    assert (error.in_run("x").epoch, error.in_run("x").step) == (3, 41) and str(error).endswith("--warmup-epochs 1")


def test_a_loss_window_read_late_names_the_first_bad_step_of_a_later_window():
    """GPU mode, windows of 4: steps 0-3 read clean, the bad step 6 is found when 4-7 are read."""
    model = TurnsBad(from_call=7)
    trainer = make_trainer(model, train_batches=10)
    trainer.loss_watch.every = 4
    with pytest.raises(TrainingDiverged) as caught:
        trainer.fit()
    assert (caught.value.epoch, caught.value.step) == (1, 7) and math.isnan(caught.value.value)
    assert model.calls == 8  # read once the window of steps 4-7 filled


# aten ops that read a value back to the host: on a GPU each waits for all the queued work.
HOST_READS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::bincount", "aten::is_nonzero",
              "aten::masked_select"}


def host_reads_in_an_epoch(batches: int) -> int:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    trainer = make_trainer(model, train_batches=batches, epochs=1)
    trainer.loss_watch.every = 50  # as on a GPU: the one-CPU-process mode reads each loss on purpose
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        trainer.train_one_epoch()
    return sum(event.name in HOST_READS for event in profiler.events())


def test_a_training_step_reads_nothing_back_to_the_host():
    """The epoch's reads (loss window, metrics) happen once, however many steps it has."""
    assert host_reads_in_an_epoch(3) == host_reads_in_an_epoch(12) > 0


@pytest.fixture
def forced_amp(monkeypatch):
    """forced_amp(dtype): the trainer picks `dtype` as if on a GPU; autocast then runs on the CPU."""
    from visionfit.train import trainer as trainer_module

    def force(dtype):
        monkeypatch.setattr(trainer_module, "amp_dtype", lambda amp, device: dtype)
    return force


class AutocastRecorder(nn.Module):
    """A linear classifier that records, per forward, whether autocast was on and its dtype."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), self.training))
        return self.fc(x.flatten(1))


def test_the_trainer_autocasts_to_the_chosen_dtype_in_training_and_evaluation(forced_amp):
    forced_amp(torch.bfloat16)
    model = AutocastRecorder()
    make_trainer(model, train_batches=2, val_batches=1, epochs=1).fit()
    assert model.seen == [(True, torch.bfloat16, True)] * 2 + [(True, torch.bfloat16, False)]


def test_no_autocast_without_a_chosen_dtype(forced_amp):
    forced_amp(None)
    model = AutocastRecorder()
    make_trainer(model, train_batches=2, epochs=1).fit()
    assert [enabled for enabled, _, _ in model.seen] == [False, False]


@pytest.mark.parametrize("dtype, scaled", [(torch.float16, True), (torch.bfloat16, False), (None, False)])
def test_loss_scaling_is_on_exactly_for_fp16(forced_amp, dtype, scaled):
    forced_amp(dtype)
    trainer = make_trainer(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    assert trainer.scaler.is_enabled() is scaled


def test_the_progress_bar_shows_the_loss_the_watch_read_and_reads_none_itself(monkeypatch):
    """In window mode (a GPU's) the bar's loss comes from the watch's window reads: the bar adds no
    .item() (that would wait for the GPU), and what it shows is the newest loss of the window read last."""
    stream = Terminal()
    printer = ProgressPrinter(bar_stream=stream)
    trainer = make_trainer(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), train_batches=6, callbacks=[printer], epochs=1)
    trainer.loss_watch.every = 4
    shown, reads = [], []
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or real_item(self))
    original = printer.on_batch_end

    def recording(trainer, step, loss):
        before = len(reads)
        original(trainer, step, loss)
        shown.append(printer._shown)
        assert len(reads) == before  # the bar reads nothing back
        losses.append(real_item(loss))

    losses = []
    printer.on_batch_end = recording
    trainer.fit()
    assert shown[:3] == [None, None, None] and shown[3] is not None  # the window of steps 0-3 read at step 3
    assert shown[3] == shown[4] == shown[5] == pytest.approx(losses[3])
