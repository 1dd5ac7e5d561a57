"""Model files are data, never code: what a file's description of a model may build.

A model file (or a resume checkpoint's config) names an architecture and its arguments.
Before visionfit builds anything from what a file says:

  check_architecture  the name must resolve to a classic net, timm or torchvision; a
                      `package.module:Class` would import and run that module, so it needs
                      the reader's trust_code=True (--trust-code), never the file's say-so
  check_model_args    keys the builder takes, nothing that makes it open a file or download,
                      JSON scalars (or short lists of them) within sane bounds
  build_fitting       the model is first built on the meta device (shapes, no memory) and
                      compared with the tensors the file holds; only a model that fits is
                      built for real, so a small file cannot make visionfit allocate gigabytes

    model = build_described(meta["architecture"], len(meta["class_names"]), meta["in_channels"],
                            meta.get("model_args", {}), tensor_shapes, "runs/x/best.safetensors")

A name or arguments the user types (`--model mymod:Net`, `create_model(...)`) are the
user's own choice and never pass through here.
"""
import inspect
import math
from functools import partial
from typing import Callable

import torch
from torch import nn

from ..errors import ModelError
from .registry import create_model, model_builder, model_library
from .zoo import builder_parameters

# Bounds on what a file may ask for. Generous for real models, far below what could exhaust memory.
MAX_CLASSES = 100_000
MAX_CHANNELS = 16
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 8, 4096  # pixels
MAX_NAME_CHARS = 200  # an architecture name
MAX_INT_ARG = 65_536  # any other integer argument: widths, depths, ratios
MAX_FLOAT_ARG = 1e6
MAX_TEXT_ARG = 64  # characters of a string argument
MAX_LIST_ARG = 16  # items of a list argument (depths per stage, an (H, W) size)

# Set from the file's own checked fields (class names, in_channels), or by create_model itself.
_RESERVED_ARGS = {"num_classes", "in_channels", "in_chans", "name", "pretrained", "weights"}
# Arguments with which a torchvision or timm builder opens a file, downloads, or stops being a classifier.
_REFUSED_ARGS = {"pretrained_cfg", "pretrained_cfg_overlay", "pretrained_strict", "checkpoint_path", "cache_dir",
                 "progress", "features_only"}
# Words that name a location in an argument given as text (drop_path_rate=0.1, a number, is a rate).
_LOCATION_WORDS = ("path", "file", "url", "dir", "checkpoint", "hub")
_SIZE_ARGS = {"input_size", "image_size", "img_size"}


def check_architecture(name, source: str, trust_code: bool = False) -> None:
    """Refuse an architecture name read from `source` (a file, described in words) unless it
    names one of visionfit's builders, or a `package.module:Class` the reader chose to trust."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise ModelError(f"{source} names its architecture {_short(name)}, which is not a model name "
                         "(e.g. 'lenet', 'resnet18', 'timm:efficientnet_lite0'); the file is corrupt or was edited")
    library = _naming(source, name, model_library)(name)
    if library == "custom" and not trust_code:
        module = name.partition(":")[0]
        raise ModelError(f"{source} names its architecture {name!r}, code outside visionfit; loading it would "
                         f"import and run '{module}'. If you trust this file, pass --trust-code (trust_code=True)")


def check_model_args(architecture: str, model_args, source: str) -> dict:
    """The model_args `source` gives `architecture`, once every key and value is known to be harmless.

    Call after check_architecture: for a trusted custom name this imports its module to read
    the constructor's signature.
    """
    if not isinstance(model_args, dict):
        raise ModelError(f"{source}: model_args must be an object of argument names and values, "
                         f"not {type(model_args).__name__}; the file is corrupt or was edited")
    parameters = builder_parameters(_naming(source, architecture, model_builder)(architecture))
    takes_any = not parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in model_args.items():
        _check_arg_name(key, value, architecture, parameters, takes_any, source)
        _check_arg_value(key, value, source)
    return dict(model_args)


def _check_arg_name(key, value, architecture: str, parameters: dict, takes_any: bool, source: str) -> None:
    if not isinstance(key, str) or not key.isidentifier():
        raise ModelError(f"{source}: model_args has {_short(key)}, which is not an argument name; "
                         "the file is corrupt or was edited")
    if key in _RESERVED_ARGS:
        raise ModelError(f"{source}: model_args may not set '{key}'; it comes from the file's own class names "
                         "and in_channels. The file is corrupt or was edited")
    names_location = any(word in key.lower() for word in _LOCATION_WORDS) and _holds_text(value)
    if key in _REFUSED_ARGS or names_location:
        raise ModelError(f"{source}: model_args '{key}' would make the builder read a file or download; "
                         "a model file carries its weights itself. The file is corrupt or was edited")
    if not takes_any and key not in parameters:
        raise ModelError(f"{source}: model_args '{key}' is not an argument of {architecture!r} "
                         f"(it takes {', '.join(parameters)}); the file is corrupt or was edited")


def _holds_text(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and any(isinstance(item, str) for item in value))


def _check_arg_value(key: str, value, source: str) -> None:
    """JSON scalars, or a short list of them; numbers finite and bounded (sizes 8..4096 px)."""
    if isinstance(value, list):
        problem = (f"a list has at most {MAX_LIST_ARG} items" if len(value) > MAX_LIST_ARG
                   else next(filter(None, (_scalar_problem(key, item) for item in value)), None))
    else:
        problem = _scalar_problem(key, value)
    if problem is not None:
        raise ModelError(f"{source}: model_args {key}={_short(value)} is out of bounds ({problem}); "
                         "the file is corrupt or was edited")


def _scalar_problem(key: str, value) -> str | None:
    """What is wrong with one argument value, or None when it is harmless."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        low, high = _int_bounds(key)
        return None if low <= value <= high else f"{key} is a whole number from {low} to {high}"
    if isinstance(value, float):
        harmless = math.isfinite(value) and abs(value) <= MAX_FLOAT_ARG
        return None if harmless else f"numbers are finite, at most {MAX_FLOAT_ARG:g}"
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT_ARG else f"text has at most {MAX_TEXT_ARG} characters"
    return "values are numbers, text, true/false or null, or short lists of them"


def _int_bounds(key: str) -> tuple[int, int]:
    return (MIN_IMAGE_SIDE, MAX_IMAGE_SIDE) if key in _SIZE_ARGS else (-MAX_INT_ARG, MAX_INT_ARG)


def build_described(architecture, num_classes: int, in_channels: int, model_args, tensor_shapes: dict,
                    source: str, trust_code: bool = False) -> nn.Module:
    """The model `source` describes, with random weights, once its name, arguments and
    tensor shapes (name -> shape, from the file's header) have all passed the checks above."""
    check_architecture(architecture, source, trust_code)
    args = check_model_args(architecture, model_args, source)
    build = partial(create_model, architecture, num_classes=num_classes, in_channels=in_channels, **args)
    return build_fitting(build, tensor_shapes, source, architecture)


def build_fitting(build: Callable[[], nn.Module], tensor_shapes: dict, source: str, architecture: str) -> nn.Module:
    """`build()`, called only once a skeleton of it on the meta device fits `tensor_shapes`."""
    build = _naming(source, architecture, build)
    skeleton = _on_meta(build)
    if skeleton is None:
        # The constructor computes with tensor values, which meta tensors lack (torchvision's
        # RegNets size their stages so): build for real, a size the checked arguments bound.
        model = build()
        check_tensors_fit(model, tensor_shapes, source, architecture)
        return model
    check_tensors_fit(skeleton, tensor_shapes, source, architecture)
    return build()


def _on_meta(build: Callable[[], nn.Module]) -> nn.Module | None:
    try:
        with torch.device("meta"):
            return build()
    except NotImplementedError:  # "Cannot copy out of meta tensor": a value was needed
        return None


def check_tensors_fit(model: nn.Module, tensor_shapes: dict, source: str, architecture: str) -> None:
    """Refuse a file whose tensors (name -> shape) are not exactly the model's state_dict.

    A group of tied tensors (one Parameter under several names) is stored once, under any of its names.
    """
    expected = model.state_dict(keep_vars=True)
    misfit = _first_misfit(expected, {key: tuple(shape) for key, shape in tensor_shapes.items()})
    if misfit is not None:
        raise ModelError(f"tensors of {source} do not fit architecture {architecture!r}: e.g. {misfit}; "
                         "the file is corrupt or was edited")


def _first_misfit(expected: dict[str, torch.Tensor], shapes: dict[str, tuple]) -> str | None:
    for key, shape in shapes.items():
        if key not in expected:
            return f"{key} {shape} is in the file, not in the architecture"
        if tuple(expected[key].shape) != shape:
            return f"{key} is {shape} in the file, {tuple(expected[key].shape)} in the architecture"
    tied: dict[int, list[str]] = {}
    for key, tensor in expected.items():
        tied.setdefault(id(tensor), []).append(key)
    for names in tied.values():
        if not any(name in shapes for name in names):
            return f"{names[0]} {tuple(expected[names[0]].shape)} is in the architecture, not in the file"
    return None


def _naming(source: str, architecture: str, function: Callable) -> Callable:
    """`function`, its errors ("unknown model", "cannot be built with ...") naming the file they came from."""

    def call(*args):
        try:
            return function(*args)
        except ModelError as error:
            raise ModelError(f"{source} describes architecture {architecture!r}, which visionfit cannot build: "
                             f"{error}") from error

    return call


def _short(value, chars: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= chars else f"{text[:chars]}..."
