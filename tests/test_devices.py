"""--device: auto picks CUDA, then Apple's MPS, then the CPU; a device that is not there is one line."""
import pytest
import torch

from visionfit.cli import main
from visionfit.devices import main_process_threads, resolve_device, share_cores_with_workers
from visionfit.errors import ConfigError


@pytest.fixture
def machine(monkeypatch):
    """machine(cuda=..., mps=...) makes torch report those devices as available or not."""
    def set_available(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return set_available


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_the_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device(None) == torch.device(expected)


@pytest.mark.parametrize("asked, says", [
    ("mps", "--device mps: Apple's Metal GPU is not available here"),
    ("cuda", "--device cuda: this machine has no CUDA GPU visible to torch"),
    ("cuda:1", "--device cuda:1: this machine has no CUDA GPU visible to torch"),
])
def test_a_device_that_is_not_there_is_one_line_naming_the_flag(machine, asked, says):
    machine(cuda=False, mps=False)
    with pytest.raises(ConfigError, match=says) as error:
        resolve_device(asked)
    assert "use --device cpu or auto" in str(error.value) and "\n" not in str(error.value)


def test_train_with_mps_on_a_machine_without_it_ends_in_one_line(machine, capsys, tmp_path):
    machine(cuda=False, mps=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--device", "mps", "--project", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == ["visionfit: error: --device mps: Apple's Metal GPU is not available here "
                                        "(it needs macOS on Apple silicon); use --device cpu or auto"]


@pytest.mark.parametrize("workers, cores, at_start, expected", [
    (0, 8, 8, 8),   # the batched path: every core
    (6, 8, 8, 2),   # the cores the workers leave
    (8, 8, 8, 1),   # at least one
    (2, 8, 1, 1),   # OMP_NUM_THREADS=1 stays a cap
])
def test_the_main_process_leaves_cores_to_busy_workers(workers, cores, at_start, expected):
    assert main_process_threads(workers, cores, at_start) == expected


def test_sharing_cores_sets_torch_threads_and_says_so(monkeypatch, threads_restored):
    import visionfit.devices as devices

    monkeypatch.setattr(devices, "usable_cores", lambda: 8)
    torch.set_num_threads(4)
    assert share_cores_with_workers(6) == "2 torch threads beside 6 DataLoader workers on 8 cores"
    assert torch.get_num_threads() == 2
    assert share_cores_with_workers(0) is None  # a later batched run gets its threads back
    assert torch.get_num_threads() == 4
