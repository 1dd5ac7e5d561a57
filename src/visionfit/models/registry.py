"""One name space for every model visionfit can build, whatever library it comes from.

    create_model("lenet")                          # a classic net registered here
    create_model("resnet18", num_classes=7)        # a torchvision model, random weights
    create_model("timm:efficientnet_lite0")        # a timm model
    create_model("mypkg.nets:TinyNet")             # your own class (or factory function)

A name resolves in that order: registered classic net, `timm:` prefix, `module:Class`,
torchvision classification model. Weights are always random here; pretrained weights
are loaded by the caller, so building a model never touches the network.
"""
import difflib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import ModelError
from ..registry import Registry
from . import zoo

MODELS: Registry = Registry("model", ModelError)


def register_model(name: str, input_size: int, in_channels: int = 1) -> Callable:
    """Register a classic-net factory under `name`, recording the input it was designed for.

    The natural input is kept on the factory so `natural_input` can answer without
    building the model.
    """

    def decorate(factory: Callable) -> Callable:
        factory.natural_input = (in_channels, input_size)
        return MODELS.register(name)(factory)

    return decorate


def _create_classic(name: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    factory = MODELS.get(name)
    channels = factory.natural_input[0] if in_channels is None else in_channels
    return zoo.call_builder(name, factory, num_classes=num_classes, in_channels=channels, **model_args)


@dataclass(frozen=True)
class _Source:
    """How to build, and how to size the input of, the models of one library."""

    create: Callable[..., nn.Module]  # (name, num_classes, in_channels, **model_args)
    natural_input: Callable[[str], tuple[int, int]]


_CLASSIC = _Source(_create_classic, lambda name: MODELS.get(name).natural_input)
_TIMM = _Source(zoo.create_timm, zoo.timm_natural_input)
_CUSTOM = _Source(zoo.create_custom, zoo.custom_natural_input)
_TORCHVISION = _Source(zoo.create_torchvision, zoo.torchvision_natural_input)


def _resolve(name: str) -> tuple[_Source, str]:
    """The library that builds `name`, and the name as that library knows it."""
    if name in MODELS:
        return _CLASSIC, name
    if name.startswith("timm:"):
        return _TIMM, name.removeprefix("timm:")
    if ":" in name:
        return _CUSTOM, name
    if name in zoo.torchvision_names():
        return _TORCHVISION, name
    raise ModelError(_unknown_message(name))


def _unknown_message(name: str) -> str:
    candidates = MODELS.names() + zoo.torchvision_names()
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown model '{name}'.{hint} Classic nets: {', '.join(MODELS.names())}; "
        f"any torchvision classification model (e.g. resnet18); timm models as timm:<name> "
        f"(e.g. timm:efficientnet_lite0); your own as package.module:ClassName. "
        f"`visionfit models` lists them all."
    )


def create_model(name: str, num_classes: int = 10, in_channels: int | None = None, **model_args) -> nn.Module:
    """Build `name` with random weights, `num_classes` outputs and `in_channels` input planes.

    in_channels=None keeps the model's natural channel count (see `natural_input`).
    `model_args` go to the model's constructor (e.g. act="relu" for lenet, input_size=32
    for a classic net that sizes its classifier from the input).
    """
    source, model_name = _resolve(name)
    model = source.create(model_name, num_classes, in_channels, **model_args)
    # How to build it again: fit() records this when handed a ready-made module.
    model.visionfit_spec = {"architecture": name, "model_args": dict(model_args)}
    return model


def natural_input(name: str) -> tuple[int, int]:
    """(channels, side in pixels) the model was designed for; the default image size."""
    source, model_name = _resolve(name)
    return source.natural_input(model_name)


def list_models(filter: str = "") -> dict[str, list[str]]:
    """Every buildable name by library that contains `filter`, for `visionfit models` (timm names
    go after `timm:`). `filter` is spelled as in timm.list_models and `visionfit models FILTER`."""
    names = {"classic": MODELS.names(), "torchvision": zoo.torchvision_names(), "timm": zoo.timm_names()}
    return {library: [name for name in found if filter in name] for library, found in names.items()}
