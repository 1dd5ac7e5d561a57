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


def _gathered_tally(rank: int, port: int, queue) -> None:
    """One of two Gloo processes: tally its own rows (rank 0: 3, rank 1: 5) of the same outputs."""
    import torch.distributed as dist

    from visionfit.train.distributed import Distributed
    from visionfit.train.multilabel import MultiLabel

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    logits, targets = _tally_outputs()
    rows = slice(0, 3) if rank == 0 else slice(3, 8)
    task = MultiLabel()
    tally = task.tally(torch.device("cpu"))
    tally.add(logits[rows], targets[rows], task.eval_loss_sum(logits[rows], targets[rows]))
    metrics = tally.result(Distributed(rank=rank, world_size=2))
    if rank == 0:
        queue.put(metrics)
    dist.destroy_process_group()


def _tally_outputs():
    generator = torch.Generator().manual_seed(0)
    targets = (torch.rand(8, 3, generator=generator) < 0.5).long()
    targets[0] = 1
    return torch.randn(8, 3, generator=generator) + targets, targets


@pytest.mark.slow
def test_a_multi_label_tally_over_two_processes_equals_one_over_all_rows():
    import torch.multiprocessing as mp

    from visionfit.train.multilabel import MultiLabel

    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_gathered_tally, args=(free_port(), queue), nprocs=2)
    logits, targets = _tally_outputs()
    tally = MultiLabel().tally(torch.device("cpu"))
    tally.add(logits, targets, MultiLabel().eval_loss_sum(logits, targets))
    expected = tally.result()
    gathered = queue.get()
    assert gathered["thresholds"] == pytest.approx(expected["thresholds"])
    assert {k: gathered[k] for k in ("loss", "map", "micro_f1", "acc")} == pytest.approx(
        {k: expected[k] for k in ("loss", "map", "micro_f1", "acc")})
