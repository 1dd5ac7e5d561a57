"""`visionfit.fit`: data + model + config in, a trained run directory out.

    result = visionfit.fit(model="lenet", data="digits/", epochs=5, lr=0.1)
    result.run_dir / "best.safetensors"
"""
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .checkpoints import load_resume_state
from .config import Config
from .data.loader import BatchLoader
from .data.prepare import PreparedData, data_channels, prepare_data, require_training_data, resolve_splits
from .errors import ConfigError
from .models import MODELS, apply_init, create_model, natural_input
from .models.partial import LoadReport, load_weights
from .models.transfer import UnfreezeBackbone, freeze, model_classes, optimizer_groups, replace_head
from .models.weights import WeightSource, weight_source
from .train.callbacks import Checkpointer, EarlyStopping, MetricsLogger, ProgressPrinter, TensorBoardLogger, score
from .train.distributed import Distributed, init_distributed
from .train.features import HeadOnFeatures, cache_features_if_useful
from .train.optim import build_optimizer, build_scheduler
from .train.run_dir import create_run_dir, write_summary
from .train.trainer import Trainer


@dataclass
class FitResult:
    run_dir: Path
    best_score: float  # best validation accuracy (training accuracy when there is no validation)
    best_epoch: int | None
    history: list[dict] = field(default_factory=list)
    test: dict | None = None  # loss/acc of the best model on a test split, when the data has one

    @property
    def best_model(self) -> Path:
        return self.run_dir / "best.safetensors"


def fit(model: str | nn.Module = "lenet_relu", data=None, **options) -> FitResult:
    """Train `model` (a registry name or an nn.Module) on `data` (a path, a dataset name,
    a DatasetSplits, or None for the embedded MNIST sample). Options are the config
    fields (`visionfit train --help` lists them), e.g. epochs=5, lr=0.1, optimizer="adamw".
    """
    if options.get("resume"):
        return _resume(options["resume"], data)
    module = model if isinstance(model, nn.Module) else None
    config = Config.from_options(model=_architecture_name(model), data=data, **options)
    return _run(config, module)


def _run(config: Config, module: nn.Module | None, resume_state: dict | None = None) -> FitResult:
    device = resolve_device(config.train.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    _configure_torch(config.train)
    torch.manual_seed(config.train.seed)

    splits = resolve_splits(config.data, config.train.seed)
    require_training_data(splits)
    source = _weight_source(config, module, resume_state)
    prepared = _prepare(config, splits, module, source)
    _fill_resolved(config, prepared)

    net, report = _model(config, prepared, module, source, dist)
    if resume_state is not None:
        net.load_state_dict(resume_state["model"])  # before any features are cached from the backbone
    net = net.to(device)
    channels_last = device.type == "cuda" if config.train.channels_last is None else config.train.channels_last
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    _freeze(net, config, dist)
    transfer_callbacks = _transfer_callbacks(net, config, dist)
    cached = cache_features_if_useful(net, prepared, config, device, dist)
    optimizer = build_optimizer(optimizer_groups(net, config.train), config.train)
    loaders = (cached.train, cached.val) if cached else _loaders(prepared, config, device, dist, channels_last)
    steps_per_epoch = -(-len(loaders[0]) // config.train.accumulate)
    scheduler = build_scheduler(optimizer, config.train, steps_per_epoch)
    start_epoch, history, best = 0, [], float("-inf")
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        start_epoch, history, best = resume_state["epoch"] + 1, resume_state["history"], resume_state["best_score"]
    trained = HeadOnFeatures(net) if cached else net
    trained = torch.compile(trained) if config.train.compile else trained
    trained = dist.wrap(trained, device)

    run_dir = create_run_dir(config, dist, resume_state is not None)
    if report is not None and dist.is_main:
        report.write(run_dir)
    meta = model_meta(config, prepared, module, report.origin if report else None)
    callbacks = transfer_callbacks + _callbacks(config, run_dir, meta, dist, best)
    trainer = Trainer(trained, optimizer, scheduler, loaders[0], loaders[1], device, config.train, callbacks, dist)
    if resume_state is not None:
        trainer.scaler.load_state_dict(resume_state["scaler"])
        trainer.history = list(history)
    started = time.perf_counter()
    trainer.fit(start_epoch)
    return _finish(trainer, prepared, run_dir, dist, device, time.perf_counter() - started, config)


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: this machine has no CUDA GPU visible to torch; use --device cpu or auto")
    return torch.device(requested)


def _configure_torch(train_cfg) -> None:
    if train_cfg.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not train_cfg.deterministic
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def _architecture_name(model) -> str:
    """A name load_model can rebuild from: the registry name, or the module's import path."""
    if isinstance(model, nn.Module):
        if hasattr(model, "visionfit_spec"):
            return model.visionfit_spec["architecture"]
        cls = type(model)
        return f"{cls.__module__}:{cls.__qualname__}"
    return model


def _weight_source(config: Config, module: nn.Module | None, resume_state: dict | None) -> WeightSource | None:
    """The starting weights asked for; none when resuming (the checkpoint holds the weights,
    and its config the preprocessing they brought)."""
    if resume_state is not None:
        return None
    if module is not None and config.model.pretrained:
        raise ConfigError("--pretrained needs a model name (e.g. resnet18, timm:efficientnet_lite0); "
                          "load weights into your module before fit(), or pass weights=PATH")
    source = weight_source(config.model)
    if source is not None:
        config.model.model_args = {**source.model_args, **config.model.model_args}
    return source


def _prepare(config: Config, splits, module: nn.Module | None, source: WeightSource | None) -> PreparedData:
    """Decode the data with the preprocessing the starting weights expect, if they say.

    Pretrained nets read RGB: grey data becomes 3 channels unless --channels says otherwise.
    """
    channels = config.data.channels or (source and source.channels) or data_channels(splits.train)
    natural_size = natural_input(config.model.model)[1] if module is None else 224
    size = (source and source.size) or natural_size
    return prepare_data(config.data, splits, channels, size, source.stats if source else None)


def _model(config: Config, prepared: PreparedData, module: nn.Module | None, source: WeightSource | None,
           dist: Distributed) -> tuple[nn.Module, LoadReport | None]:
    """The net to train, with its starting weights loaded (and reported) when asked for."""
    if module is not None:
        net = module
        config.model.model_args = dict(getattr(module, "visionfit_spec", {}).get("model_args", {}))
        if model_classes(net) not in (None, prepared.splits.num_classes):
            replace_head(net, prepared.splits.num_classes, config.model.init)  # a net made for other classes
    else:
        net = _build_model(config, prepared)
    if source is None:
        return net, None
    report = load_weights(net, source, config.model.strict)
    if dist.is_main:
        print(report.text(), file=sys.stderr)
    return net, report


def _freeze(net: nn.Module, config: Config, dist: Distributed) -> None:
    frozen = freeze(net, config.model.freeze)
    if frozen and dist.is_main:
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        total = sum(p.numel() for p in net.parameters())
        print(f"frozen: {', '.join(frozen)}; training {trainable:,} of {total:,} parameters", file=sys.stderr)


def _transfer_callbacks(net: nn.Module, config: Config, dist: Distributed) -> list:
    after = config.train.unfreeze_after
    if after is None:
        return []
    if dist.enabled:  # DDP fixes the parameters it reduces when it wraps the model
        raise ConfigError("--unfreeze-after does not work under torchrun yet; train in two runs: --freeze backbone, "
                          "then --weights runs/<name>/best.safetensors without --freeze")
    return [UnfreezeBackbone(net, after)]


def _build_model(config: Config, prepared: PreparedData) -> nn.Module:
    args = dict(config.model.model_args)
    name = config.model.model
    if name in MODELS and prepared.preset.size != natural_input(name)[1]:
        args.setdefault("input_size", prepared.preset.size)  # classic nets size their classifier to it
    config.model.model_args = args
    net = create_model(name, num_classes=prepared.splits.num_classes, in_channels=prepared.preset.channels, **args)
    apply_init(net, config.model.init)
    return net


def _fill_resolved(config: Config, prepared: PreparedData) -> None:
    """Write the values chosen from the data back, so config.yaml says what really ran."""
    preset, d = prepared.preset, config.data
    d.image_size, d.channels, d.mean, d.std = preset.size, preset.channels, list(preset.mean), list(preset.std)
    d.flip, d.pad = preset.flip, preset.pad
    if not isinstance(d.data, (str, type(None))):
        d.data = prepared.splits.name


def _loaders(prepared: PreparedData, config: Config, device, dist: Distributed, channels_last: bool):
    from .data.prepare import default_workers

    common = dict(preset=prepared.preset, batch_size=config.data.batch_size, device=device, seed=config.train.seed,
                  workers=default_workers(config.data.workers), rank=dist.rank, world_size=dist.world_size,
                  channels_last=channels_last)
    train = BatchLoader(prepared.train, train=True, **common)
    val = BatchLoader(prepared.val, train=False, **common) if prepared.val is not None and len(prepared.val) else None
    return train, val


def model_meta(config: Config, prepared: PreparedData, module: nn.Module | None, weights: str | None = None) -> dict:
    return {
        "architecture": config.model.model,
        "model_args": config.model.model_args,
        "class_names": prepared.splits.class_names,
        "in_channels": prepared.preset.channels,
        "input_size": prepared.preset.size,
        "mean": list(prepared.preset.mean),
        "std": list(prepared.preset.std),
        "preset": prepared.preset.to_dict(),
        "visionfit_version": __version__,
        "dataset": prepared.splits.name,
        "weights": weights,  # where the starting weights came from (--pretrained / --weights), or None
    }


def _callbacks(config: Config, run_dir: Path, meta: dict, dist: Distributed, best: float) -> list:
    callbacks = []
    if config.train.patience:
        callbacks.append(EarlyStopping(config.train.patience))
    if dist.is_main:
        callbacks += [ProgressPrinter(config.run.quiet), MetricsLogger(run_dir),
                      Checkpointer(run_dir, meta, config.to_dict(), best)]
        if config.train.tensorboard:
            callbacks.append(TensorBoardLogger(run_dir))
    return callbacks


def _finish(trainer: Trainer, prepared: PreparedData, run_dir: Path, dist: Distributed, device, seconds: float,
            config: Config) -> FitResult:
    best_row = max(trainer.history, key=score)
    test = None
    if prepared.test is not None and len(prepared.test):
        from .checkpoints import load_model

        dist.barrier()
        best_model = load_model(run_dir / "best.safetensors", device=device)
        loader = BatchLoader(prepared.test, prepared.preset, config.data.batch_size, train=False, device=device)
        trainer.model = best_model
        test = trainer.evaluate(loader)
    result = FitResult(run_dir, score(best_row), best_row["epoch"], trainer.history, test)
    if dist.is_main:
        skipped = [origin for store in (prepared.train, prepared.val, prepared.test) if store is not None
                   for origin, _ in store.skipped]
        write_summary(run_dir, {
            "best_epoch": result.best_epoch, "best_score": result.best_score, "best_metrics": best_row,
            "final_metrics": trainer.history[-1], "test": test, "epochs_run": len(trainer.history),
            "seconds": round(seconds, 2), "device": str(device), "world_size": dist.world_size,
            "train_images": len(prepared.train), "val_images": len(prepared.val) if prepared.val is not None else 0,
            "skipped_images": skipped, "classes": prepared.splits.class_names,
        })
    return result


def _resume(path: str, data=None) -> FitResult:
    """Continue the run in `path` (a run directory or its last.ckpt) with its saved config.

    `data` is only needed when the run was given in-memory data (a DatasetSplits object).
    """
    run_dir = Path(path).parent if Path(path).suffix == ".ckpt" else Path(path)
    state = load_resume_state(run_dir)
    config = Config.from_dict(state["config"])
    config.run.project, config.run.name = str(run_dir.parent), run_dir.name
    if data is not None:
        config.data.data = data
    if state["epoch"] + 1 >= config.train.epochs:
        raise ConfigError(f"{path} already finished all {config.train.epochs} epochs; nothing to resume")
    return _run(config, None, state)
