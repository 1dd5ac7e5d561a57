"""torchrun: two CPU processes (Gloo) train exactly like one process with twice the batch."""
import gzip
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from visionfit.checkpoints import load_resume_state

from .conftest import pattern_images


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def free_port() -> int:
    """A TCP port no one listens on now: torchrun's store binds it (a fixed one can be busy or in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train(args, project, nproc=None):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
                str(free_port())] if nproc else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-m", "visionfit", "train", *args, "--project", str(project)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_resume_state(project / "exp")


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_combined_batch(tmp_path):
    images, labels = pattern_images(128, side=16)
    val_images, val_labels = pattern_images(30, side=16, seed=1)
    data = tmp_path / "bars"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte.gz", images)
    write_idx(data / "train-labels-idx1-ubyte.gz", labels)
    write_idx(data / "t10k-images-idx3-ubyte.gz", val_images)
    write_idx(data / "t10k-labels-idx1-ubyte.gz", val_labels)
    common = ["--data", str(data), "--model", "mlp", "--epochs", "2", "--pad", "0", "--optimizer", "sgd",
              "--momentum", "0", "--lr", "0.1", "--scheduler", "none", "--quiet", "--workers", "0"]
    single = train([*common, "--batch-size", "32"], tmp_path / "single")
    double = train([*common, "--batch-size", "16"], tmp_path / "ddp", nproc=2)
    for key, value in single["model"].items():
        assert torch.allclose(value, double["model"][key], atol=1e-5), key
    # Metrics are summed over both processes: the same images were counted.
    assert single["history"][-1]["val_acc"] == pytest.approx(double["history"][-1]["val_acc"])
    assert single["history"][-1]["loss"] == pytest.approx(double["history"][-1]["loss"], rel=1e-4)
