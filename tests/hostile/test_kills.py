"""Kills and interruptions: a run killed at any moment resumes to exactly where an uninterrupted
run ends; killed before its first checkpoint it says how to start again; --resume changes only
what is safe to change; --epochs extends a finished run; torchrun restarts resume by themselves."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import visionfit
from visionfit.checkpoints import load_resume_state
from visionfit.cli import main

from ..conftest import pattern_images
from ..test_distributed import free_port, write_idx
from .conftest import cli_error

REPO = Path(__file__).resolve().parents[2]
SLOW_NET = "tests.hostile.timed_nets:SlowNet"


@pytest.fixture(scope="module")
def bars_idx(tmp_path_factory) -> Path:
    """An IDX folder of 96 training and 30 validation bar images (16 px, 3 classes)."""
    data = tmp_path_factory.mktemp("bars_idx")
    for split, (images, labels) in (("train", pattern_images(96, side=16)), ("t10k", pattern_images(30, side=16, seed=1))):
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    return data


def train_command(data: Path, project: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "visionfit", "train", "--data", str(data), "--model", SLOW_NET, "--epochs", "3",
            "--batch-size", "8", "--lr", "0.05", "--quiet", "--workers", "0", "--project", str(project), *extra]


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


def kill_when(command: list[str], ready) -> None:
    """Start `command`, SIGKILL it as soon as ready() is true (polled every 10 ms)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    while not ready():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def assert_same_run(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [row["loss"] for row in a["history"]] == [row["loss"] for row in b["history"]]


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_ends_bit_identical(bars_idx, tmp_path):
    done = run(train_command(bars_idx, tmp_path / "whole"))
    assert done.returncode == 0, done.stderr[-2000:]
    killed_run = tmp_path / "killed" / "exp"
    kill_when(train_command(bars_idx, tmp_path / "killed"), lambda: (killed_run / "last.ckpt").exists())
    resumed = run([sys.executable, "-m", "visionfit", "train", "--resume", str(killed_run), "--trust-code"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(load_resume_state(tmp_path / "whole" / "exp"), load_resume_state(killed_run))


@pytest.mark.slow
def test_sigkill_in_the_first_epoch_says_how_to_start_again(bars_idx, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "exp"
    kill_when(train_command(bars_idx, tmp_path / "runs"), lambda: (run_dir / "config.yaml").exists())
    assert not (run_dir / "last.ckpt").exists()
    line = cli_error(capsys, "train", "--resume", run_dir)
    assert line == (f"visionfit: error: {run_dir} stopped before its first epoch ended, so there is nothing to "
                    f"resume; start it again with `visionfit train --config {run_dir / 'config.yaml'}`")
    # The advice works; the file names code (SlowNet), so it takes --trust-code to say it is the user's.
    assert "--trust-code" in cli_error(capsys, "train", "--config", run_dir / "config.yaml")
    main(["train", "--config", str(run_dir / "config.yaml"), "--trust-code"])
    assert load_resume_state(tmp_path / "runs" / "exp2")["epoch"] == 2


def test_epochs_extends_a_finished_run_to_what_a_longer_run_gives(tiny_splits, tmp_path):
    options = dict(epochs=2, batch_size=16, quiet=True, image_size=16, scheduler="step", step_size=1, gamma=0.5,
                   lr=0.05, pad=2, flip=True)
    longer = visionfit.fit("lenet_bn", tiny_splits, project=str(tmp_path / "a"), **{**options, "epochs": 4})
    short = visionfit.fit("lenet_bn", tiny_splits, project=str(tmp_path / "b"), **options)
    with pytest.raises(visionfit.ConfigError, match="already finished 2 epochs"):
        visionfit.fit(data=tiny_splits, resume=short.run_dir)
    extended = visionfit.fit(data=tiny_splits, resume=short.run_dir, epochs=4)
    assert [row["epoch"] for row in extended.history] == [1, 2, 3, 4]
    assert [row["lr"] for row in extended.history] == [0.05, 0.025, 0.0125, 0.00625]
    assert_same_run(load_resume_state(longer.run_dir), load_resume_state(extended.run_dir))


def test_cosine_extension_continues_from_where_the_run_stopped(tiny_splits, tmp_path):
    short = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path), epochs=2, batch_size=16, quiet=True,
                          image_size=16)
    extended = visionfit.fit(data=tiny_splits, resume=short.run_dir, epochs=4)
    rates = [row["lr"] for row in extended.history]
    assert rates[:2] == [row["lr"] for row in short.history]
    assert rates[2] > rates[3] > 0  # the new cosine, decaying to the new end


@pytest.mark.parametrize("flag, value", [("--lr", "0.1"), ("--model", "mlp"), ("--batch-size", "4"),
                                         ("--image-size", "32"), ("--data", "elsewhere/")])
def test_resume_refuses_flags_that_would_change_the_run(tiny_splits, tmp_path, capsys, flag, value):
    run_dir = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path), epochs=1, quiet=True,
                            image_size=16).run_dir
    line = cli_error(capsys, "train", "--resume", run_dir, flag, value, "--epochs", "3")
    if flag == "--model":
        assert "drop --model" in line
    else:
        assert f"{flag} cannot change (only --epochs, --device, --workers, --patience, --quiet can)" in line


def test_ctrl_c_names_the_real_run_folder_and_the_resume_command(tiny_splits, tmp_path, monkeypatch, capsys):
    from visionfit.train.trainer import Trainer

    real = Trainer.train_one_epoch

    def interrupted_in_epoch_2(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_one_epoch", interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path / "p"), name="mine", epochs=3, quiet=True,
                      image_size=16)
    run_dir = tmp_path / "p" / "mine"
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"interrupted in epoch 2; {run_dir} keeps epoch 1 (last.ckpt); continue with `visionfit train --resume {run_dir}`")
    monkeypatch.undo()
    assert [row["epoch"] for row in visionfit.fit(data=tiny_splits, resume=run_dir).history] == [1, 2, 3]


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_group_from_the_runs_checkpoint(bars_idx, tmp_path):
    """A worker dies (SIGKILL) in epoch 2; torchrun --max-restarts 1 starts the group again with the
    same command, and the run continues in its own folder from last.ckpt to the end."""
    marker = tmp_path / "killed.marker"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VF_KILLED_MARKER": str(marker)}

    def torchrun(model: str, project: Path) -> subprocess.CompletedProcess:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--max-restarts", "1",
                    "--master_port", str(free_port())]
        args = ["-m", "visionfit", "train", "--data", str(bars_idx), "--model", f"tests.hostile.timed_nets:{model}",
                "--epochs", "3", "--batch-size", "8", "--quiet", "--workers", "0", "--project", str(project)]
        done = subprocess.run([*launcher, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    restarted = torchrun("KillOnce", tmp_path / "runs")
    assert marker.exists()  # a worker really died
    assert "torchrun restarted the workers: continuing" in restarted.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["exp"]  # one run folder, continued
    state = load_resume_state(tmp_path / "runs" / "exp")
    assert state["epoch"] == 2 and [row["epoch"] for row in state["history"]] == [1, 2, 3]
    torchrun("SlowNet", tmp_path / "whole")  # the same net, never killed
    assert_same_run(load_resume_state(tmp_path / "whole" / "exp"), state)
