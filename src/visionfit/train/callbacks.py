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

from .. import progress  # noqa: E402
from ..checkpoints import save_model_file, save_resume_state, unwrap  # noqa: E402
from ..files import atomic_path  # noqa: E402
from .divergence import require_finite_weights  # noqa: E402

# Multi-label runs (train/multilabel.py) add micro_f1 and map; their acc is the exact-match ratio.
METRIC_COLUMNS = ["epoch", "loss", "acc", "macro_f1", "balanced_acc", "micro_f1", "map", "val_loss", "val_acc",
                  "val_macro_f1", "val_balanced_acc", "val_micro_f1", "val_map", "ema_val_loss", "ema_val_acc",
                  "ema_val_macro_f1", "ema_val_balanced_acc", "ema_val_micro_f1", "ema_val_map", "lr", "images_per_s",
                  "seconds"]
EMA_PREFIX = "ema_"  # an EMA metric is this + the raw weights' val_* key

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


def ema_view(metrics: dict) -> dict:
    """The epoch's metrics as the EMA weights scored them: each val_* replaced by its ema_val_*."""
    return {**metrics, **{key[len(EMA_PREFIX):]: value for key, value in metrics.items()
                          if key.startswith(EMA_PREFIX + "val_")}}


def weights_to_keep(metrics: dict, monitor: str = "val_acc") -> tuple[str, dict]:
    """("raw", metrics) or ("ema", ema_view(metrics)), whichever scores better under `monitor`;
    raw on a tie (so always raw without validation, where the EMA weights have no metrics of their own)."""
    views = [("raw", metrics)]
    if any(key.startswith(EMA_PREFIX + "val_") for key in metrics):
        views.append(("ema", ema_view(metrics)))
    return max(views, key=lambda view: score(view[1], monitor))


def kept_score(metrics: dict, monitor: str = "val_acc") -> float:
    """The epoch's score by the better of its raw and EMA weights: what best.safetensors holds."""
    return score(weights_to_keep(metrics, monitor)[1], monitor)


def format_epoch(metrics: dict, epochs: int, monitor: str = "val_acc") -> str:
    line = f"epoch {metrics['epoch']}/{epochs}  loss {metrics['loss']:.4f}  acc {metrics['acc']:.2%}"
    if "val_acc" in metrics:
        line += f"  val_loss {metrics['val_loss']:.4f}  val_acc {metrics['val_acc']:.2%}"
    if monitor in ("macro_f1", "balanced_acc"):  # val_acc and val_loss (or acc and loss) are on the line already
        key = monitored_key(metrics, monitor)
        line += f"  {key} {metrics[key]:.4f}"
    for key in ("map", "val_map"):  # multi-label: acc is the exact-match ratio, mAP the headline
        if key in metrics:
            line += f"  {key} {metrics[key]:.4f}"
    if "ema_val_acc" in metrics:
        line += f"  ema_val_acc {metrics['ema_val_acc']:.2%}"
    return line + f"  lr {metrics['lr']:.3g}  {metrics['images_per_s']:,.0f} img/s  {metrics['seconds']:.1f} s"


def head_meta(metrics: dict) -> dict:
    """What a model file records about its head from an epoch's metrics: a multi-label model's
    per-class thresholds, chosen on validation (on training outputs when there is none)."""
    thresholds = metrics.get("val_thresholds", metrics.get("thresholds"))
    return {} if thresholds is None else {"thresholds": thresholds}


class ProgressPrinter:
    """A progress bar per epoch on stderr (unless quiet, or stderr is no terminal: progress.py)
    and one line per epoch on stdout, where the run's record goes (with the monitored metric)."""

    def __init__(self, quiet: bool = False, bar_stream=None, line_stream=None, monitor: str = "val_acc"):
        self.quiet, self.bar, self.monitor, self._shown = quiet, None, monitor, None
        self._bar_stream, self._line_stream = bar_stream, line_stream

    def on_epoch_start(self, trainer) -> None:
        if not self.quiet:
            self.bar = progress.bar(total=len(trainer.train_loader), unit="batch", stream=self._bar_stream,
                                    desc=f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}")

    def on_batch_end(self, trainer, step: int, loss) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.update(1)
            latest = trainer.loss_watch.latest  # read by the divergence watch: reading it here would wait for a GPU
            if latest is not None and latest != self._shown:
                self.bar.set_postfix(loss=f"{latest:.4f}")
                self._shown = latest

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self._close_bar()
        # Looked up late: tests and notebooks swap sys.stdout.
        print(format_epoch(metrics, trainer.cfg.epochs, self.monitor), file=self._line_stream or sys.stdout, flush=True)

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
    """The d2l Animator's picture, as a file: loss and accuracy per epoch, train, val and EMA val."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        ax.plot(epochs, [row[key] for row in history], "o-", label=f"train {title}")
        for prefix, style in (("val_", "s--"), ("ema_val_", "^:")):
            if prefix + key in history[0]:
                ax.plot(epochs, [row[prefix + key] for row in history], style, label=f"{prefix[:-1]} {title}")
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
    """best.safetensors (best score under `monitor`), last.safetensors and last.ckpt (resume
    state) each epoch.

    With --ema, best.safetensors holds whichever of the raw and the EMA weights scored
    better, and every model file's metadata says which ("trained_weights": "raw" | "ema");
    last.safetensors holds the raw weights, and last.ckpt the EMA too. Weights that are not
    all finite are never written: the run stops with TrainingDiverged and the files keep
    the last finite epoch.
    """

    def __init__(self, run_dir: Path, meta: dict, config_dict: dict, best_score: float = -math.inf,
                 monitor: str = "val_acc"):
        self.run_dir, self.meta, self.config_dict = run_dir, meta, config_dict
        self.best_score, self.monitor = best_score, monitor
        self.best_epoch = None
        self.best_confusion = None  # the kept weights' validation confusion matrix, when this process saw that epoch
        self.wrote_last = False  # a last.ckpt found on disk may be the damaged one a resume skipped

    def best_confusion_of(self, epoch: int, images: int):
        """The validation confusion matrix of best.safetensors if it was saved at `epoch` in this
        process and counts each of the `images` once (distributed shards repeat some), else None."""
        confusion = self.best_confusion if self.best_epoch == epoch else None
        return confusion if confusion is not None and int(confusion.sum()) == images else None

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        models = {"raw": trainer.model, "ema": trainer.ema.module if trainer.ema is not None else None}
        for model in models.values():
            if model is not None:
                require_finite_weights(unwrap(model), metrics["epoch"], metrics["lr"])
        kept, view = weights_to_keep(metrics, self.monitor)
        if score(view, self.monitor) > self.best_score:
            self.best_score, self.best_epoch = score(view, self.monitor), metrics["epoch"]
            self.best_confusion = getattr(trainer, "val_confusions", {}).get(kept)
            meta = {**self.meta, **head_meta(view), "metrics": metrics, "trained_weights": kept}
            save_model_file(self.run_dir / "best.safetensors", models[kept], meta)
        meta = {**self.meta, **head_meta(metrics), "metrics": metrics, "trained_weights": "raw"}
        save_model_file(self.run_dir / "last.safetensors", trainer.model, meta)
        ema = {"ema": trainer.ema.state_dict()} if trainer.ema is not None else {}
        save_resume_state(self.run_dir, {
            "epoch": trainer.epoch,
            "model": unwrap(trainer.model).state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "scaler": trainer.scaler.state_dict(),
            "history": trainer.history,
            "best_score": self.best_score,
            "config": self.config_dict,
            **ema,
        }, keep_previous=self.wrote_last)
        self.wrote_last = True


class EarlyStopping:
    """Stop when the `monitor` score has not improved for `patience` epochs."""

    def __init__(self, patience: int, monitor: str = "val_acc", stream=None):
        self.patience, self.monitor, self.stream = patience, monitor, stream
        self.best, self.waited = -math.inf, 0

    def on_fit_start(self, trainer) -> None:
        for row in trainer.history:  # a resumed run remembers how long it has waited
            self._update(row)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self._update(metrics)
        if self.waited >= self.patience:
            trainer.should_stop = True
            print(f"early stop: {monitored_key(metrics, self.monitor)} has not improved for {self.patience} epochs",
                  file=self.stream or sys.stderr)

    def _update(self, metrics: dict) -> None:
        if kept_score(metrics, self.monitor) > self.best:
            self.best, self.waited = kept_score(metrics, self.monitor), 0
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
