"""Name resolution: torchvision, timm and `module:Class` models, unknown names, natural inputs."""
import ast
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import visionfit.models
from visionfit.errors import ModelError
from visionfit.models import create_model, list_models, model_args_for_input, natural_input, register_model

SMALL = 64  # px: every sampled model pools globally, so a small input keeps the suite fast


def _forward_backward(model: nn.Module, in_channels: int, num_classes: int) -> None:
    torch.manual_seed(0)
    out = model(torch.randn(2, in_channels, SMALL, SMALL))
    assert isinstance(out, torch.Tensor) and out.shape == (2, num_classes)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_0", "googlenet"]
)
def test_torchvision_model_trains(name):
    _forward_backward(create_model(name, num_classes=7), 3, num_classes=7)


@pytest.mark.parametrize("name", ["timm:efficientnet_lite0", "timm:resnet18", "timm:mobilenetv3_small_050"])
def test_timm_model_trains(name):
    _forward_backward(create_model(name, num_classes=7), 3, num_classes=7)


def test_torchvision_grey_input_replaces_first_conv_only():
    model = create_model("resnet18", num_classes=7, in_channels=1)
    conv = model.conv1
    settings = (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    assert settings == (1, 64, (7, 7), (2, 2), (3, 3))
    assert conv.bias is None
    assert model.layer1[0].conv1.in_channels == 64
    _forward_backward(model, 1, num_classes=7)


def test_timm_grey_input():
    _forward_backward(create_model("timm:resnet18", num_classes=7, in_channels=1), 1, num_classes=7)


def test_model_args_reach_torchvision():
    model = create_model("mobilenet_v3_small", num_classes=3, dropout=0.0)
    assert model.classifier[2].p == 0.0


def test_unknown_name_suggests_close_names_and_other_forms():
    with pytest.raises(ModelError) as info:
        create_model("resnet81")
    message = str(info.value)
    assert "Did you mean resnet18" in message
    assert "timm:<name>" in message and "package.module:ClassName" in message


def test_unknown_timm_name_suggests_timm_names():
    with pytest.raises(ModelError, match="timm:resnet18"):
        create_model("timm:resnet81")


def test_bad_torchvision_args_are_model_errors():
    with pytest.raises(ModelError, match="unexpected keyword argument 'depth'"):
        create_model("resnet18", depth=3)


def test_out_of_range_values_are_model_errors():
    with pytest.raises(ModelError, match=r"model 'mobilenet_v3_small' cannot be built with .*dropout=2.0: .*probability"):
        create_model("mobilenet_v3_small", dropout=2.0)


@pytest.mark.parametrize("name, classes", [("lenet", 10), ("resnet18_d2l", 10), ("resnet18", 1000),
                                           ("timm:mobilenetv3_small_050", 1000)])
def test_default_classes_are_the_architectures_own(name, classes):
    from visionfit.models.transfer import model_classes

    assert model_classes(create_model(name)) == classes


@pytest.mark.parametrize("name, size, given, expected", [
    ("lenet", 32, {}, {"input_size": 32}),
    ("lenet", 28, {}, {}),  # its natural side
    ("lenet", 32, {"input_size": 40, "act": "relu"}, {"input_size": 40, "act": "relu"}),
    ("alexnet_d2l", 96, {}, {"input_size": 96}),
    ("resnet18", 64, {}, {}),  # pools globally
    ("timm:resnet18", 64, {"drop_rate": 0.1}, {"drop_rate": 0.1}),
])
def test_classic_nets_are_sized_for_their_input(name, size, given, expected):
    args = model_args_for_input(name, size, given)
    assert args == expected
    side = args.get("input_size", size)
    assert create_model(name, num_classes=3, **args)(torch.zeros(1, natural_input(name)[0], side, side)).shape == (1, 3)


@pytest.mark.parametrize("module", sorted(Path(visionfit.models.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_models_import_timm_and_torchvision_only_when_used(module):
    # Together they take seconds to import, and `import visionfit.models` (a classic net) needs neither.
    top_level = [node for node in ast.parse(module.read_text()).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    imported = {alias.name for node in top_level if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in top_level if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] in ("timm", "torchvision")}


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("lenet", input_size=28)(lambda **kwargs: nn.Identity())


@pytest.mark.parametrize(
    "name, expected",
    [("lenet", (1, 28)), ("googlenet_d2l", (1, 96)), ("resnet18", (3, 224)), ("inception_v3", (3, 299)),
     ("efficientnet_b1", (3, 240)), ("vit_h_14", (3, 224)), ("timm:efficientnet_lite0", (3, 224))],
)
def test_natural_input(name, expected):
    assert natural_input(name) == expected


def test_list_models_names_every_library():
    listed = list_models()
    assert "lenet" in listed["classic"] and "resnet18" in listed["torchvision"]
    assert "efficientnet_lite0" in listed["timm"]
    assert "fasterrcnn_resnet50_fpn" not in listed["torchvision"]  # classification only


# --- package.module:ClassName ----------------------------------------------------------------


@pytest.fixture
def custom_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_custom_class_gets_classes_and_channels(custom_on_path):
    model = create_model("custom_net:TinyNet", num_classes=4, in_channels=1, width=6)
    assert model.fc.out_features == 4 and model.features[0].in_channels == 1
    assert model.features[0].out_channels == 6
    _forward_backward(model, 1, num_classes=4)


def test_custom_factory_function(custom_on_path):
    assert create_model("custom_net:tiny_factory", num_classes=2).fc.out_features == 2


def test_custom_natural_input_reads_class_attributes(custom_on_path):
    assert natural_input("custom_net:TinyNet") == (3, 32)  # in_channels from the constructor's default
    assert natural_input("custom_net:GreyOnly") == (1, 224)


def test_custom_without_in_channels_accepts_only_its_own(custom_on_path):
    assert create_model("custom_net:GreyOnly", num_classes=3, in_channels=1) is not None
    with pytest.raises(ModelError, match="takes no in_channels argument"):
        create_model("custom_net:GreyOnly", num_classes=3, in_channels=3)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("custom_net:NoClasses", "does not take a num_classes argument"),
        ("custom_net:Missing", "has no class or function 'Missing'"),
        ("custom_net:not_a_module", "returned a str, not a torch.nn.Module"),
        ("no_such_package.nets:Net", "cannot import 'no_such_package.nets'"),
        ("custom_net:TinyNet:extra", "should look like package.module:ClassName"),
        (":TinyNet", "should look like package.module:ClassName"),
    ],
)
def test_custom_errors(custom_on_path, spec, match):
    with pytest.raises(ModelError, match=match):
        create_model(spec)


def test_custom_module_is_found_in_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "visionfit_cwd_net.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Linear):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__(4, num_classes)\n"
    )
    monkeypatch.chdir(tmp_path)
    try:
        assert create_model("visionfit_cwd_net:Net", num_classes=2).out_features == 2
    finally:
        sys.modules.pop("visionfit_cwd_net", None)
    assert str(tmp_path) not in sys.path
