"""The training loop. It fits on one screen; everything optional hangs off callbacks.

    trainer = Trainer(model, optimizer, scheduler, train_loader, val_loader, device, config.train, callbacks,
                      mixer=batch_mixer(config.train, num_classes), ema=WeightAverage(net, 0.999))
    history = trainer.fit()

A nan or inf loss (training or validation) stops the run with TrainingDiverged before the
epoch's callbacks run, so nothing from a diverged epoch is written. A mixer (train/mixing.py)
turns each training batch into mixed images and soft targets; an EMA (train/ema.py) is
updated after every optimizer step and validated beside the raw weights (`ema_val_*`).
"""
import contextlib
import time

import torch
from torch import nn

from ..data.loader import epoch_seed
from .distributed import Distributed
from .divergence import LossWatch, require_finite_validation_loss
from .mixing import Unmixed
from .tasks import SingleLabel


class Trainer:
    def __init__(self, model, optimizer, scheduler, train_loader, val_loader, device, train_cfg, callbacks=(),
                 dist: Distributed | None = None, task=None, mixer=None, ema=None):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.device, self.cfg, self.callbacks = device, train_cfg, list(callbacks)
        self.dist = dist or Distributed()
        self.task = task or SingleLabel(label_smoothing=train_cfg.label_smoothing)
        self.mixer = mixer or Unmixed()
        self.ema = ema  # a WeightAverage, or None
        self.amp_dtype = amp_dtype(train_cfg.amp, device)
        self.scaler = loss_scaler(self.amp_dtype, device)
        self.last_confusion = None  # of the latest evaluate(), single-label only
        self.val_confusions: dict = {}  # of the latest validate(): "raw" and "ema" weights
        self.loss_watch = LossWatch(device, self.dist)
        self.history: list[dict] = []
        self.epoch = 0
        self.should_stop = False

    def fit(self, start_epoch: int = 0) -> list[dict]:
        self._emit("on_fit_start")
        try:
            for self.epoch in range(start_epoch, self.cfg.epochs):
                torch.manual_seed(epoch_seed(self.cfg.seed, self.epoch, self.dist.rank))  # dropout etc.
                self._emit("on_epoch_start")
                metrics = {"epoch": self.epoch + 1, **self.train_one_epoch()}
                if self.val_loader is not None:
                    metrics.update(self.validate())
                    require_finite_validation_loss(metrics)
                self.history.append(metrics)
                self._emit("on_epoch_end", metrics)
                if self.should_stop:
                    break
        finally:
            self._emit("on_fit_end")  # also when the run stops with an error: bars and writers close
        return self.history

    def train_one_epoch(self) -> dict:
        self.train_loader.set_epoch(self.epoch)
        self.mixer.set_epoch(self.epoch)
        set_train_mode(self.model)
        tally = self.task.tally(self.device)
        lr = self.optimizer.param_groups[-1]["lr"]  # the head's group: what the user asked for
        self.loss_watch.start_epoch(self.epoch)
        start = time.perf_counter()
        for step, (x, y) in enumerate(self.train_loader):
            x, targets, labels = self.mixer(x, y)
            last_of_group = (step + 1) % self.cfg.accumulate == 0 or step + 1 == len(self.train_loader)
            sync = contextlib.nullcontext() if last_of_group else self.dist.no_sync(self.model)
            with sync:
                with self._autocast():
                    logits = self.model(x)
                    loss = self.task.train_loss(logits, targets)
                self.loss_watch.note(step, loss, self.optimizer.param_groups[-1]["lr"])
                self.scaler.scale(loss / self.cfg.accumulate if self.cfg.accumulate > 1 else loss).backward()
            if last_of_group:
                self._optimizer_step()
            tally.add(logits, labels, loss.detach() * len(y))
            self._emit("on_batch_end", step, loss)
        self.loss_watch.check()
        metrics = tally.result(self.dist)
        seconds = time.perf_counter() - start
        return {**metrics, "lr": lr, "images_per_s": tally.seen / seconds, "seconds": seconds}

    def _optimizer_step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()

    def validate(self) -> dict:
        """val_* metrics of the weights, and ema_val_* of their average when there is one;
        their confusion matrices (single-label) stay in `val_confusions` ("raw", "ema")."""
        metrics = {f"val_{k}": v for k, v in self.evaluate(self.val_loader).items()}
        self.val_confusions = {"raw": self.last_confusion}
        if self.ema is not None:
            metrics.update({f"ema_val_{k}": v for k, v in self.evaluate(self.val_loader, self.ema.module).items()})
            self.val_confusions["ema"] = self.last_confusion
        return metrics

    @torch.no_grad()
    def evaluate(self, loader, model: nn.Module | None = None) -> dict:
        """The task's metrics (loss, acc, macro_f1, ...) of `model` (default: the trained one) over a
        loader, in eval mode (BatchNorm/Dropout off), without grads."""
        model = self.model if model is None else model
        model.eval()
        tally = self.task.tally(self.device)
        for x, y in loader:
            with self._autocast():
                logits = model(x)
            tally.add(logits, y, self.task.eval_loss_sum(logits, y))
        metrics = tally.result(self.dist)
        summed = getattr(tally, "summed", None)  # a multi-label tally has no confusion matrix
        self.last_confusion = None if summed is None else summed.long().cpu().numpy()
        return metrics

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _emit(self, event: str, *args) -> None:
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            if handler is not None:
                handler(self, *args)


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Mixed precision only on CUDA: bf16 where the GPU has it (no loss scaling needed)."""
    if amp == "off" or device.type != "cuda":
        return None
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def loss_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only: bf16 has fp32's exponent range, and fp32 needs none."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def set_train_mode(model: nn.Module) -> None:
    """model.train(), except BatchNorm layers whose parameters are frozen stay in eval.

    A frozen backbone must not keep moving its running statistics (the seeds' fixed
    feature extractor relies on the pretrained ones).
    """
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
