import pytest
import torch
from torch import nn

import visionfit
from visionfit.train.trainer import amp_dtype, set_train_mode

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
