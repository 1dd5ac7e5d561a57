"""MixUp/CutMix targets: soft rows that sum to 1, weights that match the blend or the pasted
area, label smoothing once, and the same loss as timm's Mixup + SoftTargetCrossEntropy."""
import numpy as np
import pytest
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy

from visionfit.config import Config, TrainConfig
from visionfit.errors import ConfigError
from visionfit.train.mixing import BatchMixer, Unmixed, batch_mixer, numpy_random
from visionfit.train.tasks import SingleLabel

from ..test_trainer import make_trainer

CLASSES = 5


def numbered_batch(n: int = 8, side: int = 12):
    """Image i is filled with the value i + 1, so every pixel says which image it came from; for
    n = 8 (and the first 6 of n = 7) no image has its mirror's label."""
    x = torch.arange(1, n + 1, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 3, side, side).clone()
    y = torch.tensor([0, 1, 2, 3, 4, 4, 0, 1][:n])
    return x, y


def own_weight(targets: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The weight each row gives its own image's label."""
    return targets[torch.arange(len(y)), y]


@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_soft_targets_sum_to_one_and_hold_the_pair_s_two_labels(mixup, cutmix):
    mixer = BatchMixer(mixup, cutmix, prob=1.0, num_classes=CLASSES, seed=3)
    for epoch in range(4):
        mixer.set_epoch(epoch)
        x, y = numbered_batch()
        _, targets, labels = mixer(x, y)
        assert targets.shape == (8, CLASSES) and torch.allclose(targets.sum(1), torch.ones(8))
        pair = y.flip(0)
        lam = own_weight(targets, y)
        assert torch.allclose(targets[torch.arange(8), pair], 1 - lam)  # the rest goes to the flipped image's label
        assert torch.equal(labels, torch.where(lam >= 0.5, y, pair))


def test_mixup_blends_each_image_with_its_mirror_by_the_target_weight():
    mixer = BatchMixer(0.4, 0.0, prob=1.0, num_classes=CLASSES, seed=1)
    x, y = numbered_batch()
    original = x.clone()
    mixed, targets, _ = mixer(x, y)
    lam = own_weight(targets, y)[0]
    assert 0 < lam < 1
    assert torch.allclose(mixed, lam * original + (1 - lam) * original.flip(0))
    assert mixed.data_ptr() == x.data_ptr()  # in place, as timm mixes: the loader made this batch for us


def test_cutmix_weights_are_the_unpasted_area():
    mixer = BatchMixer(0.0, 1.0, prob=1.0, num_classes=CLASSES, seed=0)
    seen = 0
    for epoch in range(6):
        mixer.set_epoch(epoch)
        x, y = numbered_batch(side=16)
        original = x.clone()
        mixed, targets, _ = mixer(x, y)
        pasted = (mixed != original).float().mean(dim=(1, 2, 3))  # image i and its mirror differ everywhere
        assert torch.allclose(own_weight(targets, y), 1 - pasted)
        seen += bool(pasted.sum())
    assert seen >= 4  # it did paste, in most epochs


def test_the_task_smooths_once_and_matches_timm_soft_target_cross_entropy():
    """Our targets carry no smoothing; SingleLabel(label_smoothing) applies it in the loss. That is
    the loss timm's own recipe computes: Mixup(label_smoothing) targets, SoftTargetCrossEntropy."""
    smoothing = 0.1
    mixer = BatchMixer(0.4, 1.0, prob=1.0, num_classes=CLASSES, seed=7)
    mixer.set_epoch(2)
    timm_mixup = Mixup(mixup_alpha=0.4, cutmix_alpha=1.0, prob=1.0, label_smoothing=smoothing, num_classes=CLASSES)
    x, y = numbered_batch()
    timm_x = x.clone()
    twin = np.random.RandomState()
    twin.set_state(mixer.random.get_state())
    with numpy_random(twin):  # timm's draws come from the same generator state as ours
        timm_x, timm_targets = timm_mixup(timm_x, y)
    mixed, targets, _ = mixer(x, y)
    assert torch.equal(mixed, timm_x)
    logits = torch.randn(8, CLASSES, generator=torch.Generator().manual_seed(0))
    ours = SingleLabel(label_smoothing=smoothing).train_loss(logits, targets)
    theirs = SoftTargetCrossEntropy()(logits, timm_targets)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    twice = SingleLabel(label_smoothing=smoothing).train_loss(logits, timm_targets)  # smoothing the smoothed
    assert abs(twice.item() - theirs.item()) > 1e-4


def test_without_smoothing_the_task_loss_is_soft_target_cross_entropy():
    logits = torch.randn(6, CLASSES, generator=torch.Generator().manual_seed(1))
    targets = torch.softmax(torch.randn(6, CLASSES, generator=torch.Generator().manual_seed(2)), 1)
    assert SingleLabel().train_loss(logits, targets).item() == pytest.approx(
        SoftTargetCrossEntropy()(logits, targets).item(), rel=1e-6)


def test_an_odd_batch_mixes_all_but_its_last_image():
    mixer = BatchMixer(0.4, 0.0, prob=1.0, num_classes=CLASSES, seed=1)
    x, y = numbered_batch(7)
    original = x.clone()
    mixed, targets, labels = mixer(x, y)
    assert torch.equal(mixed[6], original[6]) and torch.equal(targets[6], torch.eye(CLASSES)[y[6]])
    lam = own_weight(targets, y)[0]
    assert 0 < lam < 1
    assert torch.allclose(mixed[:6], lam * original[:6] + (1 - lam) * original[:6].flip(0))
    assert labels[6] == y[6]
    one = numbered_batch(1)
    assert torch.equal(mixer(*one)[1], torch.eye(CLASSES)[one[1]])  # a batch of one: nothing to mix with


def test_mixing_is_seeded_by_epoch_and_rank_and_leaves_numpy_s_generator_alone():
    def mix(epoch: int, rank: int = 0):
        mixer = BatchMixer(0.4, 1.0, prob=1.0, num_classes=CLASSES, seed=5, rank=rank)
        mixer.set_epoch(epoch)
        return torch.cat([mixer(*numbered_batch())[1] for _ in range(3)])

    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = mix(epoch=4)
    assert np.random.rand() == expected_next
    assert torch.equal(first, mix(epoch=4))  # a resumed run's epoch 5 mixes as the uninterrupted one did
    assert not torch.equal(first, mix(epoch=5))
    assert not torch.equal(first, mix(epoch=4, rank=1))


def test_mix_prob_zero_or_no_alpha_means_no_mixing():
    assert isinstance(batch_mixer(TrainConfig(mixup=0.8, mix_prob=0.0), CLASSES), Unmixed)
    assert isinstance(batch_mixer(TrainConfig(), CLASSES), Unmixed)
    assert isinstance(batch_mixer(TrainConfig(cutmix=1.0), CLASSES), BatchMixer)
    mixer = BatchMixer(0.4, 0.0, prob=0.5, num_classes=CLASSES)
    mixed_rows = [bool((own_weight(mixer(*numbered_batch())[1], numbered_batch()[1]) < 1).any()) for _ in range(40)]
    assert 8 < sum(mixed_rows) < 32  # about half of the batches


def test_cached_features_cannot_be_mixed():
    with pytest.raises(ConfigError, match="--cache-features trains on features computed once, which --mixup"):
        Config.from_options(freeze="backbone", cache_features=True, mixup=0.2)


def test_the_trainer_trains_on_the_soft_targets_and_counts_the_dominant_label():
    class FavoursClassTwo:
        """Soft targets 0.2 / 0.2 / 0.6 for every image: class 2 has the larger weight."""

        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __call__(self, x, y):
            targets = torch.tensor([0.2, 0.2, 0.6]).expand(len(y), 3)
            return x, targets, torch.full_like(y, 2)

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor([0.0, 0.0, 10.0]))  # always predicts class 2
    trainer = make_trainer(net, lr=1e-9)
    trainer.mixer = FavoursClassTwo()
    history = trainer.fit()
    assert trainer.mixer.epochs == [0, 1]
    assert history[0]["acc"] == 1.0  # the loader's labels (i % 3) would give a third
    expected = torch.nn.functional.cross_entropy(torch.tensor([[0.0, 0.0, 10.0]]), torch.tensor([[0.2, 0.2, 0.6]]))
    assert history[0]["loss"] == pytest.approx(expected.item(), rel=1e-4)
