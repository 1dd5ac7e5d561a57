"""Load what fits from a state_dict into a model, and say exactly what did not.

The seeds do this by hand: filter the pretrained dict to the keys the model has, then
model_dict.update(pretrained_dict). Here each checkpoint tensor is paired with a model
entry (by name, or by position with mapping="order" when the names differ) and sorted:

  loaded      same shape: copied
  adapted     the first conv's weights for another number of input planes (timm's adapt_input_conv)
  head        the classification layer, sized for other classes: left as initialised
  mismatched  any other shape difference: left as initialised
  missing     model entries the checkpoint has nothing for
  unexpected  checkpoint entries the model has no place for

    report = load_weights(net, source, strict=False)
    print(report.text()); report.write(run_dir)     # weights_report.txt / .json
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .transfer import head_keys
from .weights import WeightSource

SHOWN_PER_KIND = 6  # names listed per line of the text report; the JSON has them all


@dataclass
class LoadReport:
    origin: str
    mapping: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """What --strict refuses: anything but a replaced head left unloaded or unused."""
        return self.mismatched + self.missing + self.unexpected

    def text(self) -> str:
        lines = [f"weights: {self.origin} (matched by {self.mapping})"]
        for kind in ("loaded", "adapted", "head", "mismatched", "missing", "unexpected"):
            names = getattr(self, kind)
            shown = ", ".join(names[:SHOWN_PER_KIND]) + (f", ... (+{len(names) - SHOWN_PER_KIND})"
                                                         if len(names) > SHOWN_PER_KIND else "")
            lines.append(f"  {kind:<11}{len(names):>5}  {shown if kind != 'loaded' else ''}".rstrip())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, run_dir: Path) -> None:
        from ..files import atomic_path

        for name, content in (("weights_report.txt", self.text() + "\n"),
                              ("weights_report.json", json.dumps(self.to_dict(), indent=2))):
            with atomic_path(run_dir / name) as tmp:
                tmp.write_text(content)


def load_weights(model: nn.Module, source: WeightSource, strict: bool = False) -> LoadReport:
    """Copy what fits from `source` into `model` (in place) and report on every tensor.

    strict=True raises ModelError with the report unless only the head was left out.
    Loading nothing at all is always an error: the checkpoint is for another model.
    """
    target = model.state_dict()
    pairs, missing, unexpected = _pair(source.state_dict, target, source.mapping)
    report = LoadReport(source.origin, source.mapping, missing=missing, unexpected=unexpected)
    head, stem = head_keys(model), _stem_key(model)
    updates = {}
    for key, ckpt_key, tensor in pairs:
        kind, value = _classify(key, tensor, target[key], head, stem)
        if value is not None:
            updates[key] = value
        label = key if key == ckpt_key else f"{key} <- {ckpt_key}"
        getattr(report, kind).append(label if kind in ("loaded", "head") else f"{label} {_shapes(tensor, target[key])}")
    report.head += [key for key in missing if key in head]
    report.missing = [key for key in missing if key not in head]
    _check(report, model, strict)
    model.load_state_dict(updates, strict=False)
    return report


def _pair(state: dict, target: dict, mapping: str) -> tuple[list, list[str], list[str]]:
    """[(model key, checkpoint key, tensor)], model keys left over, checkpoint keys left over."""
    if mapping == "order":
        # Position i of the checkpoint goes to position i of the model; the longer tail is left over.
        ckpt, model = list(state.items()), list(target)
        n = min(len(ckpt), len(model))
        pairs = [(model[i], ckpt[i][0], ckpt[i][1]) for i in range(n)]
        return pairs, model[n:], [key for key, _ in ckpt[n:]]
    pairs = [(key, key, tensor) for key, tensor in state.items() if key in target]
    return pairs, [key for key in target if key not in state], [key for key in state if key not in target]


def _classify(key: str, tensor: torch.Tensor, current: torch.Tensor, head: set, stem: str | None):
    """(report kind, value to load or None) for one checkpoint tensor paired with model entry `key`."""
    from timm.models import adapt_input_conv  # here, not at the top: importing timm takes seconds

    if tensor.shape == current.shape:
        return "loaded", tensor
    if key == stem and tensor.ndim == 4 and tensor.shape[0] == current.shape[0] and tensor.shape[2:] == current.shape[2:]:
        return "adapted", adapt_input_conv(current.shape[1], tensor.float()).to(current.dtype)
    return ("head" if key in head else "mismatched"), None


def _shapes(tensor: torch.Tensor, current: torch.Tensor) -> str:
    return f"(checkpoint {tuple(tensor.shape)}, model {tuple(current.shape)})"


def _stem_key(model: nn.Module) -> str | None:
    """The first conv's weight: the one tensor that may be adapted to another channel count."""
    name = next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    return None if name is None else f"{name}.weight"


def _check(report: LoadReport, model: nn.Module, strict: bool) -> None:
    arch = type(model).__name__
    if not report.loaded and not report.adapted:
        hint = "" if report.mapping == "order" else "; if only the names differ, try --weights-mapping order"
        raise ModelError(f"{report.origin}: no tensor fits {arch}{hint}\n{report.text()}")
    if strict and report.problems:
        raise ModelError(f"--strict: {len(report.problems)} tensors of {report.origin} do not fit {arch}; "
                         f"drop --strict to load what matches\n{report.text()}")
