"""A training session for a resolved run: device and process group, then the trainer with
its loaders, optimizer, schedule and callbacks, and the FitResult it leaves.

    dist, device = start_session(config)
    with writing(run_dir, dist):
        announce(resolved, prepared)
        result = train_resolved(resolved, net, prepared, dist, device, resume_state)

fitting.py decides what to train (a fresh run, a resume, a torchrun restart); this module
trains it, reading only the Resolved value.
"""
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import load_model
from ..config import Config
from ..data.loader import BatchLoader
from ..data.prepare import PreparedData, default_workers
from ..devices import resolve_device
from ..errors import ConfigError, TrainingDiverged
from ..models.transfer import UnfreezeBackbone, freeze, optimizer_groups
from ..resolve import Resolved
from .callbacks import Checkpointer, EarlyStopping, MetricsLogger, ProgressPrinter, TensorBoardLogger, score
from .distributed import Distributed, init_distributed
from .features import HeadOnFeatures, cache_features_if_useful
from .optim import build_optimizer, build_scheduler, extend_schedule
from .run_dir import RunLock, write_summary
from .trainer import Trainer


@dataclass
class FitResult:
    run_dir: Path
    best_score: float  # best validation accuracy (training accuracy when there is no validation)
    best_epoch: int | None
    history: list[dict] = field(default_factory=list)
    test: dict | None = None  # loss/acc of the best model on a test split, when the data has one
    resolved: Resolved | None = None  # what the run used: preprocessing, model spec, classes, folder
    train_images: int = 0
    val_images: int = 0
    device: str = "cpu"
    seconds: float = 0.0  # training time, data preparation excluded

    @property
    def best_model(self) -> Path:
        return self.run_dir / "best.safetensors"


def announce(resolved: Resolved, prepared: PreparedData) -> None:
    """The start of a run says what it settled on: data, input, model, folder (config.yaml has it all)."""
    val = len(prepared.val) if prepared.val is not None else 0
    weights = f", starting from {resolved.model.weights}" if resolved.model.weights else ""
    lines = [f"data: {resolved.dataset}, {len(resolved.class_names)} classes, {len(prepared.train):,} training and "
             f"{val:,} validation images",
             f"input: {resolved.preset.preprocess.summary()}",
             *(f"  {note}" for note in resolved.notes),
             f"model: {resolved.model.architecture}{weights}",
             f"run folder: {resolved.run_dir}"]
    print("\n".join(lines), file=sys.stderr)


def writing(run_dir: Path, dist: Distributed):
    """The run folder's lock, held by rank 0 while the run writes (other ranks write nothing)."""
    return RunLock(run_dir) if dist.is_main else contextlib.nullcontext()


def start_session(config: Config) -> tuple[Distributed, torch.device]:
    """The device and process group, and torch's global switches; checks that cost nothing first."""
    device = resolve_device(config.train.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    _configure_torch(config.train)
    torch.manual_seed(config.train.seed)
    return dist, device


def train_resolved(resolved: Resolved, net: nn.Module, prepared: PreparedData, dist: Distributed, device: torch.device,
           resume_state: dict | None = None) -> FitResult:
    config = resolved.config
    net = net.to(device)
    channels_last = device.type == "cuda" if config.train.channels_last is None else config.train.channels_last
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    _freeze(net, config, dist)
    transfer_callbacks = _transfer_callbacks(net, config, dist)
    cached = cache_features_if_useful(net, prepared, config, device, dist)
    optimizer = build_optimizer(optimizer_groups(net, config.train), config.train)
    loaders = (cached.train, cached.val) if cached else make_loaders(prepared, config, device, dist, channels_last)
    steps_per_epoch = -(-len(loaders[0]) // config.train.accumulate)
    scheduler = build_scheduler(optimizer, config.train, steps_per_epoch)
    start_epoch, history, best = 0, [], float("-inf")
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        extend_schedule(scheduler, resume_state["scheduler"])  # its position, with this run's --epochs
        start_epoch, history, best = resume_state["epoch"] + 1, resume_state["history"], resume_state["best_score"]
    trained = HeadOnFeatures(net) if cached else net
    trained = torch.compile(trained) if config.train.compile else trained
    trained = dist.wrap(trained, device)

    callbacks = transfer_callbacks + _callbacks(resolved, dist, best)
    trainer = Trainer(trained, optimizer, scheduler, loaders[0], loaders[1], device, config.train, callbacks, dist)
    if resume_state is not None:
        trainer.scaler.load_state_dict(resume_state["scaler"])
        trainer.history = list(history)
    started = time.perf_counter()
    try:
        trainer.fit(start_epoch)
    except TrainingDiverged as error:
        raise error.in_run(resolved.run_dir) from None
    except KeyboardInterrupt:
        if dist.is_main:
            print(interrupted_message(resolved.run_dir, trainer), file=sys.stderr)
        raise
    return _finish(trainer, resolved, prepared, dist, device, time.perf_counter() - started)


def interrupted_message(run_dir: Path, trainer: Trainer) -> str:
    """What Ctrl-C leaves, and the command that continues from there."""
    kept = len(trainer.history)
    if not kept:
        return (f"interrupted in epoch 1, before anything was saved; start again with "
                f"`visionfit train --config {run_dir / 'config.yaml'}`")
    return (f"interrupted in epoch {trainer.epoch + 1}; {run_dir} keeps epoch {kept} (last.ckpt); "
            f"continue with `visionfit train --resume {run_dir}`")


def _configure_torch(train_cfg) -> None:
    if train_cfg.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not train_cfg.deterministic
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


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


def make_loaders(prepared: PreparedData, config: Config, device, dist: Distributed, channels_last: bool):
    """The training loader and the validation one (None without validation data); the LR finder uses them too."""
    common = dict(preset=prepared.preset, batch_size=config.data.batch_size, device=device, seed=config.train.seed,
                  workers=default_workers(config.data.workers), rank=dist.rank, world_size=dist.world_size,
                  channels_last=channels_last)
    train = BatchLoader(prepared.train, train=True, **common)
    val = BatchLoader(prepared.val, train=False, **common) if prepared.val is not None and len(prepared.val) else None
    return train, val


def _callbacks(resolved: Resolved, dist: Distributed, best: float) -> list:
    config, callbacks = resolved.config, []
    if config.train.patience:
        callbacks.append(EarlyStopping(config.train.patience))
    if dist.is_main:
        callbacks += [ProgressPrinter(config.run.quiet), MetricsLogger(resolved.run_dir),
                      Checkpointer(resolved.run_dir, resolved.model_meta(), resolved.record(), best)]
        if config.train.tensorboard:
            callbacks.append(TensorBoardLogger(resolved.run_dir))
    return callbacks


def _finish(trainer: Trainer, resolved: Resolved, prepared: PreparedData, dist: Distributed, device,
            seconds: float) -> FitResult:
    run_dir, config = resolved.run_dir, resolved.config
    best_row = max(trainer.history, key=score)
    test = None
    if prepared.test is not None and len(prepared.test):
        dist.barrier()
        loader = BatchLoader(prepared.test, prepared.preset, config.data.batch_size, train=False, device=device)
        # This run wrote it a moment ago from the model it trains, whatever code that is.
        trainer.model = load_model(run_dir / "best.safetensors", device=device, trust_code=True)
        test = trainer.evaluate(loader)
    result = FitResult(run_dir, score(best_row), best_row["epoch"], trainer.history, test, resolved,
                       train_images=len(prepared.train), val_images=len(prepared.val) if prepared.val is not None else 0,
                       device=str(device), seconds=round(seconds, 2))
    if dist.is_main:
        skipped = [origin for store in (prepared.train, prepared.val, prepared.test) if store is not None
                   for origin, _ in store.skipped]
        write_summary(run_dir, {
            "best_epoch": result.best_epoch, "best_score": result.best_score, "best_metrics": best_row,
            "final_metrics": trainer.history[-1], "test": test, "epochs_run": len(trainer.history),
            "seconds": result.seconds, "device": result.device, "world_size": dist.world_size,
            "train_images": result.train_images, "val_images": result.val_images,
            "skipped_images": skipped, "classes": list(resolved.class_names),
        })
    return result
