"""Shared by the transfer benchmarks: the MNIST splits they use and their markdown output.

Splits: train = MNIST train (fit's --max-per-class takes a seeded slice of it),
val (model selection) = t10k[2000:2500], test (reported) = t10k[:2000]; disjoint.
"""
import platform
import statistics
from datetime import date
from pathlib import Path

import numpy as np
import torch

from visionfit.data.idx import load_idx_folder
from visionfit.data.samples import DatasetSplits

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
TEST_IMAGES = 2000
VAL_IMAGES = 500


def mnist_splits(folder: Path) -> DatasetSplits:
    mnist = load_idx_folder(folder)
    return DatasetSplits("mnist", mnist.class_names, mnist.train,
                         val=mnist.val.subset(np.arange(TEST_IMAGES, TEST_IMAGES + VAL_IMAGES)),
                         test=mnist.val.subset(np.arange(TEST_IMAGES)))


def spread(values: list[float], decimals: int = 1) -> str:
    """mean ± sample std (just the value for one run)."""
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{statistics.mean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def machine() -> str:
    threads = torch.get_num_threads()
    return f"{platform.processor() or platform.machine()}, {threads} torch threads, torch {torch.__version__}, {date.today()}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
