"""Classification metrics from labels and predicted probabilities, in plain numpy.

Undefined ratios (a class never predicted, or absent from the data) count as 0, as
scikit-learn's zero_division=0 does, so a report never holds NaN.
"""
import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 K x K counts: row = true class, column = predicted class."""
    flat = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 (floats) and support (ints), one entry per class."""
    true_positives = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = _ratio(true_positives, predicted)
    recall = _ratio(true_positives, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the k most probable."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def top_losses(probs: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the misclassified samples with the highest cross-entropy loss, worst first.

    fastai's "top losses": the images the model is most confidently wrong about.
    """
    losses = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
    wrong = np.flatnonzero(probs.argmax(axis=1) != labels)
    return wrong[np.argsort(-losses[wrong], kind="stable")][:count]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)
