"""On a CPU, classify() puts a model loaded from a file in the memory format that infers faster,
once, when the work is big enough to time; the numbers stay those of the NCHW model."""
import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import pattern_images
from visionfit.data.samples import UNLABELLED, Samples
from visionfit.infer.runner import classify, load_classifier
from visionfit.train import memory_format


def unlabelled_bars(count: int = 40) -> Samples:
    images, _ = pattern_images(count, seed=3)
    return Samples(labels=[UNLABELLED] * count, images=images)


def time_channels_last_as(monkeypatch, channels_last_s: float, modes: list):
    """Time passes as 1 s in NCHW and `channels_last_s` in channels_last, recording the mode timed."""
    def timed(model, x, training=True):
        modes.append(training)
        conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
        return channels_last_s if conv.weight.is_contiguous(memory_format=torch.channels_last) else 1.0
    monkeypatch.setattr(memory_format, "_pass_seconds", timed)
    monkeypatch.setattr(memory_format, "MIN_RUN_S", 0.0)
    monkeypatch.setattr(memory_format, "MAX_PROBE_SHARE", 1e9)


def test_a_model_file_infers_in_the_faster_format_with_the_same_numbers(bars_model, monkeypatch, tmp_path):
    monkeypatch.setenv("VISIONFIT_CACHE", str(tmp_path))
    nchw = load_classifier(bars_model, device="cpu")
    nchw.channels_last = False  # decided: stays NCHW
    expected = classify(nchw, unlabelled_bars(), batch_size=16).probs
    modes = []
    time_channels_last_as(monkeypatch, 0.5, modes)
    faster = load_classifier(bars_model, device="cpu")
    got = classify(faster, unlabelled_bars(), batch_size=16).probs
    assert modes and not any(modes)  # forward passes only, as inference makes them
    conv = [m for m in faster.model.modules() if isinstance(m, nn.Conv2d)][-1]
    assert faster.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    modes.clear()
    classify(faster, unlabelled_bars(), batch_size=16)
    assert not modes  # decided once per classifier


def test_no_timing_for_a_module_passed_in_or_for_little_work(bars_model, monkeypatch, tmp_path):
    monkeypatch.setenv("VISIONFIT_CACHE", str(tmp_path))
    module = load_classifier(bars_model, device="cpu").model
    modes = []
    time_channels_last_as(monkeypatch, 0.5, modes)
    passed_in = load_classifier(module, device="cpu")
    classify(passed_in, unlabelled_bars(), batch_size=16)
    assert not modes and passed_in.channels_last is None  # the caller's module keeps its format
    monkeypatch.setattr(memory_format, "MIN_RUN_S", 1e9)
    small = load_classifier(bars_model, device="cpu")
    classify(small, unlabelled_bars(4), batch_size=16)
    assert small.channels_last is None  # too little to time: a bigger job decides


@pytest.mark.parametrize("training", [True, False])
def test_training_and_inference_verdicts_are_kept_apart(monkeypatch, tmp_path, training):
    modes = []
    time_channels_last_as(monkeypatch, 0.5, modes)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    net(torch.zeros(1, 3, 8, 8))
    memory_format.cpu_memory_format(net, (8, 3, 8, 8), 100, tmp_path, training=training)
    modes.clear()
    memory_format.cpu_memory_format(net, (8, 3, 8, 8), 100, tmp_path, training=not training)
    assert modes and set(modes) == {not training}  # the other mode was timed, not read
