"""What a classifier is trained to do, and how its outputs are scored.

The trainer asks a task for the training loss and for a tally that adds up one epoch's
outputs; the tally's result becomes the epoch's metrics (`acc`, `macro_f1`, ...). One
class of images per sample is `SingleLabel`: softmax, cross-entropy, and the confusion
matrix behind accuracy, macro-F1 and balanced accuracy.

    task = SingleLabel(label_smoothing=0.1)
    loss = task.train_loss(logits, y)          # y: class indices N, or soft targets N x K
    tally = task.tally(device)
    tally.add(logits, y, loss_sum)             # per batch, kept on the device (no sync)
    metrics = tally.result(dist)               # {"loss", "acc", "macro_f1", "balanced_acc"}
"""
import torch
from torch import nn

from .distributed import Distributed


class SingleLabel:
    """One class per image: cross-entropy on logits (soft targets allowed), scored by its confusion matrix."""

    def __init__(self, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None):
        self.label_smoothing, self.class_weights = label_smoothing, class_weights

    def train_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.class_weights is None else self.class_weights.to(logits.device, logits.dtype)
        return nn.functional.cross_entropy(logits, targets, weight=weight, label_smoothing=self.label_smoothing)

    def eval_loss_sum(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Plain cross-entropy summed over the batch: validation loss means the same in every run."""
        return nn.functional.cross_entropy(logits.float(), labels, reduction="sum")

    def tally(self, device: torch.device) -> "ConfusionTally":
        return ConfusionTally(device)


class ConfusionTally:
    """Loss sum and confusion matrix (rows: true class, columns: predicted) over an epoch, on the device.

    `add` queues three small ops and never waits for the device: the cells are counted with
    scatter_add_, since torch.bincount on CUDA reads the labels' min and max back to the host
    (two syncs a batch).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.loss_sum = torch.zeros((), device=device)
        self.confusion: torch.Tensor | None = None  # sized from the first batch's logits
        self.ones: torch.Tensor | None = None  # one count per image, viewed at each batch's length
        self.seen = 0  # images over all processes, known after result()
        self.summed: torch.Tensor | None = None  # K x K over all processes, known after result()

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """labels: class indices N (for soft targets, the class each image counts as); loss_sum: detached."""
        classes = logits.shape[1]
        if self.confusion is None:
            self.confusion = torch.zeros(classes * classes, device=self.device, dtype=torch.long)
        if self.ones is None or len(self.ones) < len(labels):
            self.ones = torch.ones(len(labels), device=self.device, dtype=torch.long)
        cells = logits.argmax(1).add_(labels, alpha=classes)  # true * classes + predicted
        self.confusion.scatter_add_(0, cells, self.ones[: len(labels)])
        self.loss_sum += loss_sum

    def result(self, dist: Distributed | None = None) -> dict:
        """Summed over processes (every rank must call it), then the epoch's metrics."""
        dist = dist or Distributed()
        loss_sum = dist.sum(self.loss_sum.reshape(1))[0]
        confusion = dist.sum(self.confusion.double())
        classes = int(round(len(confusion) ** 0.5))
        self.summed = confusion.reshape(classes, classes)
        self.seen = int(confusion.sum().item())
        return {"loss": (loss_sum / confusion.sum()).item(), **confusion_metrics(confusion.reshape(classes, classes))}


def confusion_metrics(confusion: torch.Tensor) -> dict:
    """Accuracy, macro-F1 and balanced accuracy (mean recall) of a K x K confusion matrix.

    Classes absent from both the labels and the predictions are left out of the macro
    averages (sklearn's f1_score and balanced_accuracy_score count only present labels).
    """
    confusion = confusion.double()
    true_per_class, predicted_per_class = confusion.sum(1), confusion.sum(0)
    hits = confusion.diagonal()
    present = true_per_class > 0
    recall = hits[present] / true_per_class[present]
    f1 = 2 * hits / (true_per_class + predicted_per_class).clamp(min=1)
    counted = present | (predicted_per_class > 0)
    return {"acc": (hits.sum() / confusion.sum()).item(),
            "macro_f1": f1[counted].mean().item(),
            "balanced_acc": recall.mean().item()}
