"""Self-describing model files and resume checkpoints, written atomically, loaded safely.

A model file (`best.safetensors`) is safetensors weights plus JSON metadata: the
architecture and its arguments, class names in index order, the preprocessing preset,
the visionfit version and the run's metrics. `load_model` rebuilds the net from it alone.

A resume checkpoint (`last.ckpt`) is a torch file of tensors and plain containers only,
so `torch.load(weights_only=True)` reads it: nothing is ever unpickled.
"""
import json
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

from .errors import ModelError
from .files import atomic_path

FORMAT = "visionfit-model/1"
META_KEY = "visionfit"


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
    """The metadata of a visionfit model file, without loading its weights."""
    path = _existing(path)
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as error:  # safetensors raises its own types for foreign/corrupt files
        raise ModelError(f"{path} is not a readable safetensors file ({error}); pass a visionfit model file such as runs/exp/best.safetensors") from error
    if raw is None:
        raise ModelError(f"{path} has no visionfit metadata; it is plain weights — use --weights {path} with --model NAME to load them into an architecture")
    return json.loads(raw)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a trained model from its file alone; returns it in eval mode.

    The metadata is available as `model.visionfit_meta` (class names, preset, metrics).
    """
    from .models import create_model

    meta = read_meta(path)
    model = create_model(meta["architecture"], num_classes=len(meta["class_names"]),
                         in_channels=meta["in_channels"], **meta.get("model_args", {}))
    missing, unexpected = safetensors.torch.load_model(model, str(_existing(path)), strict=False, device=str(device))
    if missing or unexpected:
        raise ModelError(f"{path} does not match architecture {meta['architecture']}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.visionfit_meta = meta
    return model.to(device).eval()


def save_resume_state(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_resume_state(path: str | Path) -> dict:
    return torch.load(_existing(path), map_location="cpu", weights_only=True)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; train one with `visionfit train` (it writes runs/<name>/best.safetensors)")
    return path
