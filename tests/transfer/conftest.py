"""Transfer-learning fixtures: weight files and a torch hub cache made on the spot (no network)."""
from pathlib import Path

import pytest
import torch
import torchvision


@pytest.fixture
def torch_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub under tmp_path (TORCH_HOME), as on a machine that never downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return Path(torch.hub.get_dir())


@pytest.fixture
def hub_weights(torch_hub):
    """hub_weights("resnet18") caches a state_dict as resnet18's DEFAULT weights and returns it."""
    return lambda name, seed=0: _cache_torchvision_weights(torch_hub, name, seed)


def _cache_torchvision_weights(hub: Path, name: str, seed: int) -> dict:
    """Put a state_dict where torch.hub would have cached `name`'s DEFAULT weights; returns it.

    The file name comes from the weights' URL, exactly as load_state_dict_from_url derives it,
    so the code under test takes the same path as after a real download.
    """
    weights = torchvision.models.get_model_weights(name).DEFAULT
    torch.manual_seed(seed)
    state = torchvision.models.get_model(name, weights=None).state_dict()
    path = hub / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.fixture
def lenet_start(tmp_path) -> Path:
    """A 'pretrained' lenet_bn for the 16 px bars, saved as a plain state_dict: seeded weights
    and BatchNorm statistics away from their 0 / 1 defaults, so a moved statistic shows."""
    from visionfit.models import create_model

    torch.manual_seed(0)
    state = create_model("lenet_bn", num_classes=3, in_channels=1, input_size=16).state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", "running_var")):
            state[key] = value + torch.rand_like(value)
    path = tmp_path / "lenet_start.pth"
    torch.save(state, path)
    return path
