"""Freezing, per-group learning rates and unfreezing later, in fit() and on their own."""
import io
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import visionfit
from visionfit.checkpoints import load_resume_state
from visionfit.errors import ConfigError
from visionfit.models import create_model
from visionfit.models.transfer import UnfreezeBackbone, freeze, param_groups
from visionfit.train.optim import build_optimizer, build_scheduler
from visionfit.train.trainer import set_train_mode
from ..conftest import train_config

RUN = dict(epochs=2, lr=0.05, batch_size=32, quiet=True, image_size=16, pad=0, val_split=0)


def trained_state(tiny_splits, tmp_path, **options) -> dict:
    result = visionfit.fit("lenet_bn", tiny_splits, project=str(tmp_path / "run"), **{**RUN, **options})
    return load_resume_state(result.run_dir)["model"]


def test_frozen_backbone_and_its_batchnorm_statistics_do_not_move(tiny_splits, tmp_path, lenet_start):
    after = trained_state(tiny_splits, tmp_path, weights=str(lenet_start), freeze="backbone", cache_features=False)
    before = torch.load(lenet_start)
    for key, value in before.items():
        if key.startswith("head.7."):
            assert not torch.equal(after[key], value), f"the head should train: {key}"
        else:
            assert torch.equal(after[key], value), f"frozen {key} moved"  # running_mean/var included


def test_freeze_n_freezes_the_first_n_units_only(tiny_splits, tmp_path, lenet_start):
    after = trained_state(tiny_splits, tmp_path, weights=str(lenet_start), freeze="2", cache_features=False)
    before = torch.load(lenet_start)
    for key in ("features.0.weight", "features.1.weight", "features.1.running_mean", "features.1.running_var"):
        assert torch.equal(after[key], before[key]), key
    for key in ("features.4.weight", "features.5.running_mean", "head.1.weight"):
        assert not torch.equal(after[key], before[key]), key


def test_frozen_batchnorm_stays_in_eval_mode():
    model = create_model("lenet_bn", num_classes=3)
    freeze(model, "backbone")
    set_train_mode(model)
    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert batchnorms and not any(m.training for m in batchnorms) and model.head.training


def lr_run(model, train_cfg, steps_per_epoch, steps, unfreeze_at=None):
    """Step an SGD (no momentum) run; returns per-step group lrs and backbone weights."""
    groups = param_groups(model, train_cfg.lr, train_cfg.lr * 0.1, include_frozen=True)
    optimizer = build_optimizer(groups, train_cfg)
    scheduler = build_scheduler(optimizer, train_cfg, steps_per_epoch)
    callback = UnfreezeBackbone(model, after=1, stream=io.StringIO())
    seen = []
    for step in range(steps):
        callback.on_epoch_start(SimpleNamespace(epoch=step // steps_per_epoch))
        weight = model.features[0].weight.detach().clone()
        model(torch.randn(4, 1, 28, 28)).square().mean().backward()
        grad = None if model.features[0].weight.grad is None else model.features[0].weight.grad.clone()
        lrs = [g["lr"] for g in optimizer.param_groups]
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        seen.append((lrs, weight, grad, model.features[0].weight.detach().clone()))
    return seen


def test_groups_keep_their_ratio_through_the_schedule_and_unfrozen_weights_follow_it():
    torch.manual_seed(0)
    model = create_model("lenet_bn", num_classes=3)
    freeze(model, "backbone")
    train_cfg = train_config(optimizer="sgd", momentum=0.0, lr=0.2, scheduler="cosine", epochs=3)
    seen = lr_run(model, train_cfg, steps_per_epoch=2, steps=6)
    for step, ((backbone_lr, head_lr), before, grad, after) in enumerate(seen):
        assert backbone_lr == pytest.approx(head_lr * 0.1), "groups keep their ratio"
        if step < 2:  # epoch 1: frozen
            assert grad is None and torch.equal(before, after)
        else:  # unfrozen: plain SGD at the group's *scheduled* lr
            assert torch.allclose(after, before - backbone_lr * grad, atol=1e-7)
    assert seen[-1][0][1] < seen[2][0][1] < 0.2  # the cosine keeps decaying after the unfreeze
    batchnorm = model.features[1]
    set_train_mode(model)
    assert not batchnorm.training and not batchnorm.weight.requires_grad  # statistics stay the pretrained ones


def test_unfreeze_after_trains_the_backbone_in_fit(tiny_splits, tmp_path, lenet_start, capsys):
    after = trained_state(tiny_splits, tmp_path, weights=str(lenet_start), freeze="backbone",
                          unfreeze_after=1, lr_backbone_mult=0.5)
    assert "epoch 2: unfroze the backbone" in capsys.readouterr().err
    assert not torch.equal(after["features.0.weight"], torch.load(lenet_start)["features.0.weight"])


@pytest.mark.parametrize("options, message", [
    (dict(unfreeze_after=1), "--unfreeze-after needs a frozen part"),
    (dict(freeze="backbone", unfreeze_after=2), "between 1 and --epochs - 1"),
    (dict(freeze="backbone", lr_backbone=0.01), "do nothing with --freeze backbone"),
    (dict(freeze="half"), "--freeze 'half' is not none, backbone or a number"),
    (dict(lr_backbone=0.1, lr_backbone_mult=0.1), "give one"),
    (dict(cache_features=True), "--cache-features needs a backbone that stays frozen"),
    (dict(pretrained=True, weights="w.pth"), "--pretrained and --weights"),
])
def test_transfer_options_are_checked_before_any_work(tiny_splits, tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        visionfit.fit("lenet_bn", tiny_splits, project=str(tmp_path), **{**RUN, **options})


def test_freeze_more_units_than_the_model_has_names_them(tiny_splits, tmp_path):
    with pytest.raises(ConfigError, match=r"--freeze 40: ClassicNet has \d+ backbone units \(features.0, "):
        visionfit.fit("lenet_bn", tiny_splits, project=str(tmp_path), freeze="40", **RUN)
