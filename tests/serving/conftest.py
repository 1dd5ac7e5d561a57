"""Fixtures for the serve tests: model files (a grey MNIST net, a colour photo net), their ONNX
exports, real images as files and as upload bytes, an app driven in-process or by a real uvicorn."""
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import visionfit
from visionfit.checkpoints import save_model_file
from visionfit.data.embedded import load_embedded
from visionfit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, preset_from_meta
from visionfit.models import model_args_for_input
from visionfit.serving.app import create_app
from visionfit.serving.backends import load_backend
from visionfit.serving.uploads import Limits

from ..conftest import make_preset, model_meta
from ..photos import write_odd_photos

DIGITS = [str(digit) for digit in range(10)]
METRICS = {"epoch": 3, "val_acc": 0.9155, "val_loss": 0.2787}


def write_model_file(path: Path, in_channels: int, size: int, class_names: list[str], photo: bool, seed: int,
                     train_on: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """A lenet_relu with seeded random weights (a few steps of training on `train_on` when given)
    and the metadata a run writes; every comparison below is between two ways of computing its outputs."""
    torch.manual_seed(seed)
    args = model_args_for_input("lenet_relu", size, {})
    net = visionfit.create_model("lenet_relu", num_classes=len(class_names), in_channels=in_channels, **args)
    meta = model_meta("lenet_relu", class_names, in_channels, size, metrics=METRICS, model_args=args)
    if photo:  # the photo recipe: shorter side to size / 0.875, center crop, ImageNet statistics
        preset = make_preset(size, in_channels, IMAGENET_MEAN, IMAGENET_STD, small=False)
        meta.update(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), preprocess=preset.preprocess.describe(),
                    preset=preset.augmentation())
    if train_on is not None:
        a_little_trained(net, preset_from_meta(meta), *train_on)
    save_model_file(path, net, meta)
    return path


def a_little_trained(net: torch.nn.Module, preset, images_nhw: np.ndarray, labels: np.ndarray, steps: int = 25) -> None:
    """A few Adam steps on model-sized grey images: a second or two, and the net then tells digits apart
    (a random lenet gives every digit the same label, which would make label comparisons vacuous)."""
    x = preset.normalize(torch.from_numpy(images_nhw[:, None]))
    y = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small gains nothing from more, and on a busy machine they spin (10x slower)
    net.train()
    try:
        for step in range(steps):
            batch = slice(step * 64 % len(x), step * 64 % len(x) + 64)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()


@pytest.fixture(scope="session")
def mnist_model(tmp_path_factory) -> Path:
    """Grey 28 x 28 input, classes 0..9, squashed (both sides to 28): the MNIST recipe; trained a little."""
    train = load_embedded().train
    return write_model_file(tmp_path_factory.mktemp("mnist_model") / "digits.safetensors", 1, 28, DIGITS, False, 0,
                            (train.images[:640], train.labels[:640]))


@pytest.fixture(scope="session")
def photo_model(tmp_path_factory) -> Path:
    """RGB 32 x 32 input, classes animals / things, shorter side to 36 then a center crop."""
    return write_model_file(tmp_path_factory.mktemp("photo_model") / "photos.safetensors", 3, 32,
                            ["animals", "things"], True, 1)


@pytest.fixture(scope="session")
def digit_files(tmp_path_factory) -> list[Path]:
    """Ten real MNIST test digits, 0 to 9, as PNG files (from the bundled sample's test split)."""
    test = load_embedded().val
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for digit in range(10):
        path = folder / f"digit{digit}.png"
        Image.fromarray(test.images[int(np.flatnonzero(test.labels == digit)[0])]).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory) -> list[Path]:
    """Real photos (PNG and JPEG) of odd sizes and aspect ratios: the resize and crop have work to do."""
    root = write_odd_photos(tmp_path_factory.mktemp("photos"), per_class=3)
    return sorted(path for path in root.rglob("*") if path.is_file())


def uploads(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The `files=` of an httpx request: one multipart file field per path."""
    return [("file", (path.name, path.read_bytes(), "application/octet-stream")) for path in paths]


@contextlib.contextmanager
def served(model, limits: Limits = Limits(), max_batch: int = 32, max_wait_ms: float = 5.0):
    """A TestClient on the app (no socket), its lifespan (the batcher) running."""
    from starlette.testclient import TestClient

    with TestClient(create_app(load_backend(model, "cpu"), limits, max_batch, max_wait_ms)) as client:
        yield client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(mnist_model):
    """`visionfit serve` in its own process on a free localhost port: its base URL."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "visionfit", "serve", str(mnist_model), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_until_up(url: str, server: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"visionfit serve exited with {server.returncode}: {server.stdout.read()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"visionfit serve did not answer {url}/health within {timeout_s:g} s")
