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


def folder_samples(paths, labels):
    from visionfit.data.samples import Samples

    return Samples(labels=np.asarray(labels), paths=list(paths), origin=[str(p) for p in paths])


def test_a_mixed_folder_stores_the_rows_pillows_store_keeps(jpegs, tmp_path):
    from visionfit.data.gpu_decode import gpu_store
    from visionfit.data.store import build_store

    png = tmp_path / "photo.png"
    Image.fromarray(data.coffee()[:120, :200]).save(png)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(jpegs[0].read_bytes()[:600])
    samples = folder_samples([jpegs[0], png, broken, jpegs[1], jpegs[2]], [0, 1, 0, 1, 0])
    spec = presize(48)
    ours = gpu_store(samples, spec, CPU, workers=2)
    pillows = build_store(samples, 3, workers=2, prepare=spec.apply)
    assert ours.origin == pillows.origin and torch.equal(ours.labels, pillows.labels)
    assert [origin for origin, _ in ours.skipped] == [origin for origin, _ in pillows.skipped] == [str(broken)]
    assert (ours.images.float() - pillows.images.float()).abs().mean() < 3
    assert torch.equal(ours.images[1], pillows.images[1])  # the PNG went through Pillow itself


def test_only_files_on_a_cuda_device_take_the_nvjpeg_path(jpegs):
    from visionfit.data.gpu_decode import decodes_on_gpu
    from visionfit.data.samples import Samples

    files = folder_samples(jpegs, [0, 1, 0])
    arrays = Samples(labels=np.zeros(2, dtype=np.int64), images=np.zeros((2, 8, 8, 3), np.uint8), origin=["a", "b"])
    assert decodes_on_gpu(torch.device("cuda"), files) and decodes_on_gpu(torch.device("cuda:1"), files)
    assert not decodes_on_gpu(torch.device("cuda"), arrays)
    assert not decodes_on_gpu(CPU, files) and not decodes_on_gpu(None, files)


def test_prepare_data_hands_a_cuda_runs_presized_store_to_nvjpeg(jpegs, monkeypatch):
    from visionfit.config import Config
    from visionfit.data import prepare
    from visionfit.data.plan import plan_input
    from visionfit.data.samples import DatasetSplits

    calls = []

    def spy(samples, geometry, device, workers, eval_ready, label):
        calls.append((geometry.size, geometry.resize_side, device.type, eval_ready))
        return prepare.build_store(samples, geometry.channels, None, workers, geometry.apply, eval_ready, label=label)

    monkeypatch.setattr(prepare, "gpu_store", spy)
    train = folder_samples(jpegs * 2, [0, 1, 0, 1, 0, 1])
    data_cfg = Config.from_options(image_size=32, workers=1, disk_cache=False).data
    plan = plan_input(data_cfg, train, natural_size=32)
    prepared = prepare.prepare_data(data_cfg, DatasetSplits("photos", ["a", "b"], train), plan, torch.device("cuda"))
    assert calls == [(plan.presize, plan.presize, "cuda", False)] and prepared.train.images.shape[-1] == plan.presize
    prepare.prepare_data(data_cfg, DatasetSplits("photos", ["a", "b"], train), plan, CPU)
    assert len(calls) == 1  # the CPU decodes through Pillow
