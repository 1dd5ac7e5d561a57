"""Grad-CAM: the map lies on the evidence, matches pytorch-grad-cam, finds its layer in the
registry's, torchvision's and timm's CNNs, and `eval --cam` draws and writes it."""
import csv

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from torch import nn

import visionfit
from visionfit.cli import main
from visionfit.data.samples import Samples
from visionfit.infer.cam import grad_cam, overlay, target_layer

from ..conftest import pattern_images

SIDE, PATCH = 24, 8  # image side; the bright square's side


def patch_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Grey noise with one square anywhere: class 0 when it is white, 1 when it is black.
    Returns images, labels and each square's top-left corner."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.35, 0.65, size=(n, 1, SIDE, SIDE)).astype(np.float32)
    labels, corners = np.arange(n) % 2, []
    for i, label in enumerate(labels):
        top, left = (int(v) for v in rng.integers(0, SIDE - PATCH + 1, size=2))
        images[i, 0, top:top + PATCH, left:left + PATCH] = 1.0 - label
        corners.append((top, left))
    return torch.from_numpy(images), torch.from_numpy(labels), corners


def test_the_map_peaks_on_the_patch_that_decides_the_class():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    x, y, _ = patch_images(48, seed=0)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(40):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    net.eval()
    x, y, corners = patch_images(20, seed=1)
    assert (net(x).argmax(1) == y).float().mean() >= 0.9
    assert target_layer(net, x[:1]) == "3"  # the last ReLU: the last spatial output before the head's pool
    heat = grad_cam(net, "3", x, y)
    assert heat.shape == (20, SIDE, SIDE) and heat.min() >= 0 and heat.max() <= 1
    inside = 0
    for maps, (top, left) in zip(heat, corners):
        row, col = np.unravel_index(maps.argmax(), maps.shape)
        inside += top <= row < top + PATCH and left <= col < left + PATCH
    assert inside >= 18  # a map blind to the patch would land there about 11% of the time


def _nets():
    lenet = visionfit.create_model("lenet_relu", num_classes=3, in_channels=1)
    return [("lenet_relu", lenet, 1, 28, "features"),
            ("resnet18", torchvision.models.resnet18(num_classes=5), 3, 64, "layer4"),
            ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small(num_classes=5), 3, 64, "features"),
            ("timm:resnet18", timm.create_model("resnet18", num_classes=5), 3, 64, "layer4")]


@pytest.mark.parametrize("name, net, channels, side, layer", _nets(), ids=[n[0] for n in _nets()])
def test_the_layer_is_found_and_the_map_agrees_with_pytorch_grad_cam(name, net, channels, side, layer):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    net.eval()
    x = torch.randn(3, channels, side, side)
    assert target_layer(net, x[:1]) == layer
    classes = [0, 1, 2]
    ours = grad_cam(net, layer, x, torch.tensor(classes))
    theirs = GradCAM(model=net, target_layers=[net.get_submodule(layer)])(
        input_tensor=x, targets=[ClassifierOutputTarget(k) for k in classes])
    assert ours.shape == theirs.shape == (3, side, side)
    assert np.abs(ours - theirs).max() < 1e-3  # cv2's bilinear resize against torch's


def test_overlay_colours_a_grey_image():
    tile = overlay(torch.full((1, 4, 4), 100, dtype=torch.uint8), np.eye(4, dtype=np.float32))
    assert tile.shape == (3, 4, 4) and tile.dtype == torch.uint8
    assert tile[2, 1, 0] > tile[0, 1, 0]  # cold (0): blue over the grey
    assert tile[0, 0, 0] > tile[2, 0, 0]  # hot (1): red


def test_eval_cam_draws_the_panels_and_writes_one_png_per_top_loss(bars_model, tmp_path, capsys):
    images, labels = pattern_images(12, seed=5)
    labels = labels.copy()
    labels[:4] = (labels[:4] + 1) % 3  # four mislabelled images: the top losses
    report = visionfit.evaluate(bars_model, Samples(labels=labels, images=images), out=tmp_path / "eval", cam=True)
    assert report.cam_layer == "features" and len(report.top_losses) >= 4
    rows = list(csv.DictReader(open(tmp_path / "eval" / "cam" / "index.csv")))
    assert [row["image"] for row in rows] == [r["image"] for r in report.top_losses]
    first = Image.open(tmp_path / "eval" / "cam" / rows[0]["file"])
    assert first.size == (16, 16) and first.mode == "RGB"
    assert Image.open(tmp_path / "eval" / "top_losses.png").size[0] > 8 * 100  # eight tiles a row: image, CAM, ...


def test_a_layer_the_model_lacks_is_refused_before_any_work(bars_model, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["eval", str(bars_model), "--data", str(tmp_path / "missing"), "--cam-layer", "layer4"])
    assert exit_code.value.code == 2
    assert "--cam-layer layer4 is not a layer of this model; its last convolutions are" in capsys.readouterr().err
