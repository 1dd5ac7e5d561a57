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
