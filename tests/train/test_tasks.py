"""The single-label task's metrics agree with scikit-learn's, batch by batch or all at once."""
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from visionfit.train.tasks import SingleLabel


def _logits_for(predicted: np.ndarray, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(predicted), classes).float() * 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tally_matches_sklearn_over_batches(seed):
    rng = np.random.default_rng(seed)
    classes = 5
    labels = rng.integers(0, classes, 97)
    labels[labels == 3] = 1  # class 3 never occurs: macro averages must leave it out as sklearn does
    predicted = np.where(rng.random(97) < 0.6, labels, rng.integers(0, classes, 97))
    predicted[predicted == 3] = 4
    task = SingleLabel()
    tally = task.tally(torch.device("cpu"))
    for start in range(0, 97, 32):
        logits = _logits_for(predicted[start:start + 32], classes)
        y = torch.as_tensor(labels[start:start + 32])
        tally.add(logits, y, task.eval_loss_sum(logits, y))
    metrics = tally.result()
    assert metrics["acc"] == pytest.approx(accuracy_score(labels, predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert metrics["balanced_acc"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    expected_loss = torch.nn.functional.cross_entropy(_logits_for(predicted, classes), torch.as_tensor(labels))
    assert metrics["loss"] == pytest.approx(expected_loss.item(), rel=1e-5)
    assert tally.seen == 97


def test_imbalance_separates_accuracy_from_macro_scores():
    """90 of class 0 all right, 10 of class 1 all wrong: accuracy 0.9, balanced accuracy 0.5."""
    labels = torch.tensor([0] * 90 + [1] * 10)
    tally = SingleLabel().tally(torch.device("cpu"))
    tally.add(_logits_for(np.zeros(100, dtype=int), 2), labels, torch.zeros(()))
    metrics = tally.result()
    assert metrics["acc"] == pytest.approx(0.9)
    assert metrics["balanced_acc"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx((2 * 90 / 190 + 0) / 2)


def test_tally_counts_batches_that_grow_and_shrink():
    """The per-image counts are a buffer viewed at each batch's length: a bigger batch later grows it."""
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 2, 1, 1])
    predicted = torch.tensor([0, 2, 2, 1, 1, 0, 1, 2, 1, 0])
    tally = SingleLabel().tally(torch.device("cpu"))
    for start, stop in [(0, 2), (2, 7), (7, 10)]:
        tally.add(_logits_for(predicted[start:stop].numpy(), 3), labels[start:stop], torch.zeros(()))
    expected = torch.zeros(3, 3, dtype=torch.long)
    for true, guess in zip(labels.tolist(), predicted.tolist()):
        expected[true, guess] += 1
    assert torch.equal(tally.confusion.reshape(3, 3), expected)
    assert tally.result()["acc"] == pytest.approx(6 / 10)
