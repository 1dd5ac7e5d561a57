import pytest
import timm
import torch
from timm.optim import param_groups_weight_decay

from visionfit.errors import ConfigError
from visionfit.models import create_model
from visionfit.models.transfer import no_decay_ids, optimizer_groups
from visionfit.train.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler, step_kernels
from visionfit.train.session import _load_optimizer_state

from .conftest import train_config


def model_and_groups(lrs=(0.1,)):
    model = torch.nn.Linear(4, len(lrs) + 1)
    params = [model.weight, model.bias]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)] if len(lrs) > 1 else [{"params": params, "lr": lrs[0]}]
    return model, groups


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_each_optimizer_reduces_a_simple_loss(name):
    torch.manual_seed(0)
    model, groups = model_and_groups()
    optimizer = build_optimizer(groups, train_config(optimizer=name, lr=0.05, weight_decay=1e-4, nesterov=True))
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    losses = train_steps(model, optimizer, x, y, 30)
    assert losses[-1] < losses[0] * 0.95


def lrs_over(train, steps_per_epoch, lrs=None):
    _, groups = model_and_groups(lrs or (train.lr,))
    optimizer = build_optimizer(groups, train)
    scheduler = build_scheduler(optimizer, train, steps_per_epoch)
    seen = []
    for _ in range(train.epochs * steps_per_epoch):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def test_step_schedule_drops_by_gamma_every_step_size_epochs():
    lrs = lrs_over(train_config(scheduler="step", lr=0.1, step_size=7, gamma=0.1, epochs=15), steps_per_epoch=3)
    assert lrs[0][0] == pytest.approx(0.1)
    assert lrs[7 * 3 - 1][0] == pytest.approx(0.1)
    assert lrs[7 * 3][0] == pytest.approx(0.01)
    assert lrs[14 * 3][0] == pytest.approx(0.001)


def test_cosine_with_warmup_rises_then_decays_to_zero():
    lrs = [g[0] for g in lrs_over(train_config(scheduler="cosine", lr=1.0, epochs=10, warmup_epochs=2), steps_per_epoch=5)]
    assert lrs[0] == pytest.approx(0.01)
    assert max(lrs) == pytest.approx(1.0)
    assert lrs.index(max(lrs)) == 10
    assert lrs[-1] < 0.01


def test_onecycle_peaks_at_the_requested_lr():
    lrs = [g[0] for g in lrs_over(train_config(scheduler="onecycle", lr=0.5, epochs=4), steps_per_epoch=10)]
    assert max(lrs) == pytest.approx(0.5, rel=1e-3)
    assert lrs[0] < 0.05 and lrs[-1] < 0.01


@pytest.mark.parametrize("scheduler", SCHEDULERS.names())
def test_parameter_groups_keep_their_ratio_through_the_schedule(scheduler):
    seen = lrs_over(train_config(scheduler=scheduler, lr=0.1, epochs=3, warmup_epochs=1), 4, lrs=(0.01, 0.1))
    for backbone, head in seen:
        assert backbone == pytest.approx(head / 10)


@pytest.mark.parametrize("scheduler", SCHEDULERS.names())
def test_scheduler_state_round_trips_through_a_weights_only_load(scheduler, tmp_path):
    train = train_config(scheduler=scheduler, lr=0.1, epochs=3, warmup_epochs=1)
    _, groups = model_and_groups()
    optimizer = build_optimizer(groups, train)
    scheduler_ = build_scheduler(optimizer, train, 4)
    for _ in range(5):
        optimizer.step()
        scheduler_.step()
    torch.save(scheduler_.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    _, groups = model_and_groups()
    fresh_optimizer = build_optimizer(groups, train)
    fresh = build_scheduler(fresh_optimizer, train, 4)
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 5
    optimizer.step(), scheduler_.step(), fresh_optimizer.step(), fresh.step()
    assert fresh.get_last_lr() == pytest.approx(scheduler_.get_last_lr())


def conv_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_weight_decay_skips_biases_and_norm_weights_in_every_optimizer(name):
    model = create_model("lenet_bn", num_classes=3)
    train = train_config(optimizer=name, lr=0.1, lr_backbone_mult=0.1, weight_decay=0.05)
    optimizer = build_optimizer(optimizer_groups(model, train), train)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            exempt = p.ndim == 1  # conv/linear biases, BatchNorm weights and biases
            assert group["weight_decay"] == (0.0 if exempt else 0.05), (names[id(p)], group["name"])
            seen.append(names[id(p)])
    assert sorted(seen) == sorted(names.values())  # every parameter, once
    assert [g["name"] for g in optimizer.param_groups] == ["backbone_no_decay", "backbone", "head_no_decay", "head"]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.01, 0.1, 0.1])  # the head's is last


def test_the_no_decay_rule_is_timms():
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=3)
    timm_groups = param_groups_weight_decay(model, 0.05, no_weight_decay_list=model.no_weight_decay())
    timm_exempt = {id(p) for g in timm_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert no_decay_ids(model) == timm_exempt
    assert id(model.pos_embed) in timm_exempt and model.pos_embed.ndim == 3  # exempt by name, not by shape


def test_without_weight_decay_the_groups_stay_whole():
    """Runs saved before the decay split had these groups; their optimizer state still loads."""
    model = create_model("lenet_bn", num_classes=3)
    groups = optimizer_groups(model, train_config(weight_decay=0.0))
    assert [g["name"] for g in groups] == ["backbone", "head"]


def test_an_optimizer_state_with_other_groups_is_a_config_error_naming_the_run(tmp_path):
    model = conv_net()
    saved = build_optimizer(optimizer_groups(model, train_config()), train_config()).state_dict()
    decayed = train_config(weight_decay=0.01)
    optimizer = build_optimizer(optimizer_groups(model, decayed), decayed)
    with pytest.raises(ConfigError, match=f"cannot resume {tmp_path}: .*start a new run"):
        _load_optimizer_state(optimizer, saved, tmp_path)


@pytest.mark.parametrize("name, lr, weight_decay", [("lamb", 0.05, 0.01), ("lion", 0.005, 0.1)])
def test_lamb_and_lion_train_a_small_net(name, lr, weight_decay):
    model = conv_net()
    train = train_config(optimizer=name, lr=lr, weight_decay=weight_decay)
    optimizer = build_optimizer(optimizer_groups(model, train), train)
    assert type(optimizer).__name__ == name.capitalize() and type(optimizer).__module__.startswith("timm.optim")
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=generator), torch.randint(0, 3, (32,), generator=generator)
    losses = train_steps(model, optimizer, x, y, 15)
    assert losses[-1] < losses[0] * 0.5


def train_steps(model, optimizer, x, y, steps: int) -> list[float]:
    """The loss of each of `steps` full-batch optimizer steps on (x, y)."""
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


class OnDevice:
    """Stands in for a parameter on `device`: all step_kernels reads of it."""

    def __init__(self, device: str):
        self.device = torch.device(device)


@pytest.mark.parametrize("devices, fusable, expected", [
    (["cuda"], True, {"fused": True}),
    (["cpu", "cpu"], True, {"fused": True}),
    (["mps"], True, {"foreach": True}),
    (["cuda", "cpu"], True, {"foreach": True}),
    (["cuda"], False, {"foreach": True}),
])
def test_fused_updates_only_where_torch_has_them(devices, fusable, expected):
    groups = [{"params": [OnDevice(devices[0])]}, {"params": [OnDevice(device) for device in devices[1:]]}]
    assert step_kernels(groups, fusable) == expected


@pytest.mark.parametrize("name, kernel", [("sgd", "fused"), ("adam", "fused"), ("adamw", "fused"),
                                          ("rmsprop", "foreach")])
def test_torch_optimizers_on_the_cpu_use_their_fastest_kernels(name, kernel):
    _, groups = model_and_groups()
    optimizer = build_optimizer(groups, train_config(optimizer=name, lr=0.05))
    assert optimizer.param_groups[0][kernel] is True


def test_a_resumed_optimizer_keeps_this_runs_kernels(tmp_path):
    _, groups = model_and_groups()
    saved = build_optimizer(groups, train_config(optimizer="sgd")).state_dict()
    saved["param_groups"][0].update(fused=None, foreach=True)  # as a run on another device saved it
    _, groups = model_and_groups()
    optimizer = build_optimizer(groups, train_config(optimizer="sgd"))
    _load_optimizer_state(optimizer, saved, tmp_path)
    assert (optimizer.param_groups[0]["fused"], optimizer.param_groups[0]["foreach"]) == (True, None)
