"""A training session for a resolved run: device and process group, then the trainer with
its loaders, optimizer, schedule and callbacks, and the FitResult it leaves.

    dist, device = start_session(config)
    with writing(run_dir, dist):
        result = train_resolved(resolved, net, prepared, dist, device, resume_state)   # prints the run's summary

fitting.py decides what to train (a fresh run, a resume, a torchrun restart); this module
trains it, reading only the Resolved value.
"""
import contextlib
import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import progress
from ..checkpoints import load_into, load_model, unwrap
from ..config import Config
from ..cpu_memory import keep_freed_memory
from ..data.loader import BatchLoader
from ..data.prepare import PreparedData, default_workers
from ..devices import resolve_device, share_cores_with_workers
from ..errors import ConfigError, ModelError, TrainingDiverged
from ..files import write_text_atomic
from ..infer import metrics
from ..models.transfer import UnfreezeBackbone, freeze, optimizer_groups
from ..resolve import Resolved
from .callbacks import (Checkpointer, EarlyStopping, MetricsLogger, ProgressPrinter, TensorBoardLogger, kept_score,
                        monitored_key, weights_to_keep)
from .class_balance import class_weights, describe
from .distributed import Distributed, init_distributed
from .ema import WeightAverage
from .features import CachingTime, HeadOnFeatures, cache_features_if_useful, caching_mode
from .guards import chance_warning, few_steps_warning
from .hardware import busy_workers, compiled, run_memory_format
from .mixing import batch_mixer
from .multilabel import MultiLabel
from .report import images_per_class, result_lines, run_summary
from .optim import build_optimizer, build_scheduler, extend_schedule
from .model_card import ModelCard
from .run_dir import MODEL_CARD, RunLock, write_summary
from .tasks import SingleLabel
from .trainer import Trainer


@dataclass
class FitResult:
    run_dir: Path
    # The best epoch's score under --monitor (raw or EMA weights, whichever best.safetensors holds),
    # higher is better: val_acc, macro_f1 or balanced_acc as they are, val_loss negated; the
    # training metric of that name when there is no validation.
    best_score: float
    best_epoch: int | None
    history: list[dict] = field(default_factory=list)
    test: dict | None = None  # loss/acc of the best model on a test split, when the data has one
    resolved: Resolved | None = None  # what the run used: preprocessing, model spec, classes, folder
    train_images: int = 0
    val_images: int = 0
    device: str = "cpu"
    seconds: float = 0.0  # training time (feature caching included), data preparation excluded

    @property
    def best_model(self) -> Path:
        return self.run_dir / "best.safetensors"


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
    if device.type == "cpu":
        keep_freed_memory()  # activations reuse the heap instead of faulting in fresh pages every batch
    torch.manual_seed(config.train.seed)
    return dist, device


def train_resolved(resolved: Resolved, net: nn.Module, prepared: PreparedData, dist: Distributed, device: torch.device,
           resume_state: dict | None = None) -> FitResult:
    """Train `net` as `resolved` says; rank 0 prints the run's summary first and its results last (stdout)."""
    config = resolved.config
    frozen = freeze(net, config.model.freeze)
    net = net.to(device)
    caching = caching_mode(config, prepared.preset)
    # The image loaders before the summary, which states the threads their workers leave this process.
    loaders = None if caching else make_loaders(prepared, config, device, dist, channels_last=False)
    threads = share_cores_with_workers(busy_workers(loaders[0]) if loaders else 0)
    # Timed (on a CPU) with the threads the run trains with; its batches then take the chosen format.
    channels_last, layout_note = run_memory_format(config, net, prepared, device, dist.enabled, caching)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        for loader in loaders or ():
            if loader is not None:
                loader.channels_last = True
    if dist.is_main:
        print(run_summary(resolved, prepared, net, device, channels_last, caching, frozen, threads, layout_note),
              flush=True)
    transfer_callbacks = _transfer_callbacks(net, config, dist)
    started = time.perf_counter()  # caching features is training: it counts, as in epoch 1's images/s
    cached = cache_features_if_useful(net, prepared, config, device, dist)
    optimizer = build_optimizer(optimizer_groups(net, config.train), config.train)
    if cached:
        loaders = (cached.train, cached.val)
    elif loaders is None:  # caching gave up (the model does more after its head): images after all
        loaders = make_loaders(prepared, config, device, dist, channels_last)
    steps_per_epoch = -(-len(loaders[0]) // config.train.accumulate)
    warning = few_steps_warning(steps_per_epoch, len(prepared.train), config, dist.world_size)
    if warning and dist.is_main:
        print(f"warning: {warning}", file=sys.stderr)
    scheduler = build_scheduler(optimizer, config.train, steps_per_epoch)
    start_epoch, history, best = 0, [], float("-inf")
    if resume_state is not None:
        _load_optimizer_state(optimizer, resume_state["optimizer"], resolved.run_dir)
        extend_schedule(scheduler, resume_state["scheduler"])  # its position, with this run's --epochs
        start_epoch, history, best = resume_state["epoch"] + 1, resume_state["history"], resume_state["best_score"]
    trained = HeadOnFeatures(net) if cached else net
    ema = _weight_average(trained, config.train.ema, resume_state)
    trained = compiled(trained) if config.train.compile else trained
    trained = dist.wrap(trained, device)

    # CachingTime first: the callbacks after it print and record the epoch with the caching counted in.
    callbacks = [CachingTime(cached.seconds)] if cached else []
    callbacks += transfer_callbacks + _callbacks(resolved, dist, best)
    mixer = batch_mixer(config.train, len(resolved.class_names), dist.rank)
    trainer = Trainer(trained, optimizer, scheduler, loaders[0], loaders[1], device, config.train, callbacks, dist,
                      task=_task(resolved, prepared, dist), mixer=mixer, ema=ema)
    if resume_state is not None:
        trainer.scaler.load_state_dict(resume_state["scaler"])
        trainer.history = list(history)
    try:
        trainer.fit(start_epoch)
    except TrainingDiverged as error:
        raise error.in_run(resolved.run_dir) from None
    except KeyboardInterrupt:
        if dist.is_main:
            print(interrupted_message(resolved.run_dir, trainer), file=sys.stderr)
        raise
    result = _finish(trainer, resolved, prepared, dist, device, time.perf_counter() - started)
    # Chance is one class's share: a multi-label run's exact-match accuracy has no such baseline.
    val_labels = prepared.val.labels if prepared.val is not None and not resolved.multi_label else None
    warning = chance_warning(trainer.history, val_labels, len(resolved.class_names), config, steps_per_epoch,
                             resolved.recipe)
    if warning and dist.is_main:
        print(f"warning: {warning}", file=sys.stderr)
    return result


def interrupted_message(run_dir: Path, trainer: Trainer) -> str:
    """What Ctrl-C leaves, and the command that continues from there."""
    kept = len(trainer.history)
    if not kept:
        return (f"interrupted in epoch 1, before anything was saved; start again with "
                f"`visionfit train --config {run_dir / 'config.yaml'}`")
    return (f"interrupted in epoch {trainer.epoch + 1}; {run_dir} keeps epoch {kept} (last.ckpt); "
            f"continue with `visionfit train --resume {run_dir}`")


def _weight_average(trained: nn.Module, decay: float | None, resume_state: dict | None) -> WeightAverage | None:
    """With --ema, the average of the weights the trainer trains (before DDP and compile wrap them)."""
    if not decay:  # None or 0 (--ema 0 drops a recipe's EMA): no average
        return None
    ema = WeightAverage(trained, decay)
    if resume_state is not None:
        ema.load_state_dict(resume_state.get("ema"), "the run's last.ckpt")
    return ema


def _load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict, run_dir: Path) -> None:
    """The checkpoint's optimizer state, when its parameter groups are the ones this run makes; the
    update kernels stay this run's (a run resumed on another device keeps fused or foreach right)."""
    kernels = [{key: group[key] for key in ("foreach", "fused") if key in group} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(saved)
    except ValueError as error:  # torch: another number of groups, or groups of other sizes
        raise ConfigError(f"cannot resume {run_dir}: its optimizer state does not match this visionfit's parameter "
                          f"groups ({error}; weight decay now skips biases and norm weights, in groups of their "
                          f"own); start a new run with --weights {run_dir / 'last.safetensors'}") from None
    for group, chosen in zip(optimizer.param_groups, kernels):
        group.update(chosen)


def _configure_torch(train_cfg) -> None:
    if train_cfg.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not train_cfg.deterministic
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def _transfer_callbacks(net: nn.Module, config: Config, dist: Distributed) -> list:
    after = config.train.unfreeze_after
    if after is None:
        return []
    if dist.enabled:  # DDP fixes the parameters it reduces when it wraps the model
        raise ConfigError("--unfreeze-after does not work under torchrun yet; train in two runs: --freeze backbone, "
                          "then --weights runs/<name>/best.safetensors without --freeze")
    return [UnfreezeBackbone(net, after)]


def training_task(config: Config, prepared: PreparedData):
    """What the net is trained to do: a set of classes per image (multi-label data), or one
    class, with cross-entropy weighted per class by --class-weights from the training labels
    (the validation loss stays unweighted: tasks.py). The LR finder sweeps with the same loss."""
    train = config.train
    if prepared.splits.multi_label:
        return MultiLabel(train.label_smoothing)
    weights = class_weights(prepared.train.labels, len(prepared.splits.class_names), train.class_weights)
    return SingleLabel(label_smoothing=train.label_smoothing, class_weights=weights)


def _task(resolved: Resolved, prepared: PreparedData, dist: Distributed):
    """The run's training task, and a line saying how --class-weights weighs the classes."""
    task = training_task(resolved.config, prepared)
    weights = getattr(task, "class_weights", None)
    if weights is not None and dist.is_main:
        train = resolved.config.train
        print(f"class weights ({train.class_weights}): {describe(weights, resolved.class_names)}", file=sys.stderr)
    return task


def make_loaders(prepared: PreparedData, config: Config, device, dist: Distributed, channels_last: bool):
    """The training loader and the validation one (None without validation data); the LR finder uses them too."""
    common = dict(preset=prepared.preset, batch_size=config.data.batch_size, device=device, seed=config.train.seed,
                  workers=default_workers(config.data.workers), rank=dist.rank, world_size=dist.world_size,
                  channels_last=channels_last)
    train = BatchLoader(prepared.train, train=True, sampler=config.data.sampler, **common)
    val = BatchLoader(prepared.val, train=False, **common) if prepared.val is not None and len(prepared.val) else None
    return train, val


def _callbacks(resolved: Resolved, dist: Distributed, best: float) -> list:
    config, callbacks = resolved.config, []
    monitor = config.train.monitor
    if config.train.patience:
        callbacks.append(EarlyStopping(config.train.patience, monitor))
    if dist.is_main:
        callbacks += [ProgressPrinter(config.run.quiet, monitor=monitor), MetricsLogger(resolved.run_dir),
                      Checkpointer(resolved.run_dir, resolved.model_meta(), resolved.record(), best, monitor)]
        if config.train.tensorboard:
            callbacks.append(TensorBoardLogger(resolved.run_dir))
    return callbacks


def _best_model(trainer: Trainer, path: Path, device) -> nn.Module:
    """The best epoch's model, rebuilt from the file this run wrote a moment ago (whatever code it
    names), as predict will; a module the user built with arguments the file cannot record
    (torchvision's ResNet(block, layers)) takes the weights in a copy of the trained module."""
    try:
        return load_model(path, device=device, trust_code=True)
    except ModelError:
        return load_into(copy.deepcopy(unwrap(trainer.model)), path, device)


def _finish(trainer: Trainer, resolved: Resolved, prepared: PreparedData, dist: Distributed, device,
            seconds: float) -> FitResult:
    run_dir, config = resolved.run_dir, resolved.config
    monitor = config.train.monitor
    best_row = max(trainer.history, key=lambda row: kept_score(row, monitor))  # the first of equals, as the Checkpointer
    dist.barrier()
    best_model = _best_model(trainer, run_dir / "best.safetensors", device)
    test = None
    if prepared.test is not None and len(prepared.test):
        trainer.model = best_model
        test = trainer.evaluate(_eval_loader(prepared.test, prepared, config, device))
    result = FitResult(run_dir, kept_score(best_row, monitor), best_row["epoch"], trainer.history, test, resolved,
                       train_images=len(prepared.train), val_images=len(prepared.val) if prepared.val is not None else 0,
                       device=str(device), seconds=round(seconds, 2))
    if dist.is_main:
        skipped = [origin for store in (prepared.train, prepared.val, prepared.test) if store is not None
                   for origin, _ in store.skipped]
        write_summary(run_dir, {
            "best_epoch": result.best_epoch, "best_score": result.best_score, "monitor": monitor,
            "monitored": monitored_key(best_row, monitor), "best_metrics": best_row,
            "best_weights": weights_to_keep(best_row, monitor)[0],
            "final_metrics": trainer.history[-1], "test": test, "epochs_run": len(trainer.history),
            "seconds": result.seconds, "device": result.device, "world_size": dist.world_size,
            "train_images": result.train_images, "val_images": result.val_images,
            "skipped_images": skipped, "classes": list(resolved.class_names),
        })
        card = _model_card(best_model, best_row, trainer, test, resolved, prepared, device, result)
        write_text_atomic(run_dir / MODEL_CARD, card.markdown())
        print(result_lines(result), flush=True)
        if skipped:
            progress.note(f"warning: skipped {len(skipped)} unreadable images (listed in {run_dir / 'summary.json'})")
    return result


def _eval_loader(store, prepared: PreparedData, config: Config, device) -> BatchLoader:
    """All of `store`, in order, through the eval preprocessing (every rank sees every image)."""
    return BatchLoader(store, prepared.preset, config.data.batch_size, train=False, device=device)


def _model_card(best_model: nn.Module, best_row: dict, trainer: Trainer, test: dict | None, resolved: Resolved,
                prepared: PreparedData, device, result: FitResult) -> ModelCard:
    """The card from what the run holds: class counts, and the best model's confusion matrix on
    validation: the one its epoch tallied (the numbers of its val_acc), else one more pass (the
    best epoch was before a --resume)."""
    classes = len(resolved.class_names)
    has_val = prepared.val is not None and len(prepared.val)
    confusion = None
    if has_val and not resolved.multi_label:  # a multi-label model has no single predicted class
        checkpointer = next((c for c in trainer.callbacks if isinstance(c, Checkpointer)), None)  # rank 0's
        confusion = checkpointer.best_confusion_of(best_row["epoch"], len(prepared.val)) if checkpointer else None
        if confusion is None:
            labels, predicted = predictions(best_model, _eval_loader(prepared.val, prepared, resolved.config, device))
            confusion = metrics.confusion_matrix(labels, predicted, classes)
    counts = lambda store: images_per_class(store.labels, classes)  # noqa: E731
    return ModelCard(resolved, trainer.history, best_row, counts(prepared.train),
                     counts(prepared.val) if has_val else None,
                     confusion, test, result.seconds, result.device)


@torch.no_grad()
def predictions(model: nn.Module, loader) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted classes) of `model` over `loader`, as int64 arrays."""
    model.eval()
    labels, predicted = [], []
    for x, y in loader:
        labels.append(y.cpu())
        predicted.append(model(x).argmax(dim=1).cpu())
    return torch.cat(labels).numpy(), torch.cat(predicted).numpy()
