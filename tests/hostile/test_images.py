"""Hostile image files in a class folder: an unusable one is skipped and counted (summary.json
and the check-data table) while the run goes on; a legal but unusual one trains as any other."""
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionfit.cli import main

TRAIN = ["--epochs", "1", "--image-size", "16", "--batch-size", "8", "--quiet", "--workers", "0"]
GOOD_PER_CLASS = 4


def dataset_with(root: Path, name: str, write) -> Path:
    """cat/ and dog/ with GOOD_PER_CLASS different 12 x 12 images each, plus cat/<name> made by write(path)."""
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(GOOD_PER_CLASS):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    write(root / "cat" / name)
    return root


def train(root: Path, runs: Path) -> dict:
    """Train one epoch on `root` through the CLI; the run's summary.json."""
    main(["train", "--data", str(root), *TRAIN, "--project", str(runs)])
    return json.loads((runs / "exp" / "summary.json").read_text())


def check_data(capsys, root: Path) -> tuple[int, str]:
    """check-data's exit code and table."""
    try:
        main(["check-data", "--data", str(root)])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().out


def noise_image(size=(64, 64)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8))


def truncated(fmt: str):
    def write(path: Path) -> None:
        encoded = io.BytesIO()
        noise_image().save(encoded, format=fmt)
        path.write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    return write


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_header(path: Path) -> None:
    """A 100 byte PNG whose header claims 100,000 x 100,000 grey pixels (10 gigapixels)."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + png_chunk(b"IEND", b""))


# name -> (file name, writer, the check-data row that counts it)
UNUSABLE = {
    "zero-byte": ("empty.png", lambda path: path.write_bytes(b""), "zero-byte files"),
    "truncated-png": ("cut.png", truncated("PNG"), "truncated or corrupt images"),
    "truncated-jpeg": ("cut.jpg", truncated("JPEG"), "truncated or corrupt images"),
    "text-named-jpg": ("notes.jpg", lambda path: path.write_text("shopping list: milk, eggs"), "non-image files"),
    "html-named-png": ("page.png", lambda path: path.write_text("<!DOCTYPE html><html><body>404</body></html>"),
                       "non-image files"),
    "bomb-sized-png-header": ("bomb.png", bomb_header, "decompression bombs"),
}


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_unusable_image_is_skipped_and_counted(tmp_path, capsys, case):
    name, write, row = UNUSABLE[case]
    root = dataset_with(tmp_path / "data", name, write)
    summary = train(root, tmp_path / "runs")
    assert summary["skipped_images"] == [str(root / "cat" / name)]
    assert summary["train_images"] + summary["val_images"] == 2 * GOOD_PER_CLASS
    code, table = check_data(capsys, root)
    assert code == 1
    assert f"{row} (1):\n  {root / 'cat' / name}: " in table  # listed under its own row


def save(image_of, **options):
    return lambda path: image_of().save(path, **options)


def exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    noise_image((10, 20)).save(path, exif=exif)


def palette_with_transparency() -> Image.Image:
    image = noise_image((12, 12)).convert("P")
    image.info["transparency"] = 0
    return image


def animated_gif(path: Path) -> None:
    frames = [noise_image((12, 12)).convert("P"), Image.new("P", (12, 12), 3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


# name -> (file name, writer); each of these is a legal image that must train like any other.
LEGAL = {
    "16-bit-grey": ("deep.png", save(lambda: Image.fromarray(np.full((12, 12), 40000, dtype=np.uint16)))),
    "cmyk-jpeg": ("print.jpg", save(lambda: noise_image((12, 12)).convert("CMYK"))),
    "palette-with-transparency": ("clip.png", save(palette_with_transparency)),
    "animated-gif": ("moving.gif", animated_gif),
    "exif-rotated-jpeg": ("phone.jpg", exif_rotated),
}


@pytest.mark.parametrize("case", list(LEGAL))
def test_legal_unusual_image_trains_and_checks_clean(tmp_path, capsys, case):
    name, write = LEGAL[case]
    root = dataset_with(tmp_path / "data", name, write)
    summary = train(root, tmp_path / "runs")
    assert summary["skipped_images"] == [] and summary["train_images"] + summary["val_images"] == 2 * GOOD_PER_CLASS + 1
    code, table = check_data(capsys, root)
    assert code == 0, table


def test_one_pixel_image_trains_and_is_flagged_tiny(tmp_path, capsys):
    root = dataset_with(tmp_path / "data", "dot.png", save(lambda: Image.new("RGB", (1, 1), (255, 0, 0))))
    summary = train(root, tmp_path / "runs")
    assert summary["skipped_images"] == [] and summary["train_images"] + summary["val_images"] == 9
    code, table = check_data(capsys, root)
    assert code == 1 and f"tiny images (shorter side < 8 px) (1):\n  {root / 'cat' / 'dot.png'}: 1 x 1" in table


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")  # a warning here would fail the run
def test_image_just_past_the_pixel_warning_trains_without_a_warning(tmp_path, capsys, monkeypatch):
    # A 12000 x 12000 photo among small ones, in miniature: Pillow's limit lowered to 60 x 60 pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60 * 60)
    root = dataset_with(tmp_path / "data", "huge.png", save(lambda: noise_image((80, 80))))
    summary = train(root, tmp_path / "runs")
    assert summary["skipped_images"] == [] and summary["train_images"] + summary["val_images"] == 9
    code, table = check_data(capsys, root)
    assert code == 0
    assert f"huge images (over Pillow's MAX_IMAGE_PIXELS) (1, note):\n  {root / 'cat' / 'huge.png'}: 80 x 80" in table
