"""MODEL_CARD.md: what a run trained, on what, how well, and what it is not for.

    card = ModelCard(resolved, history, best_row, train_counts, val_counts, confusion, test, seconds, device)
    write_text_atomic(run_dir / "MODEL_CARD.md", card.markdown())

The session builds it at the end of a run from the values it holds (never by reading its
own files back); `visionfit export --hub-folder` uses it as the folder's README.md.
"""
from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..infer import metrics
from ..resolve import Resolved

FEW_IMAGES = 20  # a class with fewer training images than this is called out under limits
CONFUSION_UP_TO = 30  # classes: beyond this the matrix is too wide for a markdown table


@dataclass(frozen=True)
class ModelCard:
    resolved: Resolved
    history: list[dict]  # one row per epoch, as metrics.csv
    best: dict  # the history row of the best model
    train_counts: np.ndarray  # training images per class, in class order
    val_counts: np.ndarray | None  # validation images per class; None without validation
    confusion: np.ndarray | None  # K x K counts of the best model on validation (row = true)
    test: dict | None  # loss/acc of the best model on a test split
    seconds: float  # training time
    device: str

    def markdown(self) -> str:
        sections = [self._heading(), self._data(), self._recipe(), self._metrics(), self._confusion(), self._use()]
        return "\n\n".join(section for section in sections if section) + "\n"

    def _heading(self) -> str:
        r = self.resolved
        return (f"# Model card: {r.model.architecture} on {r.dataset}\n\n"
                f"An image classifier trained by visionfit {__version__}: {len(r.class_names)} classes, "
                f"{int(self.train_counts.sum()):,} training images. Load it with "
                "`visionfit.load_model(...)` or use it with `visionfit predict`.")

    def _data(self) -> str:
        r = self.resolved
        rows = [[_cell(name), str(int(self.train_counts[k])),
                 "-" if self.val_counts is None else str(int(self.val_counts[k]))]
                for k, name in enumerate(r.class_names)]
        given = r.config.data.data
        source = "the bundled MNIST sample" if given is None else f"`{given}`" if isinstance(given, str) else r.dataset
        return (f"## Data\n\nDataset: {source} ({r.dataset}). "
                f"Classes in index order, with their images:\n\n"
                + _table(["class", "training images", "validation images"], rows))

    def _recipe(self) -> str:
        r, train = self.resolved, self.resolved.config.train
        lines = [f"- model: `{r.model.architecture}` with arguments `{r.model.args}`, "
                 f"{'weights from ' + r.model.weights if r.model.weights else 'trained from scratch'} "
                 f"(init {r.model.init}, freeze {r.config.model.freeze})",
                 f"- input: {r.preset.preprocess.summary()}",
                 f"- augmentation: {r.preset.augmentation()}",
                 f"- training: {len(self.history)} of {train.epochs} epochs, {train.optimizer} lr {train.lr:g} "
                 f"(momentum {train.momentum:g}, weight decay {train.weight_decay:g}), scheduler {train.scheduler}, "
                 f"warmup {train.warmup_epochs:g} epochs, label smoothing {train.label_smoothing:g}, "
                 f"batch {r.config.data.batch_size} x {train.accumulate} accumulated, seed {train.seed}",
                 f"- time: {self.seconds:.1f} s of training on {self.device}"]
        return "## Recipe\n\n" + "\n".join(lines)

    def _metrics(self) -> str:
        best = self.best
        lines = [f"- best epoch {best['epoch']}: " + ", ".join(
            f"{key} {best[key]:.4f}" for key in ("loss", "acc", "val_loss", "val_acc") if key in best)]
        if "val_acc" not in best:
            lines.append("- no validation split: 'best' is the training accuracy, not a measure of generalisation")
        if self.test is not None:
            lines.append(f"- test split (best model): loss {self.test['loss']:.4f}, acc {self.test['acc']:.4f}")
        if self.confusion is not None:
            values = metrics.per_class(self.confusion)
            rows = [[_cell(name), f"{values['precision'][k]:.3f}", f"{values['recall'][k]:.3f}",
                     f"{values['f1'][k]:.3f}", str(int(values["support"][k]))]
                    for k, name in enumerate(self.resolved.class_names)]
            lines += ["", "Per class on validation (best model):", "",
                      _table(["class", "precision", "recall", "f1", "support"], rows)]
        return "## Metrics\n\n" + "\n".join(lines)

    def _confusion(self) -> str:
        if self.confusion is None:
            return ""
        names = self.resolved.class_names
        if len(names) > CONFUSION_UP_TO:
            return (f"## Confusion matrix\n\n{len(names)} classes: too many for a table here; "
                    "`visionfit eval` writes confusion_matrix.csv and .png")
        rows = [[_cell(name), *map(str, counts)] for name, counts in zip(names, self.confusion.tolist())]
        return ("## Confusion matrix\n\nBest model on the validation images; rows are the true class, "
                "columns the predicted one.\n\n" + _table(["true \\ predicted", *map(_cell, names)], rows))

    def _use(self) -> str:
        r = self.resolved
        few = [name for name, count in zip(r.class_names, self.train_counts) if count < FEW_IMAGES]
        lines = [f"Intended use: sorting images like the training images into these {len(r.class_names)} "
                 "classes, fed through the preprocessing above (the model file and its ONNX export carry it).",
                 "",
                 "Limits:",
                 "- it knows only these classes: any other image is still given one of them",
                 f"- measured on {'a validation split of the same data' if self.val_counts is not None else 'no held-out data'}; "
                 "accuracy on images from another camera, place or time may be lower",
                 "- not evaluated for fairness, safety-critical decisions or adversarial inputs"]
        if few:
            lines.append(f"- few training images (under {FEW_IMAGES}) for: {', '.join(map(_cell, few))}")
        return "## Intended use and limits\n\n" + "\n".join(lines)


def _cell(text: str) -> str:
    """A class name as a markdown table cell: a '|' would end the cell, a newline the table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
