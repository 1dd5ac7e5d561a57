"""Models from other libraries: torchvision, timm, and the user's own `module:Class`.

Each is built with random weights, `num_classes` outputs and the asked-for input channels,
so the rest of visionfit treats them like the classic nets.
"""
import contextlib
import difflib
import functools
import importlib
import inspect
import os
import sys
from typing import Any, Callable, Iterator

import timm
import torch
import torchvision
from timm.models import adapt_input_conv
from torch import nn

from ..errors import ModelError

# Aux heads make a training-mode forward return a tuple; the trainer wants plain logits.
# init_weights=True keeps torchvision's documented init and silences its FutureWarning.
_TORCHVISION_DEFAULTS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
_DEFAULT_INPUT = (3, 224)


def call_builder(label: str, builder: Callable, *args, **kwargs) -> nn.Module:
    """Call a model constructor, turning a wrong keyword into an error the user can act on."""
    try:
        return builder(*args, **kwargs)
    except TypeError as err:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ModelError(f"model '{label}' cannot be built with {given}: {err}. Check --model-args.") from err


# --- torchvision -------------------------------------------------------------------------


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    # module=torchvision.models keeps to classification; detection/video live in submodules.
    return tuple(torchvision.models.list_models(module=torchvision.models))


def torchvision_names() -> list[str]:
    return list(_torchvision_names())


def create_torchvision(name: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    """A torchvision classification model; a first conv for `in_channels` when that is not 3."""
    args = {**_TORCHVISION_DEFAULTS.get(name, {}), **model_args}
    model = call_builder(name, torchvision.models.get_model, name, weights=None, num_classes=num_classes, **args)
    if in_channels not in (None, 3):
        replace_first_conv(model, in_channels)
    return model


def torchvision_natural_input(name: str) -> tuple[int, int]:
    """3 x the crop size of the default weights (299 for inception_v3, 240 for efficientnet_b1...)."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    crop = weights.transforms.keywords.get("crop_size", _DEFAULT_INPUT[1])
    # Weights that pin the input (min_size == crop: ViT-H at 518, Swin-V2 at 256) were trained
    # at a size the weights=None constructor does not build for; that one expects 224.
    if tuple(weights.meta.get("min_size", ())) == (crop, crop):
        crop = _DEFAULT_INPUT[1]
    return 3, crop


def replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the stem's Conv2d for one taking `in_channels` planes, other settings unchanged."""
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
    )
    with torch.no_grad():
        # timm's channel adaptation (sum for grey, tile and rescale otherwise) keeps the
        # weight scale the model's own init chose, rather than nn.Conv2d's default.
        new.weight.copy_(adapt_input_conv(in_channels, conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


# --- timm --------------------------------------------------------------------------------


def timm_names() -> list[str]:
    return timm.list_models()


def _check_timm(name: str) -> None:
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise ModelError(f"unknown timm model '{name}'.{hint} `visionfit models` lists timm's names.")


def create_timm(name: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    _check_timm(name)
    channels = timm_natural_input(name)[0] if in_channels is None else in_channels
    return call_builder(
        f"timm:{name}", timm.create_model, name,
        pretrained=False, num_classes=num_classes, in_chans=channels, **model_args,
    )


def timm_natural_input(name: str) -> tuple[int, int]:
    """(channels, height) from timm's pretrained config; 3 x 224 for a model without one."""
    _check_timm(name)
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        return _DEFAULT_INPUT
    channels, height, _ = cfg.input_size
    return channels, height


# --- package.module:ClassName --------------------------------------------------------------


@contextlib.contextmanager
def _cwd_on_path() -> Iterator[None]:
    # `python -m` puts the working folder on sys.path; the `visionfit` console script does
    # not, yet "mynet:Net" should find ./mynet.py either way. Appended, so it never shadows.
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)


def _import_builder(spec: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ModelError(f"model '{spec}' should look like package.module:ClassName")
    try:
        with _cwd_on_path():
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelError(
            f"cannot import '{module_name}' for model '{spec}': {err}. "
            "Install it, add its folder to PYTHONPATH, or run from the folder that holds it."
        ) from err
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ModelError(f"module '{module_name}' has no class or function '{attr}' (model '{spec}')")
    return builder


def _parameters(builder: Callable) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(builder).parameters)
    except (TypeError, ValueError):  # a builtin or C extension without a signature
        return {}


def _natural_value(builder: Callable, name: str, fallback: int) -> int:
    """A class attribute, else the constructor's default, else the fallback."""
    value = getattr(builder, name, None)
    if isinstance(value, int):
        return value
    default = _parameters(builder).get(name, None)
    if default is not None and isinstance(default.default, int):
        return default.default
    return fallback


def custom_natural_input(spec: str) -> tuple[int, int]:
    builder = _import_builder(spec)
    channels, size = _DEFAULT_INPUT
    return _natural_value(builder, "in_channels", channels), _natural_value(builder, "input_size", size)


def create_custom(spec: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    """The user's class or factory, given num_classes (and in_channels when it takes it)."""
    builder = _import_builder(spec)
    params = _parameters(builder)
    if "num_classes" not in params:
        raise ModelError(f"'{spec}' does not take a num_classes argument; add one so visionfit can size its output")
    kwargs: dict[str, Any] = {"num_classes": num_classes, **model_args}
    if in_channels is not None:
        if "in_channels" in params:
            kwargs["in_channels"] = in_channels
        elif in_channels != _natural_value(builder, "in_channels", _DEFAULT_INPUT[0]):
            raise ModelError(
                f"'{spec}' takes no in_channels argument, so it cannot read {in_channels}-channel images; add one"
            )
    model = call_builder(spec, builder, **kwargs)
    if not isinstance(model, nn.Module):
        raise ModelError(f"'{spec}' returned a {type(model).__name__}, not a torch.nn.Module")
    return model
