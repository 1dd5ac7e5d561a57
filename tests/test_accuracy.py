"""Real accuracy on real MNIST, through the CLI, as a user runs it. Marked slow (~30 s).

Full MNIST comes from real_mnist.folder: $VISIONFIT_MNIST, ../shared/datasets/mnist, the
named-dataset cache, or a download; the test is skipped, saying why, only when all fail.
"""
import json
from pathlib import Path

import pytest

from visionfit.cli import main

from . import real_mnist


def best_val_acc(run_dir: Path) -> float:
    return json.loads((run_dir / "summary.json").read_text())["best_score"]


@pytest.mark.slow
def test_default_command_reaches_97_percent_on_the_embedded_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["train", "--quiet"])  # exactly the README's first command, plus no progress bar
    assert best_val_acc(tmp_path / "runs" / "exp") >= 0.97


@pytest.mark.slow
def test_relu_lenet_reaches_98_5_percent_on_real_mnist_in_3_epochs(tmp_path):
    mnist = real_mnist.folder(download=True)
    # lenet_relu has no recipe of its own: visionfit's default (SGD momentum, cosine, pad + crop).
    main(["train", "--data", str(mnist), "--model", "lenet_relu", "--epochs", "3", "--quiet", "--project", str(tmp_path)])
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert summary["train_images"] == 60000 and summary["val_images"] == 10000  # val = the real t10k test set
    assert summary["best_score"] >= 0.985
