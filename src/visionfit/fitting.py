"""`visionfit.fit`: data + model + config in, a trained run directory out.

    result = visionfit.fit(model="lenet", data="digits/", epochs=5, lr=0.1)
    result.run_dir / "best.safetensors"
    visionfit.fit(resume="runs/exp", epochs=20)          # continue, or extend, a run

Resolve, then run: the config is validated and frozen, the data and the starting weights
settle the rest into one `Resolved` value (resolve.py), and training reads only that.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from torch import nn

from . import progress
from .checkpoints import load_resume_state
from .config import Config
from .data.plan import InputPlan, plan_input
from .data.prepare import PreparedData, prepare_data, require_training_data, resolve_splits
from .data.samples import DatasetSplits
from .errors import ConfigError
from .files import write_text_atomic
from .models import natural_input
from .models.partial import LoadReport, load_weights
from .models.safety import build_described
from .models.transfer import model_classes, replace_head
from .models.weights import WeightSource, weight_source
from .resolve import ModelSpec, RecipeChoice, model_spec, resolve, resolve_recipe, saved_plan, task_settings
from .train.distributed import Distributed
from .train.elastic import attempt_key, earlier_attempt, is_restart, mark_attempt
from .train.lr_run import AUTO, LRFinding, find_run_lr, with_found_lr
from .train.run_dir import check_project, create_run_dir
from .train.session import FitResult, start_session, train_resolved, writing

DEFAULT_MODEL = "lenet_relu"
DEFAULT_MODULE_SIZE = 224  # the input side assumed for a module that does not say its own
# What --resume may change, and why each is safe: none alters the data, the model or the optimisation so far.
RESUME_OPTIONS = ("epochs", "device", "workers", "patience", "quiet")


def fit(model: str | nn.Module | None = None, data=None, *, resume: str | Path | None = None,
        trust_code: bool = False, **options) -> FitResult:
    """Train `model` (a registry name or an nn.Module; default lenet_relu) on `data` (a path, a
    dataset name, a DatasetSplits, or None for the embedded MNIST sample). Options are the config
    fields (`visionfit train --help` lists them), e.g. epochs=5, lr=0.1, optimizer="adamw".

    resume=RUN continues the run in that folder with its recorded settings; only RESUME_OPTIONS
    may change (epochs=N extends a finished run). trust_code=True allows a `package.module:Class`
    model named in a file (the run's record) to be imported.
    """
    with progress.quiet(bool(options.get("quiet"))):  # --quiet: no bars while scanning, decoding, caching, training
        if resume is not None:
            if model is not None:
                raise ConfigError("--resume continues a run with the model it recorded; drop --model")
            return _resume(Path(resume), data, options, trust_code)
        module = model if isinstance(model, nn.Module) else None
        config = Config.from_options(model=architecture_name(model or DEFAULT_MODEL), data=data, **options)
        config, recipe = resolve_recipe(config)  # before anything reads the config: no field is None after it
        return _fresh(config, module, recipe)


def _fresh(config: Config, module: nn.Module | None, recipe: RecipeChoice) -> FitResult:
    dist, device = start_session(config)
    check_project(config.run.project, data_folders=(config.data.data, config.data.val_data))
    earlier = _earlier_attempt(config, dist)
    if earlier is not None and any((earlier / name).is_file() for name in ("last.ckpt", "previous.ckpt")):
        # The same command line that started the run: its model name is the user's, not the file's.
        data = config.data.data if not isinstance(config.data.data, (str, type(None))) else None
        return _resume(earlier, data, {}, trust_code=True)
    parts = prepare_run(config, module, dist, recipe, device)
    run_dir = earlier or create_run_dir(Path(config.run.project), config.run.name, dist)
    key = attempt_key()
    if key is not None and dist.is_main:
        mark_attempt(run_dir, key)
    with writing(run_dir, dist):
        config, found = _settle_lr(config, parts, device, dist, run_dir)
        resolved = resolve(config, parts.plan, parts.prepared, parts.spec, run_dir, recipe=recipe,
                           notes=(found.note(),) if found else (), lr_finder=found.record() if found else None)
        if dist.is_main:
            write_text_atomic(run_dir / "config.yaml", _yaml(resolved.record()))
            if parts.report is not None:
                parts.report.write(run_dir)
        return train_resolved(resolved, parts.net, parts.prepared, dist, device)


@dataclass
class RunParts:
    """What a fresh run trains: its input plan, decoded data, model spec and net (weights loaded)."""

    plan: InputPlan
    prepared: PreparedData
    spec: ModelSpec
    net: nn.Module
    report: LoadReport | None  # how the starting weights loaded, when some were asked for


def prepare_run(config: Config, module: nn.Module | None, dist: Distributed,
                recipe: RecipeChoice | None = None, device=None) -> RunParts:
    """The data and the model a config asks for, as `train` and `lr-find` both build them."""
    splits = resolve_splits(config.data, config.train.seed)
    require_training_data(splits)
    task_settings(config, splits.multi_label, recipe)  # settings the task cannot honour are refused before any decoding
    source = _weight_source(config, module)
    weights = source.preprocessing if source else None
    plan = plan_input(config.data, splits.train, _natural_size(config, module), weights)
    prepared = prepare_data(config.data, splits, plan, device)
    spec = model_spec(config, plan, splits.num_classes, source.model_args if source else None,
                      source.origin if source else None)
    net, report = _model(spec, module, source, config, dist)
    return RunParts(plan, prepared, spec, net, report)


def _settle_lr(config: Config, parts: RunParts, device, dist: Distributed, run_dir: Path) -> tuple[Config, LRFinding | None]:
    """--lr auto: the LR finder's suggestion becomes the run's lr (its plot goes in the run folder)."""
    if config.train.lr != AUTO:
        return config, None
    found = find_run_lr(parts.net, parts.prepared, config, device, dist, run_dir)
    return with_found_lr(config, found), found


def _resume(path: Path, data, overrides: dict, trust_code: bool) -> FitResult:
    """Continue the run in `path` (a run directory or its last.ckpt) from its recorded settings.

    `data` is only needed when the run was given in-memory data (a DatasetSplits object).
    """
    run_dir = path.parent if path.suffix == ".ckpt" else path
    in_memory = isinstance(data, DatasetSplits)  # a run on in-memory data recorded only its name
    refused = sorted(set(overrides) - set(RESUME_OPTIONS)) + (["data"] if data is not None and not in_memory else [])
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        allowed = ", ".join("--" + name for name in RESUME_OPTIONS)
        raise ConfigError(f"--resume keeps the run's recorded settings; {flags} cannot change "
                          f"(only {allowed} can). Start a new run to change the others")
    state = load_resume_state(_checked_run_dir(run_dir))
    record = state["config"]
    config = Config.from_dict(record).replace(project=str(run_dir.parent), name=run_dir.name, **overrides)
    if data is not None:
        config = config.replace(data=data)
    config, recipe = resolve_recipe(config)  # a record holds resolved values already; an older one may not
    done = state["epoch"] + 1
    if done >= config.train.epochs:
        raise ConfigError(f"{run_dir} already finished {done} epochs, all that --epochs {config.train.epochs} "
                          f"asks for; give a larger --epochs to train longer")
    plan, spec, class_names = saved_plan(record)
    recipe = RecipeChoice.from_record(record["resolved"].get("recipe")) or recipe  # how the run chose them
    net = _saved_net(spec, state["model"], run_dir, trust_code)
    dist, device = start_session(config)
    with writing(run_dir, dist):
        splits = resolve_splits(config.data, config.train.seed)
        require_training_data(splits)
        prepared = prepare_data(config.data, splits, plan, device)
        _same_classes(run_dir, class_names, prepared)
        found = record["resolved"].get("lr_finder")  # --lr auto: the record's lr is the finder's, kept as found
        resolved = resolve(config, plan, prepared, spec, run_dir, notes=(f"resumed after epoch {done}",), recipe=recipe,
                           lr_finder=found if isinstance(found, dict) else None)
        if dist.is_main:
            write_text_atomic(run_dir / "config.yaml", _yaml(resolved.record()))
        return train_resolved(resolved, net, prepared, dist, device, state)


def _earlier_attempt(config: Config, dist: Distributed) -> Path | None:
    """Under `torchrun --max-restarts`, the folder the first attempt of this command made (see train/elastic.py)."""
    key = attempt_key()
    if key is None or not is_restart():
        return None
    found = earlier_attempt(Path(config.run.project), key) if dist.is_main else None
    found = dist.broadcast_object(str(found) if found else None)
    if found and dist.is_main:
        print(f"torchrun restarted the workers: continuing {found}", file=sys.stderr)
    return Path(found) if found else None


def _checked_run_dir(run_dir: Path) -> Path:
    """The run folder, when it has a checkpoint (last.ckpt or previous.ckpt); a run stopped
    before its first epoch ended has none: say how to start again."""
    checkpoints = [run_dir / name for name in ("last.ckpt", "previous.ckpt")]
    if not any(path.is_file() for path in checkpoints) and (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} stopped before its first epoch ended, so there is nothing to resume; "
                          f"start it again with `visionfit train --config {run_dir / 'config.yaml'}`")
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run folder; give a folder made by `visionfit train` "
                          "(runs/<name>)")
    return run_dir


def _same_classes(run_dir: Path, class_names: tuple[str, ...], prepared: PreparedData) -> None:
    """A resumed run must see the classes it started with (its preprocessing is the recorded one)."""
    if tuple(prepared.splits.class_names) != class_names:
        raise ConfigError(f"the data of {run_dir} changed since the run started: classes are now "
                          f"{prepared.splits.class_names[:10]}, were {list(class_names)[:10]}; start a new run")


def architecture_name(model) -> str:
    """A name load_model can rebuild from: the registry name, or the module's import path."""
    if isinstance(model, nn.Module):
        if hasattr(model, "visionfit_spec"):
            return model.visionfit_spec["architecture"]
        cls = type(model)
        return f"{cls.__module__}:{cls.__qualname__}"
    return model


def _natural_size(config: Config, module: nn.Module | None) -> int:
    """The architecture's own input side: the default --image-size."""
    if module is not None and not hasattr(module, "visionfit_spec"):
        return DEFAULT_MODULE_SIZE
    return natural_input(config.model.model)[1]


def _weight_source(config: Config, module: nn.Module | None) -> WeightSource | None:
    """The starting weights asked for (--pretrained / --weights), or None."""
    if module is not None and config.model.pretrained:
        raise ConfigError("--pretrained needs a model name (e.g. resnet18, timm:efficientnet_lite0); "
                          "load weights into your module before fit(), or pass weights=PATH")
    return weight_source(config.model)


def _model(spec: ModelSpec, module: nn.Module | None, source: WeightSource | None, config: Config,
           dist: Distributed) -> tuple[nn.Module, LoadReport | None]:
    """The net to train, with its starting weights loaded (and reported) when asked for."""
    if module is not None:
        net = module
        if model_classes(net) not in (None, spec.num_classes):
            replace_head(net, spec.num_classes, config.model.init)  # a net made for other classes
    else:
        net = spec.build()
    if source is None:
        return net, None
    report = load_weights(net, source, config.model.strict)
    if dist.is_main:
        print(report.text(), file=sys.stderr)
    return net, report


def _saved_net(spec: ModelSpec, weights: dict, run_dir: Path, trust_code: bool) -> nn.Module:
    """The net a checkpoint describes, with its weights: the record is a file, so its architecture
    name and arguments are checked, and its tensors must fit a skeleton built on the meta device,
    before anything is imported or allocated (models/safety.py)."""
    shapes = {key: tuple(tensor.shape) for key, tensor in weights.items()}
    net = build_described(spec.architecture, spec.num_classes, spec.in_channels, spec.args, shapes,
                          str(run_dir / "last.ckpt"), trust_code)
    net.load_state_dict(weights)  # before any features are cached from the backbone
    return net


def _yaml(record: dict) -> str:
    return yaml.safe_dump(record, sort_keys=False)
