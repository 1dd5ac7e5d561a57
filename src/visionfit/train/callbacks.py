"""What happens around the loop: progress, metrics.csv, curves.png, model files, early stop.

Each callback implements any of on_fit_start, on_epoch_start, on_batch_end(step, loss),
on_epoch_end(metrics), on_fit_end (called however the run ends, errors included). Only
rank 0 gets the ones that write or print.
"""
import csv
import io
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ..checkpoints import save_model_file, save_resume_state, unwrap  # noqa: E402
from ..files import atomic_path  # noqa: E402
from .divergence import require_finite_weights  # noqa: E402

# Multi-label runs (train/multilabel.py) add micro_f1 and map; their acc is the exact-match ratio.
METRIC_COLUMNS = ["epoch", "loss", "acc", "macro_f1", "balanced_acc", "micro_f1", "map", "val_loss", "val_acc",
                  "val_macro_f1", "val_balanced_acc", "val_micro_f1", "val_map", "lr", "images_per_s", "seconds"]

# --monitor: the validation metric it names, and the training metric that stands in without validation.
MONITORED = {"val_acc": ("val_acc", "acc"), "val_loss": ("val_loss", "loss"),
             "macro_f1": ("val_macro_f1", "macro_f1"), "balanced_acc": ("val_balanced_acc", "balanced_acc"),
             "map": ("val_map", "map")}
LOWER_IS_BETTER = {"val_loss"}


def monitored_key(metrics: dict, monitor: str = "val_acc") -> str:
    """The metrics key `monitor` reads: its validation metric, or the training one when there is no validation."""
    val_key, train_key = MONITORED[monitor]
    return val_key if val_key in metrics else train_key


def score(metrics: dict, monitor: str = "val_acc") -> float:
    """What 'best' means under --monitor, as a number where higher is better (val_loss is negated).

    Without validation the training metric of the same name stands in (acc, loss, macro_f1,
    balanced_acc, map). A nan score becomes -inf: nan compares False with everything, so `max`
    would keep a nan it met first, and it must never count as better.
    """
    value = metrics[monitored_key(metrics, monitor)]
    value = -value if monitor in LOWER_IS_BETTER else value
    return value if math.isfinite(value) else -math.inf


def format_epoch(metrics: dict, epochs: int) -> str:
    line = f"epoch {metrics['epoch']}/{epochs}  loss {metrics['loss']:.4f}  acc {metrics['acc']:.2%}"
    if "val_acc" in metrics:
        line += f"  val_loss {metrics['val_loss']:.4f}  val_acc {metrics['val_acc']:.2%}"
    for key in ("map", "val_map"):  # multi-label: acc is the exact-match ratio, mAP the headline
        if key in metrics:
            line += f"  {key} {metrics[key]:.4f}"
    return line + f"  lr {metrics['lr']:.3g}  {metrics['images_per_s']:,.0f} img/s  {metrics['seconds']:.1f} s"


def head_meta(metrics: dict) -> dict:
    """What a model file records about its head from an epoch's metrics: a multi-label model's
    per-class thresholds, chosen on validation (on training outputs when there is none)."""
    thresholds = metrics.get("val_thresholds", metrics.get("thresholds"))
    return {} if thresholds is None else {"thresholds": thresholds}


class ProgressPrinter:
    """A progress bar per epoch (unless quiet) and one summary line per epoch."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet, self.bar = quiet, None
        self._stream = stream

    @property
    def stream(self):
        return self._stream or sys.stderr  # looked up late: tests and notebooks swap sys.stderr

    def on_epoch_start(self, trainer) -> None:
        if not self.quiet:
            self.bar = tqdm(total=len(trainer.train_loader), desc=f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}",
                            leave=False, file=self.stream, dynamic_ncols=True)

    def on_batch_end(self, trainer, step: int, loss) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if step % 20 == 0:  # .item() waits for the GPU: not every batch
                self.bar.set_postfix(loss=f"{loss.item():.4f}")

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self._close_bar()
        print(format_epoch(metrics, trainer.cfg.epochs), file=self.stream, flush=True)

    def on_fit_end(self, trainer) -> None:
        self._close_bar()  # a run stopped mid-epoch: clear the bar before the error line

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLogger:
    """metrics.csv (one row per epoch) and curves.png, rewritten after every epoch."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        write_metrics_csv(self.run_dir / "metrics.csv", trainer.history)
        plot_curves(self.run_dir / "curves.png", trainer.history)


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    columns = [c for c in METRIC_COLUMNS if any(c in row for row in history)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue())


def plot_curves(path: Path, history: list[dict]) -> None:
    """The d2l Animator's picture, as a file: loss and accuracy per epoch, train and val."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [row[key] for row in history], "o-", label=f"train {title}")
        if "val_" + key in history[0]:
            ax.plot(epochs, [row["val_" + key] for row in history], "s--", label=f"val {title}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class Checkpointer:
    """best.safetensors (best score), last.safetensors and last.ckpt (resume state) each epoch.

    Weights that are not all finite are never written: the run stops with TrainingDiverged
    and the files keep the last finite epoch.
    """

    def __init__(self, run_dir: Path, meta: dict, config_dict: dict, best_score: float = -math.inf,
                 monitor: str = "val_acc"):
        self.run_dir, self.meta, self.config_dict = run_dir, meta, config_dict
        self.best_score, self.monitor = best_score, monitor
        self.best_epoch = None
        self.wrote_last = False  # a last.ckpt found on disk may be the damaged one a resume skipped

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        require_finite_weights(unwrap(trainer.model), metrics["epoch"], metrics["lr"])
        meta = {**self.meta, **head_meta(metrics), "metrics": metrics}
        if score(metrics, self.monitor) > self.best_score:
            self.best_score, self.best_epoch = score(metrics, self.monitor), metrics["epoch"]
            save_model_file(self.run_dir / "best.safetensors", trainer.model, meta)
        save_model_file(self.run_dir / "last.safetensors", trainer.model, meta)
        save_resume_state(self.run_dir, {
            "epoch": trainer.epoch,
            "model": unwrap(trainer.model).state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "scaler": trainer.scaler.state_dict(),
            "history": trainer.history,
            "best_score": self.best_score,
            "config": self.config_dict,
        }, keep_previous=self.wrote_last)
        self.wrote_last = True


class EarlyStopping:
    """Stop when the score has not improved for `patience` epochs."""

    def __init__(self, patience: int, monitor: str = "val_acc"):
        self.patience, self.monitor, self.best, self.waited = patience, monitor, -math.inf, 0

    def on_fit_start(self, trainer) -> None:
        for row in trainer.history:  # a resumed run remembers how long it has waited
            self._update(row)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self._update(metrics)
        if self.waited >= self.patience:
            trainer.should_stop = True
            print(f"early stop: no improvement for {self.patience} epochs", file=sys.stderr)

    def _update(self, metrics: dict) -> None:
        if score(metrics, self.monitor) > self.best:
            self.best, self.waited = score(metrics, self.monitor), 0
        else:
            self.waited += 1


class TensorBoardLogger:
    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # the tensorboard extra; config checks it is there

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):  # not a multi-label run's thresholds list
                self.writer.add_scalar(key, value, metrics["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        self.writer.close()
