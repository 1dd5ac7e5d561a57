"""Head replacement and backbone units across libraries: torchvision, timm and classic nets."""
import pytest
import torch
from torch import nn

from visionfit.models import create_model
from visionfit.models.transfer import backbone_units, find_head, head_classes, replace_head

# name -> (where its head is, input side that keeps the test fast)
MODELS = {
    "resnet18": ("fc", 32),
    "vgg11": ("classifier.6", 32),
    "mobilenet_v3_small": ("classifier.3", 32),
    "squeezenet1_0": ("classifier.1", 64),
    "timm:efficientnet_lite0": ("classifier", 32),
    "lenet": ("head.5", 28),
    "nin": ("head.0", 96),
}


@pytest.mark.parametrize("name", MODELS)
def test_replace_head_gives_the_new_class_count_and_keeps_the_backbone(name):
    where, side = MODELS[name]
    in_channels = 1 if name in ("lenet", "nin") else 3
    model = create_model(name, num_classes=1000, in_channels=in_channels)
    assert find_head(model)[0] == where
    backbone_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(where + ".")}
    new_head = replace_head(model, 5, init="normal")

    assert find_head(model) == (where, new_head) and head_classes(new_head) == 5
    after = model.state_dict()
    for key, value in backbone_before.items():
        assert torch.equal(after[key], value), key
    model.eval()
    assert model(torch.randn(2, in_channels, side, side)).shape == (2, 5)


def test_the_new_head_is_initialised_by_the_chosen_scheme():
    model = create_model("resnet18", num_classes=1000)
    torch.manual_seed(0)
    head = replace_head(model, 300, init="normal")  # normal(0, 0.01) weights, zero bias
    assert model.fc is head and head.bias.abs().max() == 0
    assert 0.009 < head.weight.std().item() < 0.011
    torch.manual_seed(0)
    default = replace_head(create_model("resnet18", num_classes=1000), 300)  # PyTorch's Linear init
    assert default.weight.abs().max() <= 1 / 512**0.5 + 1e-6 and default.weight.std() > 0.02


def test_a_head_of_the_right_size_is_kept():
    model = create_model("resnet18", num_classes=7)
    assert replace_head(model, 7) is model.fc


def test_generic_fallback_finds_the_last_linear():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 8), nn.Linear(8, 3))
    assert find_head(model)[0] == "4"
    replace_head(model, 6)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 6)


@pytest.mark.parametrize("name, first_units", [
    ("resnet18", ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]),
    ("timm:efficientnet_lite0", ["conv_stem", "bn1", "blocks.0", "blocks.1"]),
    ("lenet_bn", ["features.0", "features.1", "features.4"]),
])
def test_backbone_units_run_in_forward_order_without_the_head(name, first_units):
    names = [unit for unit, _ in backbone_units(create_model(name, num_classes=3))]
    assert names[: len(first_units)] == first_units
    assert find_head(create_model(name, num_classes=3))[0] not in names
