"""Each init scheme gives the distribution it promises, and unknown names are config errors."""
import math

import pytest
import torch
from torch import nn

from visionfit.errors import ConfigError
from visionfit.models import INIT_SCHEMES, apply_init, create_model

CONV_IN, CONV_OUT, K = 16, 64, 3
LIN_IN, LIN_OUT = 400, 300


def _model() -> nn.Sequential:
    """Big enough layers that sample statistics pin the distribution; biases and BN made non-default."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(CONV_IN, CONV_OUT, K), nn.BatchNorm2d(CONV_OUT), nn.Flatten(), nn.Linear(LIN_IN, LIN_OUT)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    return model


def _std(t: torch.Tensor) -> float:
    return t.std().item()


def _assert_zero_biases(model: nn.Sequential) -> None:
    assert torch.count_nonzero(model[0].bias) == 0 and torch.count_nonzero(model[3].bias) == 0


def _assert_bn_identity(model: nn.Sequential) -> None:
    assert torch.all(model[1].weight == 1) and torch.all(model[1].bias == 0)


def test_default_leaves_weights_alone():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_init(model, "default")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_xavier_is_glorot_uniform():
    model = apply_init(_model(), "xavier")
    bound = math.sqrt(6 / (LIN_IN + LIN_OUT))
    weight = model[3].weight
    assert weight.abs().max() <= bound
    assert _std(weight) == pytest.approx(bound / math.sqrt(3), rel=0.03)
    _assert_zero_biases(model)


def test_kaiming_is_he_normal_on_fan_in():
    model = apply_init(_model(), "kaiming")
    assert _std(model[0].weight) == pytest.approx(math.sqrt(2 / (CONV_IN * K * K)), rel=0.05)
    assert _std(model[3].weight) == pytest.approx(math.sqrt(2 / LIN_IN), rel=0.03)
    _assert_zero_biases(model)


def test_kaiming_fan_out_is_the_seed_initialize_weights():
    model = apply_init(_model(), "kaiming_fan_out")
    assert _std(model[0].weight) == pytest.approx(math.sqrt(2 / (K * K * CONV_OUT)), rel=0.05)
    assert _std(model[3].weight) == pytest.approx(0.01, rel=0.03)
    _assert_zero_biases(model)
    _assert_bn_identity(model)


def test_normal_is_small_gaussian():
    model = apply_init(_model(), "normal")
    assert _std(model[0].weight) == pytest.approx(0.01, rel=0.05)
    assert _std(model[3].weight) == pytest.approx(0.01, rel=0.03)
    assert abs(model[3].weight.mean().item()) < 0.001
    _assert_zero_biases(model)
    _assert_bn_identity(model)


@pytest.mark.parametrize("scheme", INIT_SCHEMES.names())
def test_every_scheme_keeps_a_classic_net_trainable(scheme):
    model = apply_init(create_model("lenet_bn", num_classes=3), scheme)
    out = model(torch.randn(2, 1, 28, 28))
    assert torch.isfinite(out).all()


def test_unknown_scheme_is_a_config_error_with_suggestion():
    with pytest.raises(ConfigError, match="unknown init scheme 'xavir'. Did you mean xavier"):
        apply_init(_model(), "xavir")
