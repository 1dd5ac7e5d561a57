"""The multi-label task: BCE on 0/1 targets, and a tally whose mAP, F1 and exact match agree with scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from visionfit.train.multilabel import MultiLabel, multilabel_metrics


def _outputs(seed: int, images: int = 150, classes: int = 4):
    """0/1 targets, and logits that rank positives higher, rounded so that many scores tie."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((images, classes)) < [0.5, 0.3, 0.1, 0.6]).astype(np.int64)
    targets[0] = 1  # every class has a positive image
    logits = np.round(rng.normal(size=(images, classes)) + 1.5 * targets, 1)
    return torch.tensor(logits, dtype=torch.float32), torch.tensor(targets)


def test_train_loss_is_bce_with_logits_on_the_targets_smoothed_toward_one_half():
    logits, targets = _outputs(0)
    loss = MultiLabel().train_loss(logits, targets)
    assert loss.item() == pytest.approx(torch.nn.BCEWithLogitsLoss()(logits, targets.float()).item())
    smoothed = MultiLabel(label_smoothing=0.2).train_loss(logits, targets)
    expected = torch.nn.BCEWithLogitsLoss()(logits, targets.float() * 0.8 + 0.1)
    assert smoothed.item() == pytest.approx(expected.item())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tally_over_batches_matches_sklearn(seed):
    logits, targets = _outputs(seed)
    task = MultiLabel()
    tally = task.tally(torch.device("cpu"))
    for start in range(0, len(logits), 64):
        x, y = logits[start:start + 64], targets[start:start + 64]
        tally.add(x, y, task.eval_loss_sum(x, y))
    metrics = tally.result()
    probs, truth = torch.sigmoid(logits).numpy(), targets.numpy()
    assert metrics["map"] == pytest.approx(average_precision_score(truth, probs, average="macro"))
    assert metrics["loss"] == pytest.approx(task.train_loss(logits, targets).item(), rel=1e-5)
    predicted = (probs >= np.asarray(metrics["thresholds"])).astype(int)
    assert metrics["micro_f1"] == pytest.approx(f1_score(truth, predicted, average="micro"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert metrics["acc"] == pytest.approx(accuracy_score(truth, predicted))  # exact match (subset accuracy)
    assert tally.seen == len(logits)


@pytest.mark.parametrize("seed", [0, 1])
def test_each_threshold_gives_its_class_the_best_f1_of_any_threshold(seed):
    logits, targets = _outputs(seed)
    probs, truth = torch.sigmoid(logits).numpy(), targets.numpy()
    thresholds = multilabel_metrics(probs, truth)["thresholds"]
    for k, threshold in enumerate(thresholds):
        candidates = np.r_[np.unique(probs[:, k]), 1.1]
        best = max(_f1(truth[:, k], probs[:, k] >= t) for t in candidates)  # every threshold that changes anything
        assert _f1(truth[:, k], probs[:, k] >= threshold) == pytest.approx(best)
        assert f1_score(truth[:, k], probs[:, k] >= threshold) == pytest.approx(best)
        # halfway between two scores: no validation image sits on the threshold itself
        assert threshold not in probs[:, k]


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    hits = np.sum(truth & predicted)
    return 2 * hits / (truth.sum() + predicted.sum())


def test_a_class_without_positive_images_keeps_the_default_threshold_and_stays_out_of_the_map():
    probs = np.array([[0.9, 0.2], [0.1, 0.7], [0.8, 0.4]], dtype=np.float32)
    truth = np.array([[1, 0], [0, 0], [1, 0]])
    metrics = multilabel_metrics(probs, truth)
    assert metrics["thresholds"][1] == 0.5
    assert metrics["map"] == pytest.approx(average_precision_score(truth[:, 0], probs[:, 0]))
