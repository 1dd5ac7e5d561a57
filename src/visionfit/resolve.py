"""Resolve, then run: the frozen Config, the data and the starting weights become one value.

    plan = plan_input(config.data, splits.train, natural_size, weights)   # before decoding
    prepared = prepare_data(config.data, splits, plan)                     # decode once
    resolved = resolve(config, plan, prepared, model_spec(config, ...), run_dir)

`Resolved` is what the run actually uses: the preprocessing (storage, resize rule,
interpolation, crop, mean, std, channels), the model's final constructor arguments (input
size included), the class names in index order, where the weights came from, and the run
folder. Everything downstream reads it and nothing changes it. config.yaml holds the
config and this value (`record()`); a model file holds `model_meta()`; `--resume` reads
`from_record()` back, so a resumed run uses exactly the spec it started with.
"""
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from . import __version__
from .config import Config
from .data.prepare import InputPlan, PreparedData
from .data.transforms import Preset
from .errors import ConfigError
from .models import apply_init, create_model, model_args_for_input


@dataclass(frozen=True)
class ModelSpec:
    """How to build the net: everything create_model needs, as plain values."""

    architecture: str
    args: dict  # final constructor arguments
    num_classes: int
    in_channels: int
    init: str = "default"
    weights: str | None = None  # where the starting weights came from (--pretrained / --weights), or None

    def build(self) -> nn.Module:
        net = create_model(self.architecture, num_classes=self.num_classes, in_channels=self.in_channels, **self.args)
        return apply_init(net, self.init)


def model_spec(config: Config, plan: InputPlan, num_classes: int, weights_args: dict | None = None,
               weights_origin: str | None = None) -> ModelSpec:
    """The net's final arguments: the weights' own (e.g. transform_input for googlenet), the
    user's --model-args, and what the input size implies (models/ owns that rule)."""
    name = config.model.model
    args = model_args_for_input(name, plan.size, {**(weights_args or {}), **config.model.model_args})
    return ModelSpec(name, args, num_classes, plan.channels, config.model.init, weights_origin)


@dataclass(frozen=True)
class Resolved:
    config: Config
    plan: InputPlan
    preset: Preset
    model: ModelSpec
    class_names: tuple[str, ...]
    dataset: str
    run_dir: Path
    notes: tuple[str, ...] = ()  # what was decided and why, in the order it was decided
    lr_finder: dict | None = None  # --lr auto: what the LR finder found (the lr in `config` is its suggestion)

    def to_dict(self) -> dict:
        input_plan = dataclasses.asdict(self.plan)
        input_plan["stats"] = [list(self.preset.mean), list(self.preset.std)]  # what was measured, for resume
        return {
            "input": input_plan,
            "preprocess": self.preset.preprocess.describe(),
            "augmentation": self.preset.augmentation(),
            "model": dataclasses.asdict(self.model),
            "class_names": list(self.class_names),
            "dataset": self.dataset,
            "run_dir": str(self.run_dir),
            "notes": list(self.notes),
            **({"lr_finder": self.lr_finder} if self.lr_finder else {}),
        }

    def record(self) -> dict:
        """config.yaml and a checkpoint's "config": the settings asked for, then what they resolved to."""
        return {**self.config.to_dict(), "resolved": self.to_dict(), "visionfit_version": __version__}

    def model_meta(self) -> dict:
        """What a model file says about itself: enough to rebuild the net and feed it, alone."""
        return {
            "architecture": self.model.architecture,
            "model_args": dict(self.model.args),
            "class_names": list(self.class_names),
            "in_channels": self.preset.channels,
            "input_size": self.preset.size,
            "mean": list(self.preset.mean),
            "std": list(self.preset.std),
            "preprocess": self.preset.preprocess.describe(),
            "preset": self.preset.augmentation(),
            "visionfit_version": __version__,
            "dataset": self.dataset,
            "weights": self.model.weights,
        }


def resolve(config: Config, plan: InputPlan, prepared: PreparedData, spec: ModelSpec, run_dir: Path,
            notes: tuple[str, ...] = (), lr_finder: dict | None = None) -> Resolved:
    """The one place the run's spec is assembled; see the module docstring."""
    splits = prepared.splits
    return Resolved(config, plan, prepared.preset, spec, tuple(splits.class_names), splits.name, run_dir,
                    plan.notes + tuple(notes), lr_finder)


def saved_plan(record: dict) -> tuple[InputPlan, ModelSpec, tuple[str, ...]]:
    """The input plan (with its measured statistics), model spec and class names a run
    recorded (`record()`), for resuming it with exactly that spec."""
    try:
        saved = record["resolved"]
        values = dict(saved["input"])
        values["stats"] = tuple(tuple(v) for v in values["stats"])
        values["notes"] = tuple(values.get("notes", ()))
        values["store_shape"] = tuple(values["store_shape"]) if values["store_shape"] else None
        plan = InputPlan(**values)
        return plan, ModelSpec(**saved["model"]), tuple(saved["class_names"])
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"the run's recorded settings are incomplete or from another visionfit version "
                          f"({type(error).__name__}: {error}); start the run again") from error
