"""Multi-label classification: each image has a set of classes, so each class gets its own sigmoid.

    task = MultiLabel()
    loss = task.train_loss(logits, y)          # y: 0/1 N x K; binary cross-entropy on the logits
    tally = task.tally(device)
    tally.add(logits, y, loss_sum)             # per batch: sigmoid probabilities and targets, on the device
    metrics = tally.result(dist)               # {"loss", "acc", "micro_f1", "macro_f1", "map", "thresholds"}

Each class's threshold is the one that maximises its F1 on the epoch's outputs (the validation
images for val_ metrics), and the model file keeps the best epoch's validation thresholds. F1
and exact-match accuracy are measured at those thresholds, so on validation they are the best
those outputs allow; mAP (sklearn's macro average_precision_score) needs no threshold at all.
"""
import numpy as np
import torch
from torch import nn

from .distributed import Distributed

DEFAULT_THRESHOLD = 0.5  # for a class without positive images, where no F1 can be maximised


class MultiLabel:
    """Sigmoid per class, binary cross-entropy on 0/1 targets; scored by mAP and F1 at per-class thresholds.

    label_smoothing eps pulls targets to eps/2 and 1 - eps/2 (each class is a two-way softmax).
    """

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def train_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        soft = targets.to(logits.dtype) * (1 - self.label_smoothing) + self.label_smoothing / 2
        return nn.functional.binary_cross_entropy_with_logits(logits, soft)

    def eval_loss_sum(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per image, the BCE averaged over classes; summed over the batch (the train loss's scale)."""
        per_element = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
        return per_element.mean(dim=1).sum()

    def tally(self, device: torch.device) -> "MultiLabelTally":
        return MultiLabelTally(device)


class MultiLabelTally:
    """Loss sum, sigmoid probabilities and targets over an epoch, kept on the device until result()."""

    def __init__(self, device: torch.device):
        self.device = device
        self.loss_sum = torch.zeros((), device=device)
        self.probs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.seen = 0  # images over all processes, known after result()

    def add(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor) -> None:
        self.probs.append(torch.sigmoid(logits.detach().float()))
        self.targets.append(targets.detach().to(torch.uint8))
        self.loss_sum += loss_sum.detach().float()

    def result(self, dist: Distributed | None = None) -> dict:
        """Gathered from every process (every rank must call it), then the epoch's metrics."""
        dist = dist or Distributed()
        loss_sum = dist.sum(self.loss_sum.reshape(1))[0]
        probs = dist.gather(torch.cat(self.probs)).cpu().numpy()
        targets = dist.gather(torch.cat(self.targets)).cpu().numpy()
        self.seen = len(probs)
        return {"loss": (loss_sum / len(probs)).item(), **multilabel_metrics(probs, targets)}


def multilabel_metrics(probs: np.ndarray, targets: np.ndarray) -> dict:
    """acc (exact match), micro_f1, macro_f1 at the F1-best per-class thresholds, map, and those thresholds."""
    curves = [ranked(probs[:, k], targets[:, k]) for k in range(probs.shape[1])]
    thresholds = np.array([_best_threshold(curve) for curve in curves])
    predicted = probs >= thresholds
    truth = targets.astype(bool)
    counts = f1_counts(predicted, truth)
    precisions = [average_precision(curve) for curve in curves]
    return {"acc": float((predicted == truth).all(axis=1).mean()),
            "micro_f1": micro_f1(counts), "macro_f1": macro_f1(counts),
            "map": float(np.nanmean(precisions)) if not np.isnan(precisions).all() else float("nan"),
            "thresholds": [float(t) for t in thresholds]}


def ranked(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One class's (distinct scores high to low, positives at or above each, images at or above
    each, positives in all): the points of its precision-recall curve, ties kept together as sklearn does."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], np.cumsum(targets[order])
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]  # last row of each tie
    return sorted_scores[ends], hits[ends], ends + 1, int(targets.sum())


def average_precision(curve) -> float:
    """Sum over thresholds of (recall step) x precision: sklearn's average_precision_score; nan without positives."""
    _, true_positives, predicted, positives = curve
    if not positives:
        return float("nan")
    recall_steps = np.diff(np.r_[0, true_positives]) / positives
    return float(np.sum(recall_steps * true_positives / predicted))


def _best_threshold(curve) -> float:
    """The threshold with the highest F1: halfway between the score it keeps and the next lower one."""
    scores, true_positives, predicted, positives = curve
    if not positives:
        return DEFAULT_THRESHOLD
    f1 = 2 * true_positives / (predicted + positives)
    best = int(np.argmax(f1))  # the highest threshold among equals: fewest false alarms
    lower = scores[best + 1] if best + 1 < len(scores) else 0.0
    return float((scores[best] + lower) / 2)


def f1_counts(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: true positives, predicted positives, actual positives."""
    return (predicted & truth).sum(axis=0), predicted.sum(axis=0), truth.sum(axis=0)


def micro_f1(counts) -> float:
    hits, predicted, actual = (c.sum() for c in counts)
    return float(2 * hits / max(1, predicted + actual))


def macro_f1(counts) -> float:
    """Mean F1 over the classes that occur in the targets or the predictions (as in single-label)."""
    hits, predicted, actual = counts
    counted = (predicted + actual) > 0
    if not counted.any():
        return 0.0
    return float(np.mean(2 * hits[counted] / (predicted + actual)[counted]))
