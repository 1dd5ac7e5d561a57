"""Resolve, then run: the frozen Config, the data and the starting weights become one value.

    config, recipe = resolve_recipe(config)                                # first: fills every None
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
from .data.plan import InputPlan
from .data.prepare import PreparedData
from .data.transforms import Preset
from .errors import ConfigError
from .models import apply_init, create_model, model_args_for_input
from .models.recipes import RECIPE_DEFAULTS, RECIPE_FIELDS, Recipe, named_recipe, own_recipe
from .train.mixing import mixing_enabled

UNSET_SOURCES = {"flip": "no recipe sets it: the data and --augment decide (photos flip, small images do not)",
                 "pad": "no recipe sets it: the data and --augment decide (an eighth of a small image's side)"}
MAX_RECIPE_WARMUP = 0.2  # a recipe's warmup takes at most this fraction of the run (a short run keeps most of its lr)
FROZEN_BACKBONE_DEFAULT = "frozen backbone default"  # where a frozen backbone's cacheable training view came from
AUGMENTATION_FIELDS = ("augment", "pad", "flip")  # the recipe fields that say how training augments (and --rotation)


@dataclass(frozen=True)
class RecipeChoice:
    """Which recipe the run trains with, and where each recipe field's value came from."""

    name: str  # e.g. "d2l (lenet's own)", "timm-small (--recipe)"
    sources: dict  # config field -> why it has its value ("your setting", "recipe d2l: ...")

    def to_dict(self) -> dict:
        return {"name": self.name, "sources": dict(self.sources)}

    @classmethod
    def from_record(cls, record) -> "RecipeChoice | None":
        """A run's recorded choice (config.yaml is a file: plain strings or nothing)."""
        if not (isinstance(record, dict) and isinstance(record.get("name"), str)
                and isinstance(record.get("sources"), dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in record["sources"].items())):
            return None
        return cls(record["name"], dict(record["sources"]))


def resolve_recipe(config: Config) -> tuple[Config, RecipeChoice]:
    """A complete Config: each recipe field (models/recipes.py RECIPE_FIELDS) the user left None
    takes the --recipe's value, else the model's own recipe's, else RECIPE_DEFAULTS'; what no
    layer sets (flip, pad: the data decides) stays None. A backbone that stays frozen trains on
    the cacheable view unless augmentation was asked for (_frozen_backbone_view). Nothing after
    this sees a None epochs or lr."""
    model = config.model.model
    own = own_recipe(model)
    chosen = named_recipe(config.train.recipe, model) if config.train.recipe else None
    layers = [chosen] if chosen else []
    layers += [own, RECIPE_DEFAULTS] if own is not RECIPE_DEFAULTS else [RECIPE_DEFAULTS]
    given = config.flat()
    values, sources = {}, {}
    for name in RECIPE_FIELDS:
        if given[name] is not None:
            sources[name] = "your setting"
            continue
        layer = next((recipe for recipe in layers if name in recipe.values), None)
        if layer is not None:
            values[name], sources[name] = layer.values[name], f"recipe {layer.name}: {layer.why}"
        else:
            sources[name] = UNSET_SOURCES.get(name, "no recipe sets it: off")
    values, sources = _capped_warmup(config, values, sources)
    _require_room_to_unfreeze(config, values)  # before anything validates the layered values in --unfreeze-after's words
    values, sources = _frozen_backbone_view(config, values, sources, chosen)
    title = f"{config.train.recipe} (--recipe)" if config.train.recipe else (
        f"{own.name} ({model}'s own)" if own is not RECIPE_DEFAULTS else f"{own.name} (no recipe of its own)")
    return config.replace(**values), RecipeChoice(title, sources)


def _require_room_to_unfreeze(config: Config, values: dict) -> None:
    """A recipe that unfreezes after K epochs (finetune) needs more than K: say so in its words,
    not in those of --unfreeze-after, which the user never typed."""
    after, epochs = values.get("unfreeze_after"), values.get("epochs", config.train.epochs)
    if after is not None and epochs is not None and epochs <= after:
        raise ConfigError(f"--recipe {config.train.recipe or 'of ' + config.model.model} trains the new head for "
                          f"{after} epoch{'s' if after != 1 else ''} with the backbone frozen, then the whole net: "
                          f"give --epochs {after + 1} or more (not {epochs})")


def _frozen_backbone_view(config: Config, values: dict, sources: dict,
                          chosen: Recipe | None) -> tuple[dict, dict]:
    """A backbone that stays frozen trains on the view whose features can be cached (train/features.py):
    no random crop (pad 0: small images are squashed, photos take their eval view) and no
    per-image ops; flip stays as the data decides (photos flip: both orientations are cached).

    Only where nobody asked for augmentation: not the user (--augment, --pad, --flip, --rotation)
    nor a --recipe the user chose that sets them. The model's own recipe and RECIPE_DEFAULTS do
    not count: they say how to train a whole net, which a frozen one is not. --no-cache-features
    and MixUp/CutMix keep the recipe's augmentation, since those runs train on images anyway."""
    final = config.replace(**values)
    model, train, data = final.model, final.train, final.data
    if (model.freeze != "backbone" or train.unfreeze_after is not None or train.cache_features is False
            or mixing_enabled(train) or data.rotation or data.augment == "none" or data.pad == 0):
        return values, sources  # not frozen for good, not cacheable anyway, or no random crop already (d2l's)
    if any(sources[name] == "your setting" or (chosen and name in chosen.values) for name in AUGMENTATION_FIELDS):
        return values, sources
    why = (f"{FROZEN_BACKBONE_DEFAULT}: no random crop (photos: no random resized crop), so the frozen backbone's "
           f"features are computed once; --augment light trains on random crops instead")
    sources = {**sources, "pad": why}
    if data.augment != "light":  # medium/strong's per-image ops would make every epoch's features new
        sources["augment"] = f"{FROZEN_BACKBONE_DEFAULT}: light, not {data.augment}, so features can be cached"
    return {**values, "augment": "light", "pad": 0}, sources


def _capped_warmup(config: Config, values: dict, sources: dict) -> tuple[dict, dict]:
    """A recipe's warmup shrinks to a fifth of a short run; the user's stays as given (and is checked)."""
    warmup, epochs = values.get("warmup_epochs"), values.get("epochs", config.train.epochs)
    if warmup is None or warmup <= MAX_RECIPE_WARMUP * epochs:
        return values, sources
    capped = round(MAX_RECIPE_WARMUP * epochs, 3)
    sources = {**sources, "warmup_epochs": f"{sources['warmup_epochs']} (its {warmup:g} epochs capped to a fifth "
                                           f"of the {epochs} epochs)"}
    return {**values, "warmup_epochs": capped}, sources


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
    recipe: RecipeChoice | None = None  # the training recipe and where each of its values came from
    multi_label: bool = False  # a set of classes per image: sigmoid head, BCE (train/multilabel.py)
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
            "recipe": self.recipe.to_dict() if self.recipe else None,
            "multi_label": self.multi_label,
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
            "multi_label": self.multi_label,  # the Checkpointer adds its "thresholds" each epoch
        }


def resolve(config: Config, plan: InputPlan, prepared: PreparedData, spec: ModelSpec, run_dir: Path,
            notes: tuple[str, ...] = (), recipe: RecipeChoice | None = None, lr_finder: dict | None = None) -> Resolved:
    """The one place the run's spec is assembled; see the module docstring."""
    splits = prepared.splits
    config, task_notes = task_settings(config, splits.multi_label, recipe)
    return Resolved(config, plan, prepared.preset, spec, tuple(splits.class_names), splits.name, run_dir,
                    plan.notes + prepared.notes + task_notes + tuple(notes), recipe, splits.multi_label, lr_finder)


# What a multi-label run cannot do yet: (config section, field, its "off" value, the flag that turns it on).
NOT_MULTI_LABEL = (("train", "class_weights", "none", "--class-weights"),
                   ("data", "sampler", "shuffle", "--sampler balanced"),
                   ("train", "mixup", 0.0, "--mixup"), ("train", "cutmix", 0.0, "--cutmix"))


def task_settings(config: Config, multi_label: bool,
                  recipe: RecipeChoice | None = None) -> tuple[Config, tuple[str, ...]]:
    """The config with --monitor decided (map for multi-label data, else val_acc), what the run
    says about it, and a ConfigError for settings the task cannot honour. A single-label-only
    setting that a recipe (not the user) turned on is turned off for multi-label data, and said."""
    monitor, notes = config.train.monitor, ()
    if multi_label:
        for section, name, off, flag in NOT_MULTI_LABEL:
            if getattr(getattr(config, section), name) in (off, None):  # None: a recipe fills it later
                continue
            if recipe is not None and recipe.sources.get(name, "your setting") != "your setting":
                config = config.replace(**{name: off})
                notes += (f"{flag} off: recipe {recipe.name} sets it, and it is for single-label data",)
                continue
            raise ConfigError(f"{flag} is for single-label data; this CSV is multi-label (tags) - drop {flag}")
        if monitor == "balanced_acc":
            raise ConfigError("--monitor balanced_acc is for single-label data; use map, macro_f1, val_acc "
                              "(exact match) or val_loss for multi-label")
    elif monitor == "map":
        raise ConfigError("--monitor map is for multi-label data; use val_acc, val_loss, macro_f1 or balanced_acc")
    if monitor is None:
        config = config.replace(monitor="map" if multi_label else "val_acc")
    if not multi_label:
        return config, ()
    why = "--multi-label" if config.data.multi_label else "a tags/labels column, or one 0/1 column per class"
    return config, (f"multi-label ({why}): a sigmoid per class, binary cross-entropy; per-class thresholds "
                    f"chosen on validation for the best F1; best model by {config.train.monitor}", *notes)


def saved_plan(record: dict) -> tuple[InputPlan, ModelSpec, tuple[str, ...]]:
    """The input plan (with its measured statistics), model spec and class names a run
    recorded (`record()`), for resuming it with exactly that spec. A record from before a plan
    field existed gets the field's default (no presize: photos stored whole, as that run did)."""
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
