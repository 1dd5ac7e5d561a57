"""Bad numbers on the command line: each fails before any work with one line naming the flag and its range.

`--flag=-inf` is spelled with `=`: argparse reads a lone `-inf` as an unknown option.
"""
import pytest

from .conftest import cli_error

FLOAT_FLAGS = ["lr", "lr-backbone", "lr-backbone-mult", "momentum", "weight-decay", "gamma", "warmup-epochs",
               "label-smoothing", "rotation", "val-split", "mean", "std"]
NON_FINITE = ["nan", "inf", "-inf", "1e309"]  # 1e309 overflows to inf when parsed

OUT_OF_RANGE = {
    "lr=0": ["--lr=0"],
    "lr=1e6": ["--lr=1e6"],
    "lr=-0.1": ["--lr=-0.1"],
    "lr-backbone=0": ["--lr-backbone=0"],
    "lr-backbone-mult=20": ["--lr-backbone-mult=20"],
    "momentum=1": ["--momentum=1"],
    "weight-decay=1": ["--weight-decay=1"],
    "gamma=0": ["--gamma=0"],
    "gamma=1.5": ["--gamma=1.5"],
    "warmup-epochs=epochs": ["--epochs=3", "--warmup-epochs=3"],
    "warmup-epochs=-1": ["--warmup-epochs=-1"],
    "label-smoothing=1": ["--label-smoothing=1"],
    "rotation=181": ["--rotation=181"],
    "rotation=-10": ["--rotation=-10"],
    "val-split=1": ["--val-split=1"],
    "mean=1.5": ["--mean=0.5,1.5,0.5"],
    "std=0": ["--std=0"],
    "image-size=4096": ["--image-size=4096"],
    "image-size=4": ["--image-size=4"],
    "batch-size=0": ["--batch-size=0"],
    "batch-size=100000": ["--batch-size=100000"],
    "epochs=0": ["--epochs=0"],
    "epochs=1000000": ["--epochs=1000000"],
    "workers=-1": ["--workers=-1"],
    "workers=65": ["--workers=65"],
    "max-per-class=0": ["--max-per-class=0"],
    "patience=0": ["--patience=0"],
    "step-size=0": ["--step-size=0"],
    "accumulate=0": ["--accumulate=0"],
    "accumulate=2048": ["--accumulate=2048"],
    "pad=-1": ["--pad=-1"],
    "pad=100000": ["--pad=100000"],
}


@pytest.mark.parametrize("flag, value", [(flag, value) for flag in FLOAT_FLAGS for value in NON_FINITE],
                         ids=[f"{flag}={value}" for flag in FLOAT_FLAGS for value in NON_FINITE])
def test_a_non_finite_float_flag_is_refused(capsys, tmp_path, flag, value):
    project = tmp_path / "runs"
    line = cli_error(capsys, "train", f"--{flag}={value}", "--project", project)
    assert line.startswith(f"visionfit: error: --{flag} must be a finite number ")
    assert not project.exists()  # refused before any work


@pytest.mark.parametrize("argv", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_an_out_of_range_flag_is_refused_with_its_range(capsys, tmp_path, argv):
    project = tmp_path / "runs"
    flag = argv[-1].split("=")[0]
    line = cli_error(capsys, "train", *argv, "--project", project)
    assert line.startswith(f"visionfit: error: {flag} must be ")
    assert any(word in line for word in ("at least", "at most", "> ", "< "))
    assert not project.exists()
