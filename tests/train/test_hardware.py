"""How a run uses the machine: channels_last on batches and weights, torch.compile's arguments,
and which training loaders keep DataLoader workers busy (CPU tests of GPU-side choices)."""
import numpy as np
import pytest
import torch
from torch import nn

import visionfit
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.train.hardware import use_channels_last


def rgb_splits() -> DatasetSplits:
    """24 training and 8 validation random 12 x 12 RGB images of two classes."""
    images = np.random.default_rng(0).integers(0, 256, (32, 12, 12, 3), dtype=np.uint8)
    return DatasetSplits("rgb", ["a", "b"], Samples(np.arange(24) % 2, images=images[:24]),
                         Samples(np.arange(8) % 2, images=images[24:]))


class FormatRecorder(nn.Module):
    """A conv net that records whether its input batch and its conv weight are channels_last."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)
        self.seen = set()

    def forward(self, x):
        last = torch.channels_last
        self.seen.add((x.is_contiguous(memory_format=last), self.conv.weight.is_contiguous(memory_format=last)))
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.mark.parametrize("channels_last", [True, False])
def test_channels_last_reaches_the_batches_and_the_model(tmp_path, channels_last):
    net = FormatRecorder()
    visionfit.fit(net, rgb_splits(), project=str(tmp_path), epochs=1, batch_size=8, image_size=12, quiet=True,
                  channels_last=channels_last, augment="none")
    assert net.seen == {(channels_last, channels_last)}


@pytest.mark.parametrize("setting, device, expected", [(None, "cuda", True), (None, "cpu", False),
                                                        (True, "cpu", True), (False, "cuda", False)])
def test_channels_last_is_on_by_default_only_on_cuda(setting, device, expected):
    assert use_channels_last(setting, torch.device(device)) is expected


def test_compile_is_called_with_static_shapes(monkeypatch, tiny_splits, tmp_path):
    calls = []

    def recording_compile(model, **options):
        calls.append((model, options))
        return model

    monkeypatch.setattr(torch, "compile", recording_compile)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 3))
    visionfit.fit(net, tiny_splits, project=str(tmp_path), epochs=1, batch_size=32, image_size=16, quiet=True,
                  compile=True)
    assert len(calls) == 1 and calls[0][1] == {"dynamic": False}
    assert isinstance(calls[0][0], nn.Sequential) and calls[0][0][1].in_features == 16 * 16


def device_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("  device:"))


@pytest.mark.parametrize("augment, line_end, threads", [
    ("medium", "channels_last off, 2 torch threads beside 2 DataLoader workers on 4 cores", 2),  # TrivialAugment: per image
    ("light", "channels_last off", 4),  # crop and flip on whole batches: no workers, every core
], ids=["per-sample", "batched"])
def test_training_threads_leave_cores_to_busy_workers(monkeypatch, capsys, tmp_path, threads_restored, augment,
                                                      line_end, threads):
    import visionfit.devices as devices

    monkeypatch.setattr(devices, "usable_cores", lambda: 4)
    torch.set_num_threads(4)
    visionfit.fit("mlp", rgb_splits(), project=str(tmp_path), epochs=1, batch_size=8, image_size=12, workers=2,
                  augment=augment, device="cpu")
    assert device_line(capsys.readouterr().out).endswith(line_end)
    assert torch.get_num_threads() == threads
