"""Guard rails for small data: the few-steps warning at the start, the chance-level warning at the end."""
import torch

import visionfit
from visionfit.config import Config
from visionfit.resolve import resolve_recipe
from visionfit.train.guards import chance_level, chance_warning, few_steps_warning, steps_in_epoch


def config(**options):
    return resolve_recipe(Config.from_options(**options))


def test_few_steps_per_epoch_are_named_with_a_batch_and_epochs_that_would_do():
    run, _ = config(epochs=5)  # batch 128
    steps = steps_in_epoch(480, 128)
    message = few_steps_warning(steps, 480, run)
    assert steps == 4 and message.startswith("only 4 optimizer steps per epoch (480 training images, batch 128)")
    assert "try --batch-size 16 (30 steps) or --epochs 25" in message  # 16: the largest power of two giving >= 20
    assert few_steps_warning(steps_in_epoch(2560, 128), 2560, run) is None  # 20 steps: enough


def test_accumulation_and_processes_count_in_the_steps():
    run, _ = config(epochs=2, accumulate=2, batch_size=32)
    steps = steps_in_epoch(1000, 32, accumulate=2, world_size=2)
    assert steps == 8  # 500 images a process, 16 batches, 8 steps
    assert "2 batches a step, 2 processes" in few_steps_warning(steps, 1000, run, world_size=2)


def test_chance_is_the_majority_share_or_one_over_the_classes():
    assert chance_level(torch.tensor([0, 1, 2, 3] * 25), 4) == (0.25, (0.25 * 0.75 / 100) ** 0.5)
    assert chance_level(torch.tensor([0] * 90 + [1] * 10), 2)[0] == 0.9


def test_a_run_at_chance_is_told_its_likely_causes_and_a_learning_run_is_not():
    labels = torch.tensor([0, 1, 2, 3, 4] * 40)
    run, recipe = config(model="lenet", lr=0.01)  # sigmoid LeNet off its recipe
    stuck = [{"epoch": 0, "val_acc": 0.21}, {"epoch": 1, "val_acc": 0.23}]
    message = chance_warning(stuck, labels, 5, run, steps_per_epoch=4, recipe=recipe)
    assert message.startswith("validation accuracy stayed at chance: best 23.0%, where guessing gives 20.0%")
    assert "sigmoid LeNet trains only with its d2l recipe" in message and "too few steps (8 in all)" in message
    learned = stuck + [{"epoch": 2, "val_acc": 0.35}]
    assert chance_warning(learned, labels, 5, run, steps_per_epoch=4, recipe=recipe) is None
    on_recipe, own = config(model="lenet")
    assert "sigmoid LeNet" not in chance_warning(stuck, labels, 5, on_recipe, steps_per_epoch=400, recipe=own)
    assert chance_warning([{"epoch": 0, "val_acc": None}], labels, 5, run, 4, recipe) is None  # no validation


def test_a_tiny_run_says_both_at_the_start_and_the_end(tiny_splits, tmp_path, capsys):
    visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path), epochs=2, image_size=16, lr=1e-6, quiet=True)
    said = capsys.readouterr()  # warnings on stderr, the run's record (epoch lines) on stdout
    err = said.err
    assert "epoch 1/2" in said.out and "warning" not in said.out
    assert err.index("warning: only 1 optimizer step per epoch") < err.index("warning: validation accuracy stayed")
    assert "try --batch-size 4 (24 steps) or --epochs 40" in err and "the learning rate (sgd at 1e-06)" in err
