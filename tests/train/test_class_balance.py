"""--class-weights: the per-class values, and the loss they weight."""
import pytest
import torch

from visionfit.train.class_balance import EFFECTIVE_BETA, class_weights
from visionfit.train.tasks import SingleLabel

# 6 of class 0, 2 of class 1, 1 of class 2, none of class 3: N = 9
LABELS = torch.tensor([0] * 6 + [1] * 2 + [2])


def test_none_means_no_weights():
    assert class_weights(LABELS, 4, "none") is None


def test_inverse_frequency_by_hand():
    # raw 1/6, 1/2, 1; sum_c n_c raw_c = 3 (one per present class), scale N / 3 = 3
    weights = class_weights(LABELS, 4, "auto")
    assert weights.tolist() == pytest.approx([0.5, 1.5, 3.0, 0.0])


def test_effective_number_by_hand():
    beta = EFFECTIVE_BETA
    raw = [(1 - beta) / (1 - beta ** n) for n in (6, 2, 1)]
    scale = 9 / (6 * raw[0] + 2 * raw[1] + 1 * raw[2])
    weights = class_weights(LABELS, 4, "effective")
    assert weights.tolist() == pytest.approx([r * scale for r in raw] + [0.0], rel=1e-6)
    # with few images per class the effective number is about the count: close to inverse frequency
    assert weights.tolist() == pytest.approx([0.5, 1.5, 3.0, 0.0], rel=1e-3)


def test_effective_number_flattens_big_classes_more_than_inverse_frequency():
    labels = torch.tensor([0] * 6000 + [1] * 300)
    auto, effective = class_weights(labels, 2, "auto"), class_weights(labels, 2, "effective")
    assert (auto[1] / auto[0]).item() == pytest.approx(20)
    beta = EFFECTIVE_BETA
    assert (effective[1] / effective[0]).item() == pytest.approx((1 - beta ** 6000) / (1 - beta ** 300), rel=1e-5)
    assert 10 < (effective[1] / effective[0]).item() < 20


@pytest.mark.parametrize("rule", ["auto", "effective"])
def test_the_mean_weight_over_training_samples_is_one(rule):
    labels = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(0)) ** 2 % 5  # skewed
    assert class_weights(labels, 5, rule)[labels].mean().item() == pytest.approx(1.0, rel=1e-6)


def test_weighted_task_loss_is_torchs_weighted_cross_entropy_and_validation_stays_plain():
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(9, 4, generator=generator), LABELS
    weights = class_weights(labels, 4, "auto")
    task = SingleLabel(class_weights=weights)
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
    assert task.train_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    by_hand = (weights[labels] * -logits.log_softmax(1)[torch.arange(9), labels]).sum() / weights[labels].sum()
    assert task.train_loss(logits, labels).item() == pytest.approx(by_hand.item(), rel=1e-6)
    plain = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
    assert task.eval_loss_sum(logits, labels).item() == pytest.approx(plain.item(), rel=1e-6)
    assert abs(expected - plain / 9) > 0.01  # the weights do change the training loss
