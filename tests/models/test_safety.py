"""What a file's description of a model may build: names, arguments, and shapes checked on the meta device."""
import time

import pytest
import torch
from torch import nn

from visionfit.checkpoints import load_model, save_model_file
from visionfit.errors import ModelError
from visionfit.models import MODELS, create_model
from visionfit.models.safety import (build_described, build_fitting, check_architecture, check_model_args,
                                     check_tensors_fit)

from ..conftest import model_meta

LIBRARY_SAMPLE = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "vit_b_16", "swin_t", "convnext_tiny",
                  "timm:efficientnet_lite0", "timm:resnet18", "timm:vit_tiny_patch16_224", "timm:convnext_atto"]


@pytest.mark.parametrize("name", MODELS.names() + LIBRARY_SAMPLE)
def test_builds_on_the_meta_device(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=5, in_channels=3)
    assert all(tensor.is_meta for tensor in model.state_dict().values())


@pytest.mark.parametrize("name", ["lenet_bn", "mobilenet_v3_small", "timm:efficientnet_lite0"])
def test_the_meta_skeleton_has_the_real_models_shapes(name):
    with torch.device("meta"):
        skeleton = create_model(name, num_classes=5)
    real = create_model(name, num_classes=5)
    assert {k: v.shape for k, v in skeleton.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}


def test_a_constructor_that_needs_tensor_values_is_built_for_real_and_still_checked(tmp_path):
    # torchvision's RegNets compute their stage widths with tensors: .tolist() has no meta value.
    net = create_model("regnet_x_400mf", num_classes=2).eval()
    save_model_file(tmp_path / "m.safetensors", net, model_meta("regnet_x_400mf", ["a", "b"], 3, 224))
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(load_model(tmp_path / "m.safetensors")(x), net(x))
    with pytest.raises(ModelError, match=r"fc.weight is \(2, 400\) in the file, \(3, 400\) in the architecture"):
        build_described("regnet_x_400mf", 3, 3, {}, {k: v.shape for k, v in net.state_dict().items()}, "m")


def test_build_fitting_builds_only_what_fits():
    calls = []

    def build():
        calls.append(torch.empty(0).device.type)
        return nn.Linear(4, 2)

    with pytest.raises(ModelError, match=r"tensors of f do not fit architecture 'x': e.g. weight is \(2, 5\) in the f"):
        build_fitting(build, {"weight": (2, 5), "bias": (2,)}, "f", "x")
    assert calls == ["meta"]
    assert build_fitting(build, {"weight": (2, 4), "bias": (2,)}, "f", "x").weight.device.type == "cpu"
    assert calls == ["meta", "meta", "cpu"]


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.encode, self.decode = nn.Linear(3, 3), nn.Linear(3, 3)
        self.decode.weight = self.encode.weight


@pytest.mark.parametrize("stored", ["encode.weight", "decode.weight"])
def test_tied_weights_are_stored_under_any_one_of_their_names(stored):
    check_tensors_fit(Tied(), {stored: (3, 3), "encode.bias": (3,), "decode.bias": (3,)}, "f", "tied")


def test_tied_weights_stored_under_no_name_are_missing():
    with pytest.raises(ModelError, match=r"encode.weight \(3, 3\) is in the architecture, not in the file"):
        check_tensors_fit(Tied(), {"encode.bias": (3,), "decode.bias": (3,)}, "f", "tied")


@pytest.mark.parametrize("name", ["lenet", "resnet18", "timm:efficientnet_lite0"])
def test_library_names_need_no_trust(name):
    check_architecture(name, "f", trust_code=False)


def test_custom_names_need_trust_and_are_not_imported_to_say_so():
    with pytest.raises(ModelError, match="f names its architecture 'no_such_module:Net', code outside visionfit"):
        check_architecture("no_such_module:Net", "f")
    check_architecture("no_such_module:Net", "f", trust_code=True)  # refusing or allowing imports nothing


@pytest.mark.parametrize("name", [None, 3, "", "   ", "n" * 201])
def test_what_is_not_a_name_is_refused(name):
    with pytest.raises(ModelError, match="which is not a model name"):
        check_architecture(name, "f", trust_code=True)


@pytest.mark.parametrize("architecture, args", [
    ("lenet", {"act": "relu", "pool": "max", "input_size": 32}),
    ("resnet18", {"zero_init_residual": True, "replace_stride_with_dilation": [False, False, True]}),
    ("timm:efficientnet_lite0", {"drop_rate": 0.2, "drop_path_rate": 0.1, "global_pool": "avg", "img_size": None}),
])
def test_arguments_the_builders_take_pass(architecture, args):
    assert check_model_args(architecture, args, "f") == args


@pytest.mark.parametrize("key", ["pretrained_cfg", "pretrained_cfg_overlay", "pretrained_strict", "checkpoint_path",
                                 "cache_dir", "progress", "features_only", "my_path", "weights_url", "hub_dir",
                                 "init_file", "pretrained", "weights", "num_classes", "in_chans"])
@pytest.mark.parametrize("architecture", ["resnet18", "timm:resnet18"])
def test_arguments_that_open_files_or_download_are_refused(architecture, key):
    with pytest.raises(ModelError, match=f"model_args (may not set )?'{key}'"):
        check_model_args(architecture, {key: "x"}, "f")


@pytest.mark.parametrize("value, problem", [
    (70_000, "depth is a whole number from -65536 to 65536"),
    (float("inf"), "numbers are finite"),
    ("x" * 65, "text has at most 64 characters"),
    (list(range(17)), "a list has at most 16 items"),
    ([1, [2]], "values are numbers, text, true/false or null"),
    ({"a": 1}, "values are numbers, text, true/false or null"),
], ids=["big-int", "inf", "long-text", "long-list", "nested-list", "object"])
def test_values_out_of_bounds_are_refused(value, problem):
    with pytest.raises(ModelError, match=f"depth=.* is out of bounds \\({problem}"):
        check_model_args("timm:resnet18", {"depth": value}, "f")


def test_a_file_describing_a_huge_model_is_refused_before_any_allocation():
    # 100,000 classes at 4096 px: lenet's head alone would be 2 billion weights (8 GB).
    shapes = {k: v.shape for k, v in create_model("lenet", num_classes=3).state_dict().items()}
    started = time.perf_counter()
    with pytest.raises(ModelError, match="do not fit architecture 'lenet'"):
        build_described("lenet", 100_000, 16, {"input_size": 4096}, shapes, "f")
    assert time.perf_counter() - started < 0.5
