"""The nvjpeg path's logic, run with torchvision's CPU JPEG decoder (CI has no GPU)."""
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from visionfit.data.decode import load_image
from visionfit.data.gpu_decode import decode_jpegs, presize_tensor
from visionfit.data.preprocess import Preprocess

CPU = torch.device("cpu")


def presize(side: int, channels: int = 3, interpolation: str = "bilinear") -> Preprocess:
    return Preprocess(side, channels, "shorter", side, interpolation, (0.5,) * channels, (0.25,) * channels)


@pytest.fixture
def jpegs(tmp_path):
    """Real photos at three aspect ratios, as JPEG files."""
    paths = []
    for name, (h, w) in {"wide": (300, 451), "tall": (400, 260), "square": (200, 200)}.items():
        photo = data.astronaut()[:h, :w] if h <= 512 and w <= 512 else None
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(np.ascontiguousarray(photo)).save(path, quality=95)
        paths.append(path)
    return paths


def sizes_of(paths):
    return [Image.open(path).size for path in paths]


@pytest.mark.parametrize("channels", [1, 3])
def test_the_gpu_path_crops_what_pillows_path_crops_within_a_few_levels(jpegs, channels):
    spec = presize(64, channels)
    pixels, left_over = decode_jpegs(jpegs, spec, sizes_of(jpegs), CPU)
    assert left_over == [] and pixels.shape == (3, channels, 64, 64)
    for row, path in enumerate(jpegs):
        reference = torch.from_numpy(spec.apply(load_image(path, channels)).transpose(2, 0, 1).copy())
        difference = (pixels[row].float() - reference.float()).abs()
        assert difference.mean() < 3, path.name  # another resampler and JPEG decoder: rounding, not geometry
        mirrored = (pixels[row].flip(-1).float() - reference.float()).abs().mean()
        assert mirrored > 4 * difference.mean(), path.name  # the check sees a wrong crop


def test_files_nvjpeg_cannot_take_are_left_for_the_pillow_path(jpegs, tmp_path):
    png = tmp_path / "named.jpg"  # a PNG under a JPEG name
    Image.fromarray(data.camera()[:80, :80]).save(png, format="PNG")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(jpegs[0].read_bytes()[:600])  # the header, then nothing
    paths = [jpegs[0], png, broken, jpegs[1]]
    sizes = sizes_of([jpegs[0], png]) + [(451, 300)] + sizes_of([jpegs[1]])
    pixels, left_over = decode_jpegs(paths, presize(32), sizes, CPU)
    assert 1 in left_over and 0 not in left_over and 3 not in left_over
    assert pixels[0].float().mean() > 10 and pixels[3].float().mean() > 10
    assert int(pixels[1].sum()) == 0  # nothing decoded into a left-over row


def test_a_header_claiming_too_many_pixels_is_never_decoded_here(jpegs, monkeypatch):
    import visionfit.data.gpu_decode as gpu_decode

    monkeypatch.setattr(gpu_decode, "MAX_GPU_PIXELS", 300 * 451 - 1)
    pixels, left_over = decode_jpegs(jpegs, presize(32), sizes_of(jpegs), CPU)
    assert left_over == [0] and int(pixels[0].sum()) == 0


def test_presize_keeps_preprocess_geometry_on_odd_sizes():
    spec = presize(10, 1, "nearest")
    image = torch.arange(13 * 21, dtype=torch.float32).reshape(1, 13, 21).remainder(256).to(torch.uint8)
    expected = spec.apply(image.permute(1, 2, 0).numpy())
    assert torch.equal(presize_tensor(image, spec), torch.from_numpy(expected.transpose(2, 0, 1).copy()))
