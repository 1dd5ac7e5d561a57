"""The CPU memory-format probe: which format it picks, what it remembers, and what it leaves alone
(the model, torch's random streams, short runs, a verdicts file that is not what it should be)."""
import json

import pytest
import torch
from torch import nn

import visionfit
from visionfit.train import memory_format
from visionfit.train.hardware import channels_last_for
from visionfit.train.memory_format import VERDICTS, cpu_memory_format

SHAPE = (32, 3, 16, 16)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))


def fake_timer(monkeypatch, nchw_s: float, channels_last_s: float, calls: list):
    """_pass_seconds that reports fixed times per format (by the last conv weight's layout: with
    one input channel, the first one's is both)."""
    def timed(model, x, training=True):
        conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
        is_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
        if x.shape[1] > 1:  # batches match their model (one channel is both layouts)
            assert x.is_contiguous(memory_format=torch.channels_last) == is_last
        calls.append(is_last)
        return channels_last_s if is_last else nchw_s
    monkeypatch.setattr(memory_format, "_pass_seconds", timed)


@pytest.mark.parametrize("channels_last_s, expected", [(0.5, True), (0.95, False), (1.5, False)])
def test_channels_last_only_when_clearly_faster(monkeypatch, tmp_path, channels_last_s, expected):
    calls = []
    fake_timer(monkeypatch, 1.0, channels_last_s, calls)
    choice = cpu_memory_format(small_net(), SHAPE, steps=1000, remember_in=tmp_path)
    assert choice.channels_last is expected
    assert "timed now" in choice.note and f"{channels_last_s * 1000:.0f} vs 1000 ms" in choice.note
    assert calls.count(True) == 1 + memory_format.TIMED_ROUNDS  # a warm-up, then alternating rounds
    assert calls.count(False) >= 2 + memory_format.TIMED_ROUNDS


def test_the_verdict_is_remembered_and_not_timed_again(monkeypatch, tmp_path):
    fake_timer(monkeypatch, 1.0, 0.5, [])
    assert cpu_memory_format(small_net(), SHAPE, steps=1000, remember_in=tmp_path).channels_last

    def no_timing(model, x, training=True):
        raise AssertionError("timed again")
    monkeypatch.setattr(memory_format, "_pass_seconds", no_timing)
    again = cpu_memory_format(small_net(), SHAPE, steps=1000, remember_in=tmp_path)
    assert again.channels_last and "earlier run" in again.note
    with pytest.raises(AssertionError, match="timed again"):  # another batch shape is another question
        cpu_memory_format(small_net(), (64, 3, 16, 16), steps=1000, remember_in=tmp_path)


def test_freezing_layers_asks_again(monkeypatch, tmp_path):
    fake_timer(monkeypatch, 1.0, 0.5, [])
    cpu_memory_format(small_net(), SHAPE, steps=1000, remember_in=tmp_path)
    frozen = small_net()
    frozen[0].requires_grad_(False)
    assert len(json.loads((tmp_path / VERDICTS).read_text())) == 1
    cpu_memory_format(frozen, SHAPE, steps=1000, remember_in=tmp_path)
    assert len(json.loads((tmp_path / VERDICTS).read_text())) == 2


def test_a_short_run_is_not_timed(monkeypatch, tmp_path):
    calls = []
    fake_timer(monkeypatch, 0.001, 0.0001, calls)  # 0.1 s of training: not worth a probe
    choice = cpu_memory_format(small_net(), SHAPE, steps=3, remember_in=tmp_path)
    assert choice == memory_format.MemoryFormatChoice(False, None)
    assert calls == [False, False] and not (tmp_path / VERDICTS).exists()


def test_a_probe_dearer_than_its_share_of_the_run_is_not_made(monkeypatch, tmp_path):
    calls = []
    # 5 s a pass of 8 images and 60 s of training: the probe alone would take half of it
    fake_timer(monkeypatch, 5.0, 1.0, calls)
    assert not cpu_memory_format(small_net(), (8, 3, 16, 16), steps=12, remember_in=tmp_path).channels_last
    assert calls == [False, False]


def test_the_real_timer_leaves_model_and_random_streams_alone(tmp_path):
    net = small_net()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    monkey_steps = 10**6  # long enough to time
    choice = cpu_memory_format(net, SHAPE, steps=monkey_steps, remember_in=tmp_path)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(value, before[name]) for name, value in net.state_dict().items())
    assert net[0].weight.is_contiguous() and net[0].weight.grad is None
    verdict = next(iter(json.loads((tmp_path / VERDICTS).read_text()).values()))
    assert verdict["nchw_ms"] > 0 and verdict["channels_last_ms"] > 0 and verdict["images"] == SHAPE[0]
    assert choice.channels_last == (verdict["channels_last_ms"] <= memory_format.MARGIN * verdict["nchw_ms"])


@pytest.mark.parametrize("content", [
    b"not json", b"[1, 2]", json.dumps({"k": {"nchw_ms": "1", "channels_last_ms": 1, "images": 2}}).encode(),
    b" " * (memory_format.VERDICTS_BYTES + 1),
])
def test_a_bad_verdicts_file_reads_as_no_verdict(monkeypatch, tmp_path, content):
    (tmp_path / VERDICTS).write_bytes(content)
    calls = []
    fake_timer(monkeypatch, 1.0, 0.5, calls)
    assert cpu_memory_format(small_net(), SHAPE, steps=1000, remember_in=tmp_path).channels_last
    assert calls  # timed, not read
    assert len(json.loads((tmp_path / VERDICTS).read_text())) == 1  # and replaced by a good one


def test_only_the_newest_verdicts_are_kept(monkeypatch, tmp_path):
    monkeypatch.setattr(memory_format, "VERDICTS_KEPT", 2)
    fake_timer(monkeypatch, 1.0, 0.5, [])
    for batch in (8, 16, 32):
        cpu_memory_format(small_net(), (batch, 3, 16, 16), steps=10**4, remember_in=tmp_path)
    assert [v["images"] for v in json.loads((tmp_path / VERDICTS).read_text()).values()] == [16, 32]


def test_an_unwritable_cache_folder_costs_nothing_but_the_memory(monkeypatch, tmp_path):
    fake_timer(monkeypatch, 1.0, 0.5, [])
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert cpu_memory_format(small_net(), SHAPE, steps=1000, remember_in=blocked / "sub").channels_last


@pytest.mark.parametrize("setting, device, timed", [(True, "cpu", True), (False, "cpu", True), (None, "cuda", True),
                                                    (None, "cpu", False)])
def test_no_timing_when_the_flag_the_device_or_the_run_decides(monkeypatch, setting, device, timed):
    monkeypatch.setattr(memory_format, "_pass_seconds", lambda model, x, training=True: pytest.fail("timed"))
    on, note = channels_last_for(setting, small_net(), SHAPE, 10**6, torch.device(device), timed, None)
    assert note is None and on == (setting if setting is not None else device == "cuda")


def test_a_long_cpu_run_says_what_it_timed_and_trains_in_that_format(monkeypatch, tmp_path, tiny_splits, capsys):
    monkeypatch.setattr(memory_format, "MIN_RUN_S", 0.0)
    monkeypatch.setattr(memory_format, "MAX_PROBE_SHARE", 1e9)
    monkeypatch.setenv("VISIONFIT_CACHE", str(tmp_path / "cache"))
    fake_timer(monkeypatch, 1.0, 0.5, [])
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 3))
    seen = []
    net.register_forward_pre_hook(lambda module, args: seen.append(module[2].weight.is_contiguous(
        memory_format=torch.channels_last)))
    visionfit.fit(net, tiny_splits, project=str(tmp_path), epochs=1, batch_size=32, image_size=16, quiet=True)
    out = capsys.readouterr().out
    assert "channels_last on (faster on this CPU: 500 vs 1000 ms a pass of" in out
    assert seen and all(seen)
    assert (tmp_path / "cache" / VERDICTS).is_file()


def test_a_probe_that_fails_leaves_the_run_in_nchw(monkeypatch, tmp_path):
    def out_of_memory(model, x, training=True):
        raise RuntimeError("DefaultCPUAllocator: not enough memory")
    monkeypatch.setattr(memory_format, "_pass_seconds", out_of_memory)
    assert cpu_memory_format(small_net(), SHAPE, steps=1000, remember_in=tmp_path) == memory_format.MemoryFormatChoice(
        False, None)
    assert not (tmp_path / VERDICTS).exists()


def test_a_model_without_convolutions_is_not_timed(monkeypatch, tmp_path):
    calls = []
    fake_timer(monkeypatch, 1.0, 0.5, calls)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2))
    assert cpu_memory_format(mlp, SHAPE, steps=10**6, remember_in=tmp_path) == memory_format.MemoryFormatChoice(False)
    assert not calls
