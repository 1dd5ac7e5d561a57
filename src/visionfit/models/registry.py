"""One name space for every model visionfit can build, whatever library it comes from.

    create_model("lenet")                                       # a classic net registered here
    create_model("resnet18", num_classes=7)                     # a torchvision model, random weights
    create_model("timm:efficientnet_lite0", pretrained=True)    # a timm model with its ImageNet weights
    create_model("resnet18", num_classes=2, weights="r18.pth")  # weights from a file, head resized
    create_model("mypkg.nets:TinyNet")                          # your own class (or factory function)

A name resolves in that order: registered classic net, `timm:` prefix, `module:Class`,
torchvision classification model. Weights are random unless `pretrained` or `weights` asks
for a weight set, so building a model touches the network only when asked to.
"""
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from ..errors import ModelError
from ..registry import Registry
from . import zoo

MODELS: Registry = Registry("model", ModelError)


def register_model(name: str, input_size: int, in_channels: int = 1, d2l: dict | None = None) -> Callable:
    """Register a classic-net factory under `name`, recording the input it was designed for
    and, when d2l trains it, its line of d2l's recipe (recipes.d2l_line: lr, batch size, epochs).

    Both are kept on the factory, as timm keeps default_cfgs beside its models, so
    `natural_input` and the recipes can answer without building the model.
    """

    def decorate(factory: Callable) -> Callable:
        factory.natural_input = (in_channels, input_size)
        factory.d2l = d2l
        return MODELS.register(name)(factory)

    return decorate


def _create_classic(name: str, num_classes: int, in_channels: int | None, **model_args) -> nn.Module:
    factory = MODELS.get(name)
    channels = factory.natural_input[0] if in_channels is None else in_channels
    return zoo.call_builder(name, factory, num_classes=num_classes, in_channels=channels, **model_args)


CLASSIC_CLASSES = 10  # a classic net's default head: Fashion-MNIST's, as in d2l
IMAGENET_CLASSES = 1000  # torchvision's and timm's default head


@dataclass(frozen=True)
class _Source:
    """How to build, size the input of, and check the arguments of the models of one library."""

    library: str  # "classic", "timm", "custom" or "torchvision"
    create: Callable[..., nn.Module]  # (name, num_classes, in_channels, **model_args)
    natural_input: Callable[[str], tuple[int, int]]
    builder: Callable[[str], Callable]  # the constructor model_args reach, whose signature says what it takes
    default_classes: Callable[[str], int]


def _declared_classes(builder: Callable[[str], Callable]) -> Callable[[str], int]:
    return lambda name: zoo.builder_default(builder(name), "num_classes", CLASSIC_CLASSES)


_CLASSIC = _Source("classic", _create_classic, lambda name: MODELS.get(name).natural_input, MODELS.get,
                   _declared_classes(MODELS.get))
_TIMM = _Source("timm", zoo.create_timm, zoo.timm_natural_input, zoo.timm_builder, lambda name: IMAGENET_CLASSES)
_CUSTOM = _Source("custom", zoo.create_custom, zoo.custom_natural_input, zoo.import_builder,
                  _declared_classes(zoo.import_builder))
_TORCHVISION = _Source("torchvision", zoo.create_torchvision, zoo.torchvision_natural_input, zoo.torchvision_builder,
                       lambda name: IMAGENET_CLASSES)


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


def create_model(name: str, pretrained: bool = False, num_classes: int | None = None, in_channels: int | None = None,
                 weights: str | Path | None = None, **model_args) -> nn.Module:
    """Build `name` as timm's create_model does: random weights, or a weight set loaded into them.

    pretrained=True loads the library's pretrained weights (torchvision's DEFAULT, timm's own, the
    packaged EfficientNet-Lite0); weights=PATH a .pth/.pt/.safetensors or visionfit model file. What
    fits loads by name (see partial.py), as `visionfit train --pretrained/--weights` loads it: a head
    for other classes stays freshly initialised, a stem for other channels is adapted. The weight
    set's eval recipe is then `model.pretrained_cfg`, in timm's words: input_size (C, H, W), mean,
    std, crop_pct, interpolation, crop_mode, num_classes.

    num_classes=None: the weight set's classes (1000 for ImageNet weights), else the architecture's
    default, 10 for the classic nets (Fashion-MNIST's) and 1000 for torchvision and timm models.
    in_channels=None: the weight set's channels, else the model's natural count (see `natural_input`).
    `model_args` go to the model's constructor (e.g. act="relu" for lenet, input_size=32
    for a classic net that sizes its classifier from the input).
    """
    source, model_name = _resolve(name)
    weight_set = _weight_set(name, pretrained, weights)
    if weight_set is not None:
        model_args = {**weight_set.model_args, **model_args}
        in_channels = weight_set.preprocessing.channels if in_channels is None else in_channels
        num_classes = weight_set.num_classes if num_classes is None else num_classes
    classes = source.default_classes(model_name) if num_classes is None else num_classes
    model = source.create(model_name, classes, in_channels, **model_args)
    # How to build it again: fit() records this when handed a ready-made module.
    model.visionfit_spec = {"architecture": name, "model_args": dict(model_args)}
    if weight_set is not None:
        _load_weight_set(model, weight_set)
    return model


def _weight_set(name: str, pretrained: bool, weights: str | Path | None):
    """The WeightSource create_model was asked to start from, or None."""
    from .weights import file_weights, pretrained_weights  # weights.py imports this module

    if pretrained and weights is not None:
        raise ModelError(f"create_model('{name}'): pretrained=True and weights={str(weights)!r} both choose the "
                         "starting weights; give one")
    if pretrained:
        return pretrained_weights(name)
    return None if weights is None else file_weights(weights)


def _load_weight_set(model: nn.Module, weight_set) -> None:
    """Load what fits (ModelError when nothing does) and attach the weights' preprocessing."""
    from .partial import load_weights  # imports timm, which takes seconds

    load_weights(model, weight_set)
    recipe = weight_set.preprocessing
    cfg = {"num_classes": weight_set.num_classes, "origin": weight_set.origin}
    if recipe.size is not None and recipe.channels is not None:
        cfg["input_size"] = (recipe.channels, recipe.size, recipe.size)
    if recipe.mean is not None and recipe.std is not None:
        cfg["mean"], cfg["std"] = recipe.mean, recipe.std
    if recipe.crop_fraction is not None:  # timm's names for the eval crop
        cfg["crop_pct"], cfg["interpolation"] = recipe.crop_fraction, recipe.interpolation
        cfg["crop_mode"] = "squash" if recipe.resize == "both" else "center"
    # Over timm's own config, which describes timm's weights rather than the ones loaded
    # (the packaged Lite0 was trained on (x - 127) / 128, not ImageNet's mean and std).
    model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), **cfg}


def natural_input(name: str) -> tuple[int, int]:
    """(channels, side in pixels) the model was designed for; the default image size."""
    source, model_name = _resolve(name)
    return source.natural_input(model_name)


def model_args_for_input(name: str, input_size: int, model_args: dict) -> dict:
    """`model_args` that build `name` for input_size x input_size images.

    Classic nets size their classifier from the input, so they get input_size unless it is
    their natural side or the arguments already say; other models pool globally and need nothing.
    """
    args = dict(model_args)
    if name in MODELS and input_size != natural_input(name)[1]:
        args.setdefault("input_size", input_size)
    return args


def model_library(name: str) -> str:
    """Which library builds `name`: "classic", "timm", "torchvision", or "custom" (the user's own code)."""
    return _resolve(name)[0].library


def model_builder(name: str) -> Callable:
    """The constructor `name`'s model_args reach. For a custom name this imports its module: its code runs."""
    source, model_name = _resolve(name)
    return source.builder(model_name)


def list_models(filter: str = "") -> dict[str, list[str]]:
    """Every buildable name by library that contains `filter`, for `visionfit models` (timm names
    go after `timm:`). `filter` is spelled as in timm.list_models and `visionfit models FILTER`."""
    names = {"classic": MODELS.names(), "torchvision": zoo.torchvision_names(), "timm": zoo.timm_names()}
    return {library: [name for name in found if filter in name] for library, found in names.items()}
