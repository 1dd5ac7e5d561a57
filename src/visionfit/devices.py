"""Which torch device a command runs on: --device auto|cpu|cuda|cuda:N|mps.

The lowest layer that needs it: training and every inference command resolve devices here.
"""
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
