"""--monitor: which epoch is best, when early stopping stops, what the epoch line shows."""
import io
import math

import pytest

from visionfit.train.callbacks import EarlyStopping, format_epoch, monitored_key, score

# Validation accuracy, loss, macro-F1 and balanced accuracy each peak in another epoch.
HISTORY = [
    {"epoch": 1, "loss": 0.9, "acc": 0.80, "macro_f1": 0.5, "balanced_acc": 0.5,
     "val_loss": 0.50, "val_acc": 0.90, "val_macro_f1": 0.60, "val_balanced_acc": 0.62},
    {"epoch": 2, "loss": 0.7, "acc": 0.85, "macro_f1": 0.7, "balanced_acc": 0.9,
     "val_loss": 0.30, "val_acc": 0.85, "val_macro_f1": 0.80, "val_balanced_acc": 0.70},
    {"epoch": 3, "loss": 0.8, "acc": 0.95, "macro_f1": 0.9, "balanced_acc": 0.6,
     "val_loss": 0.40, "val_acc": 0.88, "val_macro_f1": 0.70, "val_balanced_acc": 0.90},
]
TRAINING_ONLY = [{k: v for k, v in row.items() if not k.startswith("val_")} for row in HISTORY]


def best_epoch(history, monitor):
    return max(history, key=lambda row: score(row, monitor))["epoch"]


@pytest.mark.parametrize("monitor, with_val, without_val", [
    ("val_acc", 1, 3), ("val_loss", 2, 2), ("macro_f1", 2, 3), ("balanced_acc", 3, 2)])
def test_the_monitor_picks_the_best_epoch(monitor, with_val, without_val):
    assert best_epoch(HISTORY, monitor) == with_val
    assert best_epoch(TRAINING_ONLY, monitor) == without_val  # the training metric of the same name


def test_lower_loss_scores_higher_and_nan_never_wins():
    assert score(HISTORY[1], "val_loss") == -0.30
    assert score(TRAINING_ONLY[0], "val_loss") == -0.9
    assert monitored_key(TRAINING_ONLY[0], "macro_f1") == "macro_f1"
    assert monitored_key(HISTORY[0], "macro_f1") == "val_macro_f1"
    spoiled = {**HISTORY[1], "val_loss": math.nan, "val_macro_f1": math.nan}
    assert score(spoiled, "val_loss") == score(spoiled, "macro_f1") == -math.inf
    assert best_epoch([spoiled, HISTORY[0]], "val_loss") == 1


class FakeTrainer:
    def __init__(self, history=()):
        self.history, self.should_stop = list(history), False


def run_stopper(monitor, history, patience=1):
    """The epoch early stopping ends the run at (None: it runs through), and what it printed."""
    stream = io.StringIO()
    stopper, trainer = EarlyStopping(patience, monitor, stream=stream), FakeTrainer()
    stopper.on_fit_start(trainer)
    for row in history:
        stopper.on_epoch_end(trainer, row)
        if trainer.should_stop:
            return row["epoch"], stream.getvalue()
    return None, stream.getvalue()


def test_early_stopping_follows_the_monitor_and_names_it():
    # val_acc peaks at epoch 1: patience 1 stops at epoch 2; val_loss improves until epoch 2: stops at 3
    assert run_stopper("val_acc", HISTORY) == (2, "early stop: val_acc has not improved for 1 epochs\n")
    assert run_stopper("val_loss", HISTORY) == (3, "early stop: val_loss has not improved for 1 epochs\n")
    assert run_stopper("balanced_acc", HISTORY) == (None, "")  # it improves every epoch


def test_a_resumed_stopper_counts_the_epochs_it_already_waited():
    stopper, trainer = EarlyStopping(2, "val_loss"), FakeTrainer(HISTORY)
    stopper.on_fit_start(trainer)
    assert (stopper.best, stopper.waited) == (-0.30, 1)


def test_the_epoch_line_shows_the_monitored_metric():
    row = {**HISTORY[0], "lr": 0.1, "images_per_s": 1000.0, "seconds": 1.0}
    assert "val_macro_f1 0.6000" in format_epoch(row, 3, "macro_f1")
    assert "val_balanced_acc 0.6200" in format_epoch(row, 3, "balanced_acc")
    assert "macro_f1" not in format_epoch(row, 3, "val_acc")
    no_val = {**TRAINING_ONLY[0], "lr": 0.1, "images_per_s": 1000.0, "seconds": 1.0}
    assert "  balanced_acc 0.5000" in format_epoch(no_val, 3, "balanced_acc")
