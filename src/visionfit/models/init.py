"""Weight initialisation schemes, chosen by name with --init.

A scheme is a function applied to every submodule (`model.apply`); it touches convs,
Linears and norm layers and leaves the rest alone.

    apply_init(model, "xavier")      # d2l's init_weights
"""
import torch
from torch import nn

from ..registry import Registry

INIT_SCHEMES: Registry = Registry("init scheme")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_WEIGHTED = (*_CONVS, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)


def apply_init(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise `model`'s weights in place with a named scheme; returns the model."""
    init_module = INIT_SCHEMES.get(scheme)  # an unknown name is a ConfigError listing the known ones
    with torch.no_grad():
        model.apply(init_module)
    return model


def _zero_bias(module: nn.Module) -> None:
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)


def _reset_norm(module: nn.Module) -> None:
    """Norm layers start as the identity: scale 1, shift 0."""
    if isinstance(module, _NORMS) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@INIT_SCHEMES.register("default")
def _default(module: nn.Module) -> None:
    """Keep what the model's constructor chose (PyTorch's, torchvision's or timm's own init)."""


@INIT_SCHEMES.register("xavier")
def _xavier(module: nn.Module) -> None:
    """d2l's init_weights: Glorot-uniform, which keeps sigmoid nets like LeNet out of saturation."""
    if isinstance(module, _WEIGHTED):
        nn.init.xavier_uniform_(module.weight)
        _zero_bias(module)


@INIT_SCHEMES.register("kaiming")
def _kaiming(module: nn.Module) -> None:
    """He-normal on fan-in: keeps activation variance steady through ReLU layers."""
    if isinstance(module, _WEIGHTED):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        _zero_bias(module)


@INIT_SCHEMES.register("kaiming_fan_out")
def _kaiming_fan_out(module: nn.Module) -> None:
    """The seed notes' `_initialize_weights` (torchvision's VGG/ResNet init).

    Convs get normal(0, sqrt(2 / (k * k * out_channels))), which is He-normal on fan-out;
    Linears normal(0, 0.01); norms 1 and 0; biases 0.
    """
    if isinstance(module, _CONVS):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        _zero_bias(module)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        _zero_bias(module)
    _reset_norm(module)


@INIT_SCHEMES.register("normal")
def _normal(module: nn.Module) -> None:
    """Small normal(0, 0.01) weights everywhere: the simplest init, fine for shallow nets."""
    if isinstance(module, _WEIGHTED):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        _zero_bias(module)
    _reset_norm(module)
