"""MODEL_CARD.md: written by every run, from the run's own numbers."""
import visionfit

FAST = dict(epochs=2, lr=0.05, optimizer="adam", batch_size=16, quiet=True, image_size=16)


def _card_rows(card: str, heading: str) -> list[list[str]]:
    """The body rows of the first markdown table after `heading`, as lists of cells."""
    lines = card.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[start + 2:end]]


def test_the_card_holds_the_runs_counts_metrics_and_confusion_matrix(tiny_splits, tmp_path):
    result = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path), **FAST)
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    best = result.history[result.best_epoch - 1]
    assert f"best epoch {result.best_epoch}: loss {best['loss']:.4f}" in card
    assert f"val_acc {best['val_acc']:.4f}" in card
    assert _card_rows(card, "## Data") == [["left", "32", "10"], ["middle", "32", "10"], ["right", "32", "10"]]
    report = visionfit.evaluate(result.best_model, tiny_splits.val, out=tmp_path / "eval")
    confusion = [[int(cell) for cell in row[1:]] for row in _card_rows(card, "## Confusion matrix")]
    assert confusion == report.confusion.tolist()
    assert sum(confusion[k][k] for k in range(3)) / 30 == best["val_acc"]
    assert "## Intended use and limits" in card and "few training images" not in card


def test_a_small_run_without_validation_says_so(tiny_splits, tmp_path):
    splits = type(tiny_splits)(tiny_splits.name, tiny_splits.class_names, tiny_splits.train)
    result = visionfit.fit("mlp", splits, project=str(tmp_path), val_split=0.0, max_per_class=8, **FAST)
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    assert "no validation split" in card and "## Confusion matrix" not in card
    assert _card_rows(card, "## Data")[0] == ["left", "8", "-"]
    assert "few training images (under 20) for: left, middle, right" in card


def test_the_card_takes_the_best_epochs_own_tally_without_another_pass(tiny_splits, tmp_path, monkeypatch):
    from visionfit.train import session

    def no_pass(*args):
        raise AssertionError("a validation pass the best epoch had made already")

    monkeypatch.setattr(session, "predictions", no_pass)
    result = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path), **FAST)
    best = result.history[result.best_epoch - 1]
    confusion = [[int(cell) for cell in row[1:]] for row in _card_rows(
        (result.run_dir / "MODEL_CARD.md").read_text(), "## Confusion matrix")]
    assert sum(map(sum, confusion)) == 30 and sum(confusion[k][k] for k in range(3)) / 30 == best["val_acc"]


def test_a_best_epoch_before_a_resume_is_evaluated_again(tiny_splits, tmp_path, monkeypatch):
    """The resumed process never tallied the best epoch (its Checkpointer kept no matrix): one pass."""
    from visionfit.train import session
    from visionfit.train.callbacks import Checkpointer

    passes = []
    real = session.predictions
    monkeypatch.setattr(session, "predictions", lambda *args: passes.append(1) or real(*args))
    monkeypatch.setattr(Checkpointer, "best_confusion_of", lambda *args: None)
    result = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path), **FAST)
    assert passes == [1]
    confusion = [[int(cell) for cell in row[1:]] for row in _card_rows(
        (result.run_dir / "MODEL_CARD.md").read_text(), "## Confusion matrix")]
    report = visionfit.evaluate(result.best_model, tiny_splits.val, out=tmp_path / "eval")
    assert confusion == report.confusion.tolist()


def test_a_tally_of_another_epoch_or_of_padded_shards_is_not_used():
    import numpy as np

    from visionfit.train.callbacks import Checkpointer

    checkpointer = Checkpointer.__new__(Checkpointer)
    checkpointer.best_epoch, checkpointer.best_confusion = 3, np.array([[4, 1], [0, 5]])
    assert checkpointer.best_confusion_of(3, 10) is checkpointer.best_confusion
    assert checkpointer.best_confusion_of(2, 10) is None  # the best epoch ran before a --resume
    assert checkpointer.best_confusion_of(3, 9) is None  # two processes' shards repeat an image
