"""Self-describing model files and resume checkpoints, written atomically, loaded safely.

A model file (`best.safetensors`) is safetensors weights plus JSON metadata: the
architecture and its arguments, class names in index order, the preprocessing preset,
the visionfit version and the run's metrics. `load_model` rebuilds the net from it alone.

A resume checkpoint (`last.ckpt`) is a torch file of tensors and plain containers only,
so `torch.load(weights_only=True)` reads it: nothing is ever unpickled. The one it
replaced is kept as `previous.ckpt`, which a resume falls back to when last.ckpt is damaged.
"""
import json
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

FORMAT = "visionfit-model/1"
META_KEY = "visionfit"
LAST_STATE, PREVIOUS_STATE = "last.ckpt", "previous.ckpt"
RESUME_KEYS = {"epoch": int, "model": dict, "optimizer": dict, "scheduler": dict, "scaler": dict, "history": list,
               "best_score": float, "config": dict}


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
