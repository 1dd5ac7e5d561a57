"""`visionfit summary`: each layer's output shape, parameters, MACs and size, for a name or a model file.

    print(visionfit.summary("resnet18", input_size=(1, 3, 224, 224)).format())
    visionfit.summary("runs/exp/best.safetensors").total_macs

The seeds print `layer.__class__.__name__, 'output shape', X.shape` in a loop over an
nn.Sequential; forward hooks do the same for any model, nested or not. MACs come from
torch.utils.flop_counter (2 FLOPs per multiply-accumulate), so convolutions, linear layers
and functional matmuls inside attention blocks all count, each under the module that ran it.
"""
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..checkpoints import load_model
from ..errors import ConfigError, ModelError
from ..models import create_model, natural_input
from ..models.registry import model_args_for_input
from ..models.safety import MAX_IMAGE_SIDE
from .text import format_table


@dataclass
class LayerRow:
    name: str  # module path, e.g. layer1.0.conv1
    kind: str  # class name, e.g. Conv2d
    output_shape: str
    trainable: int  # the module's own parameters (not its children's)
    frozen: int
    macs: int  # multiply-accumulates of this module's own operations, all calls
    size_mb: float  # its own parameters' bytes / 1e6


@dataclass
class ModelSummary:
    model_name: str
    input_size: tuple[int, ...]
    rows: list[LayerRow]
    trainable: int
    frozen: int
    total_macs: int
    size_mb: float  # parameters and buffers

    def format(self) -> str:
        body = [[r.name, r.kind, r.output_shape, f"{r.trainable:,}", f"{r.frozen:,}", human(r.macs), f"{r.size_mb:.3f}"]
                for r in self.rows]
        table = format_table(["layer", "type", "output shape", "trainable", "frozen", "MACs", "MB"], body,
                             right={3, 4, 5, 6})
        shape = "x".join(map(str, self.input_size))
        total = (f"{self.model_name}: {self.trainable + self.frozen:,} parameters ({self.trainable:,} trainable, "
                 f"{self.frozen:,} frozen), {human(self.total_macs)}MACs for input {shape}, {self.size_mb:.2f} MB")
        return f"{table}\n{total}"


def human(count: float) -> str:
    """1_820_000_000 -> '1.82 G', 416_520 -> '416.52 K'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.0f} "


def summary(model_or_name, input_size: tuple[int, ...] | None = None, num_classes: int | None = None,
            model_args: dict | None = None, trust_code: bool = False) -> ModelSummary:
    """The layer table of a model name, a model file, or a module, at `input_size` (N, C, H, W).

    Without input_size: the model file's input, or the architecture's natural one at batch 1.
    A name is built with num_classes outputs (default: 1000 for torchvision / timm, 10 for classic nets).
    trust_code: allow a model file whose architecture is code outside visionfit (see load_model).
    """
    if input_size is not None and len(input_size) < 2:
        raise ConfigError(f"input size {tuple(input_size)} needs a batch dimension first, e.g. 1,3,224,224")
    model, label, input_size = _model_and_input(model_or_name, input_size, num_classes, dict(model_args or {}),
                                                trust_code)
    model.eval()
    rows, total_macs = _trace(model, input_size, label)
    parameters = list(model.parameters())
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    frozen = sum(p.numel() for p in parameters if not p.requires_grad)
    size = sum(t.numel() * t.element_size() for t in [*parameters, *model.buffers()]) / 1e6
    return ModelSummary(label, tuple(input_size), rows, trainable, frozen, total_macs, size)


def _model_and_input(model_or_name, input_size, num_classes, model_args, trust_code) -> tuple[nn.Module, str, tuple]:
    if isinstance(model_or_name, nn.Module):
        meta = getattr(model_or_name, "visionfit_meta", None)
        if input_size is None and meta is None:
            raise ConfigError("summary of a module needs input_size=(N, C, H, W)")
        return model_or_name, type(model_or_name).__name__, tuple(input_size or _meta_input(meta))
    if Path(model_or_name).suffix == ".safetensors" or Path(model_or_name).is_file():
        model = load_model(model_or_name, trust_code=trust_code)
        return model, str(model_or_name), tuple(input_size or _meta_input(model.visionfit_meta))
    name = str(model_or_name)
    channels, side = natural_input(name)
    input_size = tuple(input_size or (1, channels, side, side))
    if len(input_size) != 4:
        raise ConfigError(f"--input {','.join(map(str, input_size))} for model '{name}' must be N,C,H,W (e.g. 1,3,224,224)")
    if max(input_size[2:]) > MAX_IMAGE_SIDE:
        raise ConfigError(f"--input {','.join(map(str, input_size))}: images of at most {MAX_IMAGE_SIDE} px a side")
    args = model_args_for_input(name, input_size[2], model_args)
    return create_model(name, num_classes=num_classes, in_channels=input_size[1], **args), name, input_size


def _meta_input(meta: dict) -> tuple[int, int, int, int]:
    return 1, meta["in_channels"], meta["input_size"], meta["input_size"]


def _trace(model: nn.Module, input_size: tuple, label: str) -> tuple[list[LayerRow], int]:
    """One forward pass with hooks on every module: output shapes, then MACs per module."""
    shapes: dict[str, str] = {}
    names = {module: name for name, module in model.named_modules()}

    def record(module, _inputs, output):
        shapes.setdefault(names[module], _shape(output))  # first call; later calls of a shared module add MACs only

    handles = [module.register_forward_hook(record) for module in names]
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(input_size, device=next(model.parameters(), torch.empty(0)).device))  # where the model is
    except RuntimeError as error:
        raise ModelError(f"{label} cannot take input {tuple(input_size)}: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
    own_macs = _own_macs(model, counter)
    rows = [_row(name, model.get_submodule(name), shape, own_macs.get(name, 0))
            for name, shape in shapes.items() if name and _listed(model.get_submodule(name), own_macs.get(name, 0))]
    return rows, counter.get_total_flops() // 2


def _own_macs(model: nn.Module, counter: FlopCounterMode) -> dict[str, int]:
    """MACs of each module minus its children's: what its own forward code computed."""
    root = type(model).__name__
    totals = {key: sum(ops.values()) // 2 for key, ops in counter.get_flop_counts().items()}

    def total(name: str) -> int:
        return totals.get(f"{root}.{name}" if name else root, 0)

    return {name: total(name) - sum(total(f"{name}.{child}" if name else child) for child, _ in module.named_children())
            for name, module in model.named_modules()}


def _listed(module: nn.Module, own_macs: int) -> bool:
    """Leaves, and containers with parameters or computation of their own (e.g. attention's matmuls)."""
    has_own_parameters = any(True for _ in module.parameters(recurse=False))
    return not any(True for _ in module.children()) or has_own_parameters or own_macs > 0


def _row(name: str, module: nn.Module, shape: str, macs: int) -> LayerRow:
    own = list(module.parameters(recurse=False))
    return LayerRow(name, type(module).__name__, shape,
                    trainable=sum(p.numel() for p in own if p.requires_grad),
                    frozen=sum(p.numel() for p in own if not p.requires_grad),
                    macs=macs, size_mb=sum(p.numel() * p.element_size() for p in own) / 1e6)


def _shape(output) -> str:
    if isinstance(output, torch.Tensor):
        return str(list(output.shape))
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape(item) for item in output)
    return type(output).__name__
