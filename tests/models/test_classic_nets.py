"""Every registered classic net builds, runs forward and backward, and keeps d2l's shapes."""
import inspect
import time

import pytest
import torch
from torch import nn

from visionfit.errors import ModelError
from visionfit.models import MODELS, create_model, natural_input

CLASSIC = MODELS.names()
# A size other than the natural one that each net must also take (>= its sensible minimum).
OTHER_SIZE = {
    "mlp": 32, "lenet": 32, "lenet_relu": 32, "lenet_bn": 32, "alexnet_d2l": 96, "vgg11_d2l": 64,
    "nin": 96, "googlenet_d2l": 64, "resnet18_d2l": 32,
}
# Narrower VGG only to keep the suite fast; the code path is the same at ratio 1, which
# test_classic_net_trains_at_natural_size covers once.
FAST_ARGS = {"vgg11_d2l": {"ratio": 8}}


def _forward_backward(model: nn.Module, in_channels: int, size: int, num_classes: int) -> None:
    torch.manual_seed(0)
    out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, num_classes)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


def test_every_classic_net_has_another_size():
    assert set(OTHER_SIZE) == set(CLASSIC)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", CLASSIC)
def test_classic_net_trains_at_natural_size(name, in_channels):
    _, size = natural_input(name)
    model = create_model(name, num_classes=7, in_channels=in_channels)
    _forward_backward(model, in_channels, size, num_classes=7)


@pytest.mark.parametrize("name", CLASSIC)
def test_classic_net_trains_at_another_size(name):
    size = OTHER_SIZE[name]
    model = create_model(name, num_classes=5, in_channels=3, input_size=size, **FAST_ARGS.get(name, {}))
    _forward_backward(model, 3, size, num_classes=5)


@pytest.mark.parametrize("name", CLASSIC)
def test_registered_natural_input_matches_factory_defaults(name):
    params = inspect.signature(MODELS.get(name)).parameters
    assert natural_input(name) == (params["in_channels"].default, params["input_size"].default)
    assert natural_input(name)[0] == 1  # d2l's nets are built for Fashion-MNIST


@pytest.mark.parametrize("name", CLASSIC)
def test_classic_net_splits_into_features_and_head(name):
    model = create_model(name, num_classes=4, in_channels=1, **FAST_ARGS.get(name, {})).eval()
    _, size = natural_input(name)
    x = torch.randn(1, 1, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)))
        model.reset_classifier(3)
        assert model(x).shape == (1, 3)


@pytest.mark.parametrize(
    "name, width, params",
    [
        ("lenet", 16 * 5 * 5, 61_706),
        ("lenet_bn", 16 * 4 * 4, None),
        ("alexnet_d2l", 6400, 46_764_746),
        ("vgg11_d2l", 512 * 7 * 7, None),
    ],
)
def test_flatten_width_matches_d2l_at_natural_size(name, width, params):
    model = create_model(name)
    first_linear = next(m for m in model.head if isinstance(m, nn.Linear))
    assert first_linear.in_features == width
    if params is not None:
        assert sum(p.numel() for p in model.parameters()) == params


def test_lenet_options_pick_layers():
    model = create_model("lenet", act="relu", pool="max")
    kinds = {type(m) for m in model.modules()}
    assert nn.ReLU in kinds and nn.MaxPool2d in kinds
    assert nn.Sigmoid not in kinds and nn.AvgPool2d not in kinds


def test_lenet_bn_normalises_every_conv_and_hidden_layer():
    model = create_model("lenet_bn")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 2
    assert [m.num_features for m in model.head if isinstance(m, nn.BatchNorm1d)] == [120, 84]


def test_dry_run_leaves_batchnorm_statistics_untouched():
    model = create_model("lenet_bn")
    assert model.training
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert bn.num_batches_tracked.item() == 0
        assert torch.count_nonzero(bn.running_mean) == 0


def test_the_dry_run_allocates_nothing_at_the_largest_size():
    # A real dry run of alexnet at 4096 px would allocate ~6 GB of activations; on meta it is instant.
    started = time.perf_counter()
    with torch.device("meta"):
        model = create_model("alexnet_d2l", input_size=4096)
    assert model.head[1].in_features == 256 * 126 * 126 and time.perf_counter() - started < 1


def test_vgg_ratio_divides_channels():
    model = create_model("vgg11_d2l", ratio=4)
    convs = [m.out_channels for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [16, 32, 64, 64, 128, 128, 128, 128]


def test_saved_weights_load_into_a_rebuild_with_the_same_args():
    trained = create_model("lenet", num_classes=3, input_size=36)
    rebuilt = create_model("lenet", num_classes=3, input_size=36)
    rebuilt.load_state_dict(trained.state_dict())


@pytest.mark.parametrize(
    "name, args, match",
    [
        ("lenet", {"act": "tanh"}, "act must be one of sigmoid, relu"),
        ("lenet", {"pool": "median"}, "pool must be one of avg, max"),
        ("lenet", {"dropout": 0.5}, "unexpected keyword argument 'dropout'"),
        ("alexnet_d2l", {"input_size": 48}, "alexnet_d2l cannot take 48 x 48 images .*use a larger --image-size"),
        ("nin", {"input_size": 32}, "nin cannot take 32 x 32 images .*use a larger --image-size"),
        ("lenet", {"input_size": 100_000}, r"lenet cannot take 100000 x 100000 images \(at most 4096 px a side\); "
                                           "use a smaller --image-size"),
        ("vgg11_d2l", {"ratio": 0}, "ratio must be a whole number"),
    ],
)
def test_bad_classic_args_are_model_errors(name, args, match):
    with pytest.raises(ModelError, match=match):
        create_model(name, **args)
