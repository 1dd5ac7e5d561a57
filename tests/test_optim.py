import pytest
import torch

from visionfit.train.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
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
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
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
