"""Which torch device a command runs on (--device auto|cpu|cuda|cuda:N|mps), and how many CPU
threads its own process uses beside its DataLoader workers.

The lowest layer that needs it: training and every inference command resolve devices here.
"""
import os

import torch

from .errors import ConfigError


def resolve_device(requested: str | torch.device | None) -> torch.device:
    """auto: CUDA when torch sees a GPU, else Apple's MPS, else the CPU. An asked-for device
    that is not there is a ConfigError that says what to use instead."""
    if isinstance(requested, torch.device):
        return requested
    requested = requested or "auto"
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: this machine has no CUDA GPU visible to torch; use --device cpu or auto")
    if requested == "mps" and not _mps_available():
        raise ConfigError("--device mps: Apple's Metal GPU is not available here (it needs macOS on Apple silicon); "
                          "use --device cpu or auto")
    try:
        return torch.device(requested)
    except RuntimeError as error:
        raise ConfigError(f"--device {requested} is not a device torch knows ({error}); use auto, cpu, cuda, cuda:N or mps") from error


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


_threads_at_start: int | None = None  # torch's thread count before visionfit first changed it


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or taskset's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def main_process_threads(workers: int, cores: int, threads_at_start: int) -> int:
    """Torch threads for the training process: beside `workers` DataLoader workers (each one
    thread, busy the whole epoch) the cores they leave, at least one; with no workers (the
    batched path) all it had. Never more than it started with (OMP_NUM_THREADS stays a cap)."""
    if workers == 0:
        return threads_at_start
    return min(threads_at_start, max(1, cores - workers))


def share_cores_with_workers(workers: int) -> str | None:
    """Set this process's torch threads for a training loader with `workers` busy DataLoader
    workers (0 on the batched path), so workers and the main process do not fight over cores.
    Returns what the run summary says about it ("2 torch threads beside 6 DataLoader workers
    on 8 cores"), or None when the process keeps the threads it started with."""
    global _threads_at_start
    if _threads_at_start is None:
        _threads_at_start = torch.get_num_threads()
    cores = usable_cores()
    threads = main_process_threads(workers, cores, _threads_at_start)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    if threads == _threads_at_start:
        return None
    return f"{threads} torch thread{'s' if threads != 1 else ''} beside {workers} DataLoader workers on {cores} cores"
