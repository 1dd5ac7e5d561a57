"""Models from other libraries: torchvision, timm, and the user's own `module:Class`.

Each is built with random weights, `num_classes` outputs and the asked-for input channels,
so the rest of visionfit treats them like the classic nets. timm and torchvision are
imported on first use: together they take seconds to import, and a classic net needs neither.
"""
import contextlib
import difflib
import functools
import importlib
import inspect
import os
import sys
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..errors import ModelError

# Aux heads make a training-mode forward return a tuple; the trainer wants plain logits.
# init_weights=True keeps torchvision's documented init and silences its FutureWarning.
_TORCHVISION_DEFAULTS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
_DEFAULT_INPUT = (3, 224)


# What a constructor raises for arguments it cannot work with: a wrong keyword (TypeError), a
# value out of range (ValueError, AssertionError, ZeroDivisionError), a model too big to allocate
# (RuntimeError).
_BAD_ARGUMENTS = (TypeError, ValueError, AssertionError, ArithmeticError, RuntimeError)


def call_builder(label: str, builder: Callable, *args, **kwargs) -> nn.Module:
    """Call a model constructor, turning arguments it cannot work with into an error the user can act on."""
    try:
        return builder(*args, **kwargs)
    except NotImplementedError:
        raise  # an operation the meta device lacks (see safety.py), not a bad argument
    except _BAD_ARGUMENTS as err:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelError(f"model '{label}' cannot be built with {given}: {reason}. Check --model-args.") from err


# --- torchvision -------------------------------------------------------------------------


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    import torchvision

    # module=torchvision.models keeps to classification; detection/video live in submodules.
    return tuple(torchvision.models.list_models(module=torchvision.models))


def torchvision_names() -> list[str]:
    return list(_torchvision_names())


def create_torchvision(name: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    """A torchvision classification model; a first conv for `in_channels` when that is not 3."""
    import torchvision

    args = {**_TORCHVISION_DEFAULTS.get(name, {}), **model_args}
    model = call_builder(name, torchvision.models.get_model, name, weights=None, num_classes=num_classes, **args)
    if in_channels not in (None, 3):
        replace_first_conv(model, in_channels)
    return model


def torchvision_builder(name: str) -> Callable:
    """torchvision's own factory for `name` (it takes the model's arguments as **kwargs)."""
    import torchvision

    return torchvision.models.get_model_builder(name)


def torchvision_natural_input(name: str) -> tuple[int, int]:
    """3 x the crop size of the default weights (299 for inception_v3, 240 for efficientnet_b1...)."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    crop = weights.transforms.keywords.get("crop_size", _DEFAULT_INPUT[1])
    # Weights that pin the input (min_size == crop: ViT-H at 518, Swin-V2 at 256) were trained
    # at a size the weights=None constructor does not build for; that one expects 224.
    if tuple(weights.meta.get("min_size", ())) == (crop, crop):
        crop = _DEFAULT_INPUT[1]
    return 3, crop


def replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the stem's Conv2d for one taking `in_channels` planes, other settings unchanged."""
    from timm.models import adapt_input_conv

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
    import timm

    return timm.list_models()


def _check_timm(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise ModelError(f"unknown timm model '{name}'.{hint} `visionfit models` lists timm's names.")


def create_timm(name: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    import timm

    _check_timm(name)
    channels = timm_natural_input(name)[0] if in_channels is None else in_channels
    return call_builder(
        f"timm:{name}", timm.create_model, name,
        pretrained=False, num_classes=num_classes, in_chans=channels, **model_args,
    )


def timm_builder(name: str) -> Callable:
    """timm's registered factory for `name` (it takes the model's arguments as **kwargs)."""
    import timm

    _check_timm(name)
    return timm.models.model_entrypoint(name)


def timm_natural_input(name: str) -> tuple[int, int]:
    """(channels, height) from timm's pretrained config; 3 x 224 for a model without one."""
    import timm

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


def import_builder(spec: str) -> Callable:
    """The class or function `package.module:Name` names, importing its module (which runs its code)."""
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


def builder_parameters(builder: Callable) -> dict[str, inspect.Parameter]:
    """The constructor's parameters by name; empty when it has no readable signature."""
    try:
        return dict(inspect.signature(builder).parameters)
    except (TypeError, ValueError):  # a builtin or C extension without a signature
        return {}


def builder_default(builder: Callable, name: str, fallback: int) -> int:
    """An int the builder declares for `name`: a class attribute, else the constructor's default, else the fallback."""
    value = getattr(builder, name, None)
    if isinstance(value, int):
        return value
    default = builder_parameters(builder).get(name, None)
    if default is not None and isinstance(default.default, int):
        return default.default
    return fallback


def custom_natural_input(spec: str) -> tuple[int, int]:
    builder = import_builder(spec)
    channels, size = _DEFAULT_INPUT
    return builder_default(builder, "in_channels", channels), builder_default(builder, "input_size", size)


def create_custom(spec: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    """The user's class or factory, given num_classes (and in_channels when it takes it)."""
    builder = import_builder(spec)
    params = builder_parameters(builder)
    if "num_classes" not in params:
        raise ModelError(f"'{spec}' does not take a num_classes argument; add one so visionfit can size its output")
    kwargs: dict[str, Any] = {"num_classes": num_classes, **model_args}
    if in_channels is not None:
        if "in_channels" in params:
            kwargs["in_channels"] = in_channels
        elif in_channels != builder_default(builder, "in_channels", _DEFAULT_INPUT[0]):
            raise ModelError(
                f"'{spec}' takes no in_channels argument, so it cannot read {in_channels}-channel images; add one"
            )
    model = call_builder(spec, builder, **kwargs)
    if not isinstance(model, nn.Module):
        raise ModelError(f"'{spec}' returned a {type(model).__name__}, not a torch.nn.Module")
    return model
