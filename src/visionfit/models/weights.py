"""Where starting weights come from: a library's pretrained set, or a file the user has.

    source = weight_source(config.model)   # --pretrained / --weights PATH, or None
    report = load_weights(net, source)      # see loading.py: what matched, what did not

A pretrained set brings its own eval recipe (input size, resize rule, crop fraction,
interpolation, mean, std: torchvision's `weights.transforms()`, timm's `pretrained_cfg`),
which the run then uses everywhere: the preset, config.yaml and the model file's metadata.

Every load is safe: safetensors, or torch.load(weights_only=True), which refuses pickled
code; there is no fallback to an unsafe load.
"""
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from ..data.preprocess import WeightsPreprocessing
from ..errors import ModelError
from .offline import offline_checkpoint

RGB = 3  # pretrained image nets read RGB
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net", "module")  # common checkpoint layouts
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_TORCH_ZIP = b"PK\x03\x04"  # torch.save's format since torch 1.6: a zip archive
_PICKLE_PROTO = b"\x80"  # the legacy torch.save format opens with a pickle PROTO opcode


@dataclass
class WeightSource:
    """A state_dict and what is known about how it was trained."""

    state_dict: dict[str, torch.Tensor]
    origin: str  # for the report: "torchvision ResNet18_Weights.IMAGENET1K_V1", a path, ...
    preprocessing: WeightsPreprocessing = field(default_factory=WeightsPreprocessing)  # its eval recipe
    mapping: str = "name"  # how tensors pair with the model's: by "name" or by "order"
    model_args: dict = field(default_factory=dict)  # constructor arguments these weights need
    num_classes: int | None = None  # classes the weights' head scores, when known


def weight_source(model_cfg) -> WeightSource | None:
    """The weights --pretrained or --weights asks for (None when neither is given)."""
    if model_cfg.pretrained:
        return pretrained_weights(model_cfg.model)
    if model_cfg.weights:
        source = file_weights(model_cfg.weights)
        source.mapping = model_cfg.weights_mapping
        return source
    return None


def pretrained_weights(name: str) -> WeightSource:
    """The default pretrained set of a torchvision or timm model (downloaded once, then cached)."""
    from . import zoo
    from .registry import MODELS

    if name.startswith("timm:"):
        return _timm_weights(name.removeprefix("timm:"))
    if name not in MODELS and name in zoo.torchvision_names():
        return _torchvision_weights(name)
    raise ModelError(f"--pretrained: visionfit has no pretrained weights for '{name}' (only torchvision models and "
                     "timm:<name> models have them); start from your own file with --weights PATH")


# --- torchvision ---------------------------------------------------------------------------


def _torchvision_weights(name: str) -> WeightSource:
    """The DEFAULT weights enum, fetched through torch.hub's cache (<TORCH_HOME>/hub/checkpoints)."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        # weights_only=True: torchvision's own builders load this file with weights_only=False.
        state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except OSError as error:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
        raise ModelError(_offline_hint(f"cannot fetch {weights} ({error})", weights.url, f"copy it to {cached}")) from error
    return WeightSource(
        _fix_torchvision_keys(name, state), f"torchvision {type(weights).__name__}.{weights.name}",
        torchvision_recipe(weights), model_args=_torchvision_builder_args(name, weights),
        num_classes=len(weights.meta["categories"]),
    )


def torchvision_recipe(weights) -> WeightsPreprocessing:
    """The eval transform a torchvision weight set documents (`weights.transforms()`):
    the shorter side to resize_size, a center crop of crop_size, its interpolation, mean and std."""
    preprocess = weights.transforms()
    crop, resize = preprocess.crop_size[0], preprocess.resize_size[0]
    return WeightsPreprocessing(size=crop, channels=RGB, mean=tuple(preprocess.mean), std=tuple(preprocess.std),
                                resize="shorter", crop_fraction=crop / resize,
                                interpolation=preprocess.interpolation.value)


def _torchvision_builder_args(name: str, weights) -> dict:
    """Constructor arguments torchvision's own builder sets when it loads these weights."""
    if name in ("googlenet", "inception_v3"):
        return {"transform_input": True}  # ported from TF: they re-normalise ImageNet input inside
    if name.startswith("vit_"):
        return {"image_size": weights.meta["min_size"][0]}  # position embeddings fix the size
    return {}


_DENSENET_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _fix_torchvision_keys(name: str, state: dict) -> dict:
    """DenseNet's published files use old key names ("norm.1"); torchvision renames them on load."""
    if not name.startswith("densenet"):
        return state
    return {_DENSENET_OLD_KEY.sub(r"\1\2", key): value for key, value in state.items()}


# --- timm ----------------------------------------------------------------------------------


def _timm_weights(name: str) -> WeightSource:
    """timm's own pretrained mechanism (HF hub / URL cache), or the offline package for Lite0."""
    offline = offline_checkpoint(name)
    if offline is not None:
        state = read_weight_file(offline.path)[0]
        return WeightSource(state, offline.origin, offline.recipe, offline.mapping, num_classes=offline.num_classes)
    import timm

    cfg = timm.get_pretrained_cfg(name)
    where = cfg and ((cfg.hf_hub_id and f"https://huggingface.co/{cfg.hf_hub_id}") or cfg.url)
    if not where:
        raise ModelError(f"--pretrained: timm has no pretrained weights for '{name}'; pick a tagged name "
                         f"(`visionfit models {name}`) or pass a file with --weights PATH")
    try:
        model = timm.create_model(name, pretrained=True)  # timm loads with weights_only=True / safetensors
    except (OSError, RuntimeError) as error:
        raise ModelError(_offline_hint(f"cannot fetch timm's pretrained weights for '{name}' ({error})", where,
                                       "put it in the Hugging Face cache (HF_HOME)")) from error
    cfg = model.pretrained_cfg
    origin = f"timm {cfg.get('hf_hub_id') or cfg.get('url') or name}"
    return WeightSource(model.state_dict(), origin, timm_recipe(cfg), num_classes=model.num_classes)


def timm_recipe(cfg: dict) -> WeightsPreprocessing:
    """The eval transform timm builds from a pretrained_cfg (timm.data.create_transform, is_training=False):
    shorter side (crop_mode "squash": both sides) to floor(size / crop_pct), then a center crop."""
    channels, size, _ = cfg["input_size"]
    interpolation = cfg.get("interpolation", "bilinear")
    return WeightsPreprocessing(
        size=size, channels=channels, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
        resize="both" if cfg.get("crop_mode") == "squash" else "shorter", crop_fraction=cfg.get("crop_pct", 0.875),
        interpolation=interpolation if interpolation in ("nearest", "bilinear", "bicubic") else "bicubic",
    )


def _offline_hint(problem: str, where: str, cache: str) -> str:
    return (f"--pretrained: {problem}. Without internet here, fetch the weights from {where} on a connected "
            f"machine, then pass the file with --weights PATH or {cache}")


# --- files ---------------------------------------------------------------------------------


def file_weights(path: str | Path) -> WeightSource:
    """A .pth/.pt state_dict, a .safetensors file, or a visionfit model file (its preprocessing too)."""
    state, meta = read_weight_file(path)
    if meta is None:
        return WeightSource(state, str(path), WeightsPreprocessing(channels=_stem_channels(state)))
    return WeightSource(state, str(path), model_file_recipe(meta), num_classes=len(meta["class_names"]))


def model_file_recipe(meta: dict) -> WeightsPreprocessing:
    """A visionfit model file's own preprocessing, to fine-tune from it with the same input."""
    from ..data.transforms import preset_from_meta

    spec = preset_from_meta(meta).preprocess
    return WeightsPreprocessing(size=spec.size, channels=spec.channels, mean=spec.mean, std=spec.std,
                                resize=spec.resize, crop_fraction=spec.size / spec.resize_side,
                                interpolation=spec.interpolation)


def read_weight_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """(state_dict, visionfit metadata or None), loaded without unpickling anything."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"--weights {path} does not exist; give a .pth, .pt, .safetensors or visionfit model file")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelError(f"--weights {path}: unknown weight file type '{path.suffix}'; "
                         f"give one of {', '.join(WEIGHT_SUFFIXES)}")
    _require_torch_file(path)
    return _state_dict_in(_torch_load_weights_only(path), path), None


def _read_safetensors(path: Path) -> tuple[dict, dict | None]:
    from ..checkpoints import META_KEY, check_meta_text

    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
        state = safetensors.torch.load_file(str(path))
    except Exception as error:  # safetensors raises its own types for foreign/corrupt files
        raise ModelError(f"--weights {path} is not a readable safetensors file ({error})") from error
    return _strip_wrappers(state), (check_meta_text(raw, f"--weights {path}") if raw is not None else None)


def _require_torch_file(path: Path) -> None:
    """Refuse what torch.save did not write (text, HTML, random bytes) by its first bytes, before
    torch.load's unpickler would call it a file of pickled objects."""
    with path.open("rb") as f:
        head = f.read(16)
    if not (head.startswith(_TORCH_ZIP) or head.startswith(_PICKLE_PROTO)):
        raise ModelError(f"--weights {path} is not a PyTorch or safetensors weight file (it starts with {head!r}); "
                         "give a file written by torch.save or safetensors")


def _torch_load_weights_only(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelError(
            f"--weights {path} holds pickled Python objects, not only tensors, and visionfit never unpickles "
            f"code ({_refused_object(error)}). Where you trust the file, re-save just the weights: "
            "torch.save(model.state_dict(), 'weights.pth') or safetensors.torch.save_model(model, 'weights.safetensors')"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise ModelError(f"--weights {path} is not a readable torch file ({error})") from error


def _refused_object(error: pickle.UnpicklingError) -> str:
    """From torch's long weights_only message, the part that names what was refused:
    "Unsupported global: GLOBAL mymodule.Net" (the rest says how to load it unsafely)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line.split("WeightsUnpickler error:", 1)[1] for line in lines if "WeightsUnpickler error:" in line]
    reason = named[0] if named else (lines[-1] if lines else type(error).__name__)
    return reason.split(" was not an allowed global")[0].strip()


def _state_dict_in(obj, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict in a checkpoint: the object itself, or under a usual key ("state_dict", "model", ...)."""
    if _is_state_dict(obj):
        return _strip_wrappers(obj)
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if _is_state_dict(obj.get(key)):
                return _strip_wrappers(obj[key])
    kind = f"a dict with keys {', '.join(map(str, list(obj)[:8]))}" if isinstance(obj, dict) else type(obj).__name__
    raise ModelError(f"--weights {path} is {kind}, not a state_dict of tensors (nor one under "
                     f"{', '.join(_NESTED_KEYS)}); save it with torch.save(model.state_dict(), path)")


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_wrappers(state: dict) -> dict:
    """Drop the "module." (DDP) or "_orig_mod." (torch.compile) prefix every key carries."""
    for prefix in _WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state


def _stem_channels(state: dict) -> int | None:
    """Planes the checkpoint's first conv reads: dim 1 of its first 4-D tensor."""
    first = next((t for t in state.values() if t.ndim == 4 and t.is_floating_point()), None)
    return None if first is None else int(first.shape[1])
