"""Grad-CAM (Selvaraju et al., 2017): where in an image a CNN found the evidence for a class.

    layer = target_layer(classifier.model, example)        # or the --cam-layer name the user gives
    heat = grad_cam(classifier.model, layer, x_nchw, classes)   # N x H x W in 0..1, at the input's size
    tiles = overlay(pixels_uint8, heat)                      # the heat map over the image, uint8 3 x H x W

The layer's activations A (N x C x h x w) and the gradient of the class logit with respect
to them give each channel a weight, the gradient's spatial mean; the map is
relu(sum_c weight_c * A_c), scaled to 0..1 per image and resized bilinearly to the input,
as pytorch-grad-cam's GradCAM computes it (tests/infer/test_cam.py holds the two together).
"""
import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

HEAT_ALPHA = 0.5  # weight of the heat map over the image in an overlay
_HEAD_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)  # the head's pooling: its output is no longer "where"


def target_layer(model: nn.Module, example: torch.Tensor) -> str:
    """The name of the layer Grad-CAM reads: timm's last feature stage when the model lists its
    stages (feature_info), else the last module to produce a spatial map (N x C x h x w, h*w > 1)
    in one forward pass of `example`: a ResNet's layer4, a VGG's features, a LeNet's last pool."""
    feature_info = getattr(model, "feature_info", None)
    if isinstance(feature_info, list) and feature_info and isinstance(feature_info[-1], dict):
        name = feature_info[-1].get("module")
        if isinstance(name, str) and _has_submodule(model, name):
            return name
    finished = []
    hooks = [module.register_forward_hook(lambda m, i, out, name=name: finished.append((name, m, out)))
             for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    spatial = [name for name, module, out in finished if _is_spatial(out) and not isinstance(module, _HEAD_POOLS)]
    if not spatial:
        raise ConfigError("no layer of this model produces a spatial map for Grad-CAM to read; name one with "
                          "--cam-layer (e.g. features.3; `visionfit summary MODEL` lists the layers)")
    return spatial[-1]


def _is_spatial(output) -> bool:
    return isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1


def _has_submodule(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def check_layer(model: nn.Module, name: str) -> str:
    """`name` when it is one of the model's modules, else a ConfigError naming --cam-layer."""
    if not _has_submodule(model, name):
        convolutions = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][-3:]
        raise ConfigError(f"--cam-layer {name} is not a layer of this model; its last convolutions are "
                          f"{', '.join(convolutions) or 'none'} (`visionfit summary MODEL` lists them all)")
    return name


def grad_cam(model: nn.Module, layer: str, x_nchw: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
    """float32 N x H x W maps in 0..1: where `layer`'s evidence for `classes` (one per image) lies."""
    captured = {}

    def keep(module, inputs, output):
        captured["activations"] = output

    hook = model.get_submodule(layer).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = x_nchw.detach().clone().requires_grad_(True)  # a graph even when the weights are frozen
            logits = model(x)
            activations = captured["activations"]
            score = logits.gather(1, classes.to(logits.device).view(-1, 1)).sum()
            gradients, = torch.autograd.grad(score, activations)
    finally:
        hook.remove()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = _scaled(torch.relu((weights * activations.detach()).sum(dim=1, keepdim=True)).float())
    # Scaled before and after the resize, as pytorch-grad-cam does: the same maps, tiny ones included.
    resized = nn.functional.interpolate(cam, size=x_nchw.shape[-2:], mode="bilinear", align_corners=False)
    return _scaled(resized)[:, 0].cpu().numpy()


def _scaled(maps: torch.Tensor) -> torch.Tensor:
    """N x 1 x h x w maps shifted and scaled to 0..1 each (a flat map stays 0)."""
    low = maps.amin(dim=(1, 2, 3), keepdim=True)
    return (maps - low) / ((maps - low).amax(dim=(1, 2, 3), keepdim=True) + 1e-7)


def overlay(pixels: torch.Tensor, heat: np.ndarray) -> torch.Tensor:
    """uint8 3 x H x W: the heat map (jet colours) blended over the uint8 C x H x W image."""
    from matplotlib import colormaps

    image = pixels.float().expand(3, -1, -1) if pixels.shape[0] == 1 else pixels.float()
    colours = torch.from_numpy(colormaps["jet"](heat)[..., :3]).permute(2, 0, 1).float() * 255
    return ((1 - HEAT_ALPHA) * image + HEAT_ALPHA * colours).round().clamp(0, 255).to(torch.uint8)
