"""Self-describing model files and resume checkpoints, written atomically, loaded safely.

A model file (`best.safetensors`) is safetensors weights plus JSON metadata: the
architecture and its arguments, class names in index order, the preprocessing preset,
the visionfit version and the run's metrics. `load_model` rebuilds the net from it alone,
treating the file as data: the metadata is checked field by field (`check_meta`), and
what it describes is built only within the limits of models/safety.py (no code outside
visionfit without trust_code=True, no arguments that open files, tensors that fit).

A resume checkpoint (`last.ckpt`) is a torch file of tensors and plain containers only,
so `torch.load(weights_only=True)` reads it: nothing is ever unpickled. The one it
replaced is kept as `previous.ckpt`, which a resume falls back to when last.ckpt is damaged.
"""
import json
import math
import os
import re
import sys
import warnings
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

from .errors import ModelError
from .files import atomic_path
from .models.safety import MAX_CHANNELS, MAX_CLASSES, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE, build_described

FORMAT = "visionfit-model/1"
META_KEY = "visionfit"
FOLDER_CONFIG, FOLDER_WEIGHTS = "config.json", "model.safetensors"  # a model folder, in Hugging Face's layout
MAX_CONFIG_BYTES = 10_000_000  # a config.json of 100,000 long class names; anything bigger is not one
LAST_STATE, PREVIOUS_STATE = "last.ckpt", "previous.ckpt"
RESUME_KEYS = {"epoch": int, "model": dict, "optimizer": dict, "scheduler": dict, "scaler": dict, "history": list,
               "best_score": float, "config": dict}
EMA_KEYS = {"steps": int, "weights": dict}  # the optional "ema" of a run with --ema (train/ema.py)
# What every model file's metadata must hold, and as what JSON type. Other fields (metrics,
# dataset, weights, a newer writer's additions) are allowed and checked by whoever reads them.
REQUIRED_FIELDS = {"architecture": str, "class_names": list, "in_channels": int, "input_size": int,
                   "mean": list, "std": list, "preset": dict}
_JSON_KINDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
               dict: "an object", type(None): "null"}  # for messages, in the words of the JSON the file holds


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_model_file(path: str | Path, model: nn.Module, meta: dict) -> None:
    """Write weights + metadata (see module docstring) atomically."""
    meta = {"format": FORMAT, **meta}
    with atomic_path(path) as tmp:
        # save_model drops tensors that share storage (tied weights) and load_model restores them.
        safetensors.torch.save_model(unwrap(model), str(tmp), metadata={META_KEY: json.dumps(meta)})


def read_meta(path: str | Path) -> dict:
    """The checked metadata of a visionfit model file or model folder, without loading its weights."""
    return _read_header(path)[0]


def _read_header(path: str | Path) -> tuple[dict, dict[str, tuple[int, ...]], Path]:
    """(checked metadata, tensor name -> shape, weights file) of a model file or a model folder
    (Hugging Face layout: config.json + model.safetensors); reading them allocates no tensor."""
    if Path(path).is_dir():
        return _read_folder(Path(path))
    path = _existing(path)
    raw, shapes = _safetensors_header(path)
    if raw is None:
        raise ModelError(f"{path} has no visionfit metadata; it is plain weights — use --weights {path} with --model NAME to load them into an architecture")
    return check_meta_text(raw, str(path)), shapes, path


def _safetensors_header(path: Path) -> tuple[str | None, dict[str, tuple[int, ...]]]:
    """(the visionfit metadata text or None, tensor name -> shape) of a safetensors file."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            return raw, {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as error:  # safetensors raises its own types for foreign/corrupt files
        raise ModelError(f"{path} is not a readable safetensors file ({error}); pass a visionfit model file such as runs/exp/best.safetensors") from error


def _read_folder(folder: Path) -> tuple[dict, dict[str, tuple[int, ...]], Path]:
    """A model folder's config.json (the metadata, checked as a model file's is) and model.safetensors' shapes."""
    config, weights = folder / FOLDER_CONFIG, folder / FOLDER_WEIGHTS
    for needed in (config, weights):
        if not needed.is_file():
            raise ModelError(f"model folder {folder} has no {needed.name}; pass a folder `visionfit export "
                             "--hub-folder` wrote (config.json + model.safetensors), or a model file")
    if config.stat().st_size > MAX_CONFIG_BYTES:
        raise _malformed(str(config), f"it holds {config.stat().st_size:,} bytes, far more than a model's description")
    try:
        text = config.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(str(config), "it is not UTF-8 text") from None
    return check_meta_text(text, str(config)), _safetensors_header(weights)[1], weights


def check_meta_text(raw: str, source: str) -> dict:
    """The metadata a model file stores as JSON text under META_KEY, parsed and checked."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly nested JSON
        raise _malformed(source, f"it is not JSON ({type(error).__name__}: {str(error)[:80]})") from error
    return check_meta(meta, source)


def check_meta(meta, source: str) -> dict:
    """`meta` (from `source`, a file in words) once every field a reader relies on is present,
    of its JSON type and within bounds; a ModelError naming the first that is not."""
    if not isinstance(meta, dict):
        raise _malformed(source, f"it is {_kind(meta)}, not an object")
    for field, kind in REQUIRED_FIELDS.items():
        if field not in meta:
            raise _malformed(source, f"it has no '{field}'")
        if not isinstance(meta[field], kind) or isinstance(meta[field], bool):
            raise _malformed(source, f"'{field}' is {_kind(meta[field])}, not {_JSON_KINDS[kind]}")
    if meta.get("format", FORMAT) != FORMAT:
        raise ModelError(f"{source} is a model file of format {str(meta['format'])[:40]!r}; this visionfit reads "
                         f"{FORMAT}: upgrade visionfit")
    _check_class_names(meta["class_names"], source)
    _check_bounds("in_channels", meta["in_channels"], 1, MAX_CHANNELS, source)
    _check_bounds("input_size", meta["input_size"], MIN_IMAGE_SIDE, MAX_IMAGE_SIDE, source)
    for field in ("mean", "std"):
        _check_statistics(field, meta[field], meta["in_channels"], source)
    _check_preset(meta["preset"], meta, source)
    _check_head(meta, source)
    return meta


def _check_head(meta: dict, source: str) -> None:
    """A multi-label head ("multi_label": true) comes with one threshold in [0, 1] per class;
    a single-label one (false, or absent in files from before multi-label) with none."""
    multi_label = meta.get("multi_label", False)
    if not isinstance(multi_label, bool):
        raise _malformed(source, f"'multi_label' is {_kind(multi_label)}, not true or false")
    if not multi_label:
        if "thresholds" in meta:
            raise _malformed(source, "it has 'thresholds' but is not multi-label")
        return
    thresholds, classes = meta.get("thresholds"), len(meta["class_names"])
    numbers = isinstance(thresholds, list) and all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1 for t in thresholds)
    if not numbers or len(thresholds) != classes:
        raise _malformed(source, f"'thresholds' is {str(thresholds)[:60]}, not {classes} number(s) from 0 to 1, "
                                 "one per class of a multi-label model")


def _check_class_names(names: list, source: str) -> None:
    if not 1 <= len(names) <= MAX_CLASSES:
        raise _malformed(source, f"it has {len(names)} class names; a model scores 1 to {MAX_CLASSES:,} classes")
    odd = next((name for name in names if not isinstance(name, str)), None)
    if odd is not None:
        raise _malformed(source, f"class name {str(odd)[:40]} is {_kind(odd)}, not text")
    seen = set()
    for name in names:
        if name in seen:
            raise _malformed(source, f"class name {name[:40]!r} appears twice")
        seen.add(name)


def _check_bounds(field: str, value: int, low: int, high: int, source: str) -> None:
    if not low <= value <= high:
        raise _malformed(source, f"'{field}' is {value}, outside {low}..{high}")


def _check_statistics(field: str, values: list, channels: int, source: str) -> None:
    """One finite number per channel; a std also above zero (the image is divided by it)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if len(values) != channels or not numbers or (field.endswith("std") and min(values) <= 0):
        positive = " above zero" if field.endswith("std") else ""
        raise _malformed(source, f"'{field}' is {str(values)[:60]}, not {channels} finite number(s){positive}, "
                                 "one per input channel")


def _check_preset(values: dict, meta: dict, source: str) -> None:
    """The preprocessing the readers rebuild (preset_from_meta: "preprocess", or a 0.1.0 file's
    "preset"), checked and consistent with the fields above."""
    from .data.transforms import preset_from_meta

    try:
        preset = preset_from_meta(meta)
    except (TypeError, KeyError, ValueError, ModelError) as error:
        raise _malformed(source, f"its preprocessing is not usable ({type(error).__name__}: {error})") from error
    if (preset.size, preset.channels) != (meta["input_size"], meta["in_channels"]):
        raise _malformed(source, f"its preprocessing is for {preset.channels!r} x {preset.size!r} px input, the model "
                                 f"for {meta['in_channels']} x {meta['input_size']} px")
    augmentation = values
    if not (isinstance(augmentation.get("small"), bool) and isinstance(augmentation.get("flip"), bool)
            and isinstance(augmentation.get("rotation", 0.0), (int, float))
            and math.isfinite(augmentation.get("rotation", 0.0))
            and isinstance(augmentation.get("pad", 0), int) and 0 <= augmentation.get("pad", 0) <= MAX_IMAGE_SIDE):
        raise _malformed(source, "'preset' has a small, flip, rotation or pad of the wrong type or out of range")


def _kind(value) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _malformed(source: str, problem: str) -> ModelError:
    return ModelError(f"{source} has malformed visionfit metadata: {problem}. The file is corrupt or was edited; "
                      "use a model file a visionfit run wrote")


def load_model(path: str | Path, device: str | torch.device = "cpu", trust_code: bool = False) -> nn.Module:
    """Rebuild a trained model from its file (or model folder: config.json + model.safetensors) alone;
    returns it in eval mode.

    The metadata is available as `model.visionfit_meta` (class names, preset, metrics).
    trust_code=True allows a file whose architecture is a `package.module:Class`: loading it
    imports that module, which runs its code, so pass it only for files you trust.
    """
    meta, shapes, weights = _read_header(path)
    source = str(Path(path) / FOLDER_CONFIG) if Path(path).is_dir() else str(path)  # what described the model
    model = build_described(meta["architecture"], len(meta["class_names"]), meta["in_channels"],
                            meta.get("model_args", {}), shapes, source, trust_code)
    return _filled(model, meta, weights, device)


def load_into(model: nn.Module, path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Fill `model` (of the file's architecture) with a model file's weights and metadata; returns
    it in eval mode. For a module built with arguments the file cannot record (torchvision's
    ResNet takes its block type), which load_model cannot rebuild."""
    meta, _, weights = _read_header(path)
    return _filled(model, meta, weights, device)


def _filled(model: nn.Module, meta: dict, weights: Path, device) -> nn.Module:
    try:
        safetensors.torch.load_model(model, str(weights), strict=True, device=str(device))
    except Exception as error:  # safetensors raises its own types for a file that changed since its header was read
        raise ModelError(f"{weights}: cannot load its tensors ({error}); the file is corrupt or was edited") from error
    model.visionfit_meta = meta
    return model.to(device).eval()


def save_resume_state(run_dir: str | Path, state: dict, keep_previous: bool) -> None:
    """Write run_dir/last.ckpt; with keep_previous, the last.ckpt it replaces becomes previous.ckpt.

    Pass keep_previous only for a last.ckpt known to be good (this process wrote it), or a
    damaged one could push out the good previous.ckpt. At every moment one complete
    checkpoint exists: the new state is written in full to a temporary file first, then
    two renames, each atomic, run back to back. Killed before the first, last.ckpt is as
    it was; between the two, last.ckpt is missing and previous.ckpt is the complete old
    one, which load_resume_state falls back to; after the second, both are complete.
    """
    last = Path(run_dir) / LAST_STATE
    with atomic_path(last) as tmp:
        torch.save(state, tmp)
        if keep_previous and last.exists():
            os.replace(last, last.with_name(PREVIOUS_STATE))


def load_resume_state(run_dir: str | Path) -> dict:
    """The resume state of a run: last.ckpt, or previous.ckpt (said on stderr) when last.ckpt is damaged."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir} is not a run directory; pass a folder `visionfit train` wrote, such as runs/exp")
    try:
        return read_resume_state(run_dir / LAST_STATE)
    except ModelError as last_error:
        try:
            state = read_resume_state(run_dir / PREVIOUS_STATE)
        except ModelError as previous_error:
            raise ModelError(f"cannot resume {run_dir}: {last_error}, and {previous_error}; start a new run without "
                             f"--resume, or from these weights with --weights {run_dir / 'last.safetensors'}") from None
        print(f"{last_error}; resuming from {PREVIOUS_STATE} (epoch {state['epoch'] + 1})", file=sys.stderr)
        return state


def read_resume_state(path: Path) -> dict:
    """One resume checkpoint, checked to hold every key with the right type; ModelError says why not."""
    if not path.is_file():
        raise ModelError(f"{path} is missing")
    try:
        with warnings.catch_warnings():  # a damaged file also sets off pickle-protocol warnings: noise here
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # damaged bytes raise RuntimeError, EOFError, KeyError, IndexError... (fuzzed)
        raise ModelError(f"{path} is unreadable ({_reason(error)})") from error
    problem = _resume_state_problem(state)
    if problem:
        raise ModelError(f"{path} is unreadable ({problem})")
    return state


def _resume_state_problem(state) -> str | None:
    """What is wrong with a loaded resume state, or None."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dict"
    for key, kind in RESUME_KEYS.items():
        if not isinstance(state.get(key), kind):
            return f"'{key}' is missing or not of type {kind.__name__}"
    if state["epoch"] < 0:
        return "'epoch' is negative"
    if not all(isinstance(t, torch.Tensor) for t in state["model"].values()):
        return "'model' holds something other than tensors"
    if "ema" in state:
        return _ema_state_problem(state["ema"])
    return None


def _ema_state_problem(ema) -> str | None:
    if not isinstance(ema, dict):
        return "'ema' is not a dict"
    for key, kind in EMA_KEYS.items():
        if not isinstance(ema.get(key), kind) or isinstance(ema.get(key), bool):
            return f"'ema' has no '{key}' of type {kind.__name__}"
    if ema["steps"] < 0:
        return "'ema' has a negative step count"
    if not all(isinstance(t, torch.Tensor) for t in ema["weights"].values()):
        return "'ema' weights hold something other than tensors"
    return None


def _reason(error: Exception) -> str:
    """torch.load's complaint in one short phrase. Its weights_only refusal runs to paragraphs
    of advice (with terminal colours) around the one line that says what it refused."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    if "WeightsUnpickler error:" in message:
        refused = message.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        return f"the weights-only loader refused it: {refused.split('. ')[0]}"
    first = message.strip().splitlines()[0].split(". ")[0][:200] if message.strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; train one with `visionfit train` (it writes runs/<name>/best.safetensors)")
    return path
