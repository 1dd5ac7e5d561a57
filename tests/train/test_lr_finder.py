import copy
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from visionfit.train.lr_finder import SweepSettings, lr_sweep, smoothed, steepest_index, suggest, valley_index


def toy_batches(n_batches: int = 8, batch: int = 32, seed: int = 0) -> list:
    """Two Gaussian blobs in 8 dimensions: separable, so the loss falls over a clear lr range."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        y = torch.randint(0, 2, (batch,), generator=generator)
        x = torch.randn(batch, 8, generator=generator) + 2.0 * (y[:, None] * 2 - 1)
        batches.append((x, y))
    return batches


def net_with_state() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def test_a_sweep_leaves_weights_batchnorm_stats_grads_modes_optimizer_and_rngs_as_they_were():
    net = net_with_state()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x, y = toy_batches(1)[0]
    nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()  # momentum buffers exist, and grads are left on the parameters
    net.eval()
    net[3].train()  # a mixed mode the sweep must not flatten
    before = (copy.deepcopy(net.state_dict()), [p.grad.clone() for p in net.parameters()],
              [m.training for m in net.modules()], copy.deepcopy(optimizer.state_dict()))
    random.seed(3)
    np.random.seed(3)
    rngs = (torch.get_rng_state(), random.getstate(), np.random.get_state())

    sweep = lr_sweep(net, optimizer, toy_batches(), nn.functional.cross_entropy, SweepSettings(steps=20))

    assert len(sweep.lrs) >= 10 and len(set(sweep.raw_losses)) > 1  # it did train
    for key, value in before[0].items():
        assert torch.equal(net.state_dict()[key], value), key  # running_mean/var, num_batches_tracked too
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), before[1]))
    assert [m.training for m in net.modules()] == before[2]
    after = optimizer.state_dict()
    assert after["param_groups"] == before[3]["param_groups"]  # the lr is 0.05 again
    for index, state in before[3]["state"].items():
        assert torch.equal(after["state"][index]["momentum_buffer"], state["momentum_buffer"])
    assert torch.equal(torch.get_rng_state(), rngs[0])
    assert random.getstate() == rngs[1] and np.array_equal(np.random.get_state()[1], rngs[2][1])


def test_a_fresh_optimizer_has_no_state_after_a_sweep():
    net = net_with_state()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    lr_sweep(net, optimizer, toy_batches(), nn.functional.cross_entropy, SweepSettings(steps=12))
    assert optimizer.state_dict()["state"] == {}  # Adam's moments from the sweep are gone


def test_the_state_is_restored_when_the_sweep_fails():
    net = net_with_state()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    weights = copy.deepcopy(net.state_dict())
    calls = []

    def failing_loss(logits, y):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("out of memory")
        return nn.functional.cross_entropy(logits, y)

    with pytest.raises(RuntimeError):
        lr_sweep(net, optimizer, toy_batches(), failing_loss, SweepSettings(steps=20))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())


def test_the_suggestion_lies_where_the_loss_falls_on_a_toy_problem():
    torch.manual_seed(1)
    net = nn.Linear(8, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    start = copy.deepcopy(net.state_dict())
    batches = toy_batches(16)
    sweep = lr_sweep(net, optimizer, batches, nn.functional.cross_entropy, SweepSettings(steps=60))
    lowest = sweep.lrs[int(np.nanargmin(sweep.losses))]
    for lr in sweep.suggestions.values():
        i = sweep.lrs.index(lr)
        assert sweep.losses[i + 1] < sweep.losses[i - 1]  # falling at the suggestion
        assert lr < lowest  # and before the bottom, past which it blows up

    def loss_after_training(lr: float) -> float:
        net.load_state_dict(start)
        trainer = torch.optim.SGD(net.parameters(), lr=lr)
        for x, y in batches * 2:
            trainer.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            trainer.step()
        return sum(nn.functional.cross_entropy(net(x), y).item() for x, y in batches) / len(batches)

    untrained = loss_after_training(0.0)
    assert loss_after_training(sweep.suggestion) < 0.5 * untrained


def test_every_group_keeps_its_ratio_to_the_head_and_the_lr_grows_exponentially():
    net = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD([{"params": net[0].parameters(), "lr": 0.01}, {"params": net[1].parameters(), "lr": 0.1}])
    seen = []

    def loss(logits, y):
        seen.append([group["lr"] for group in optimizer.param_groups])
        return nn.functional.cross_entropy(logits, y)

    sweep = lr_sweep(net, optimizer, toy_batches(2), loss, SweepSettings(start_lr=1e-4, end_lr=1.0, steps=5))
    assert sweep.lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])  # the iterable ran out: next epoch
    assert [backbone / head for backbone, head in seen] == pytest.approx([0.1] * 5)
    assert [group["lr"] for group in optimizer.param_groups] == [0.01, 0.1]


def test_the_sweep_stops_when_the_smoothed_loss_passes_four_times_its_minimum():
    net = nn.Linear(8, 2)
    values = iter([1.0] * 10 + [100.0] * 90)

    def exploding(logits, y):
        return logits.sum() * 0 + next(values)

    sweep = lr_sweep(net, torch.optim.SGD(net.parameters(), lr=0.1), toy_batches(), exploding, SweepSettings(steps=100))
    assert sweep.stopped == "diverged" and len(sweep.lrs) == 11  # one step of 100 lifts the average past 4


def test_a_nan_loss_ends_the_sweep_and_the_suggestion_ignores_it():
    net = nn.Linear(8, 2)
    values = iter([2.0 - 0.01 * i for i in range(60)] + [math.nan] * 40)

    def loss(logits, y):
        return logits.sum() * 0 + next(values)

    sweep = lr_sweep(net, torch.optim.SGD(net.parameters(), lr=0.1), toy_batches(), loss, SweepSettings(steps=100))
    assert math.isnan(sweep.raw_losses[-1]) and len(sweep.lrs) == 61
    assert sweep.suggestion < sweep.lrs[55]


def test_smoothing_is_bias_corrected():
    assert smoothed([3.0] * 5) == pytest.approx([3.0] * 5)  # no pull towards the average's zero start
    assert smoothed([1.0, 3.0])[1] == pytest.approx((0.98 * 0.02 * 1 + 0.02 * 3) / (1 - 0.98**2))


def test_valley_is_half_way_along_the_longest_fall_and_steep_is_the_steepest_drop():
    flat = [2.3, 2.31, 2.29, 2.3]
    fall = [2.2, 2.0, 1.7, 1.0, 0.8, 0.7, 0.65, 0.6]
    rise = [0.7, 1.5, 3.0]
    losses = np.array(flat + fall + rise)
    # The longest falling run is two of the flat points, then the whole fall: 10 points, ending at index 11.
    start, length = 11 - 10, 10
    assert valley_index(losses) == start + int(length / 3) + int(length / 3 / 2)  # fastai's rule
    lrs = np.logspace(-5, 0, len(losses))
    assert steepest_index(lrs, losses) == 6  # 1.7 -> 1.0


def test_suggestions_leave_out_the_noisy_start_and_the_blown_up_end():
    lrs = list(np.logspace(-7, 1, 100))
    losses = [2.0] * 10 + list(np.linspace(2.0, 0.2, 80)) + [50.0] * 10
    suggestions = suggest(lrs, losses, steps=100)
    assert set(suggestions) == {"valley", "steep"}
    assert all(lrs[10] <= lr < lrs[90] for lr in suggestions.values())
    assert suggest(lrs[:12], losses[:12], steps=100) == {}  # too little curve is left
