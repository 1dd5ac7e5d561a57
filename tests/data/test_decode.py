"""load_image gives the right uint8 pixels for every PIL mode, orientation and failure."""
import io
import warnings

import numpy as np
import pytest
from PIL import Image

from visionfit.data import decode
from visionfit.data.decode import guess_channels, load_image, rgb_to_luma
from visionfit.errors import DataError


def pil_luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def palette_image(indices, colours, transparent_index=None) -> Image.Image:
    image = Image.new("P", (len(indices), 1))
    image.putpalette([value for colour in colours for value in colour])
    image.putdata(indices)
    if transparent_index is not None:
        image.info["transparency"] = transparent_index
    return image


def one_row(mode: str, values, transparent_value=None) -> Image.Image:
    image = Image.new(mode, (len(values), 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    if transparent_value is not None:
        image.info["transparency"] = transparent_value  # a PNG tRNS colour key
    return image


# mode -> (image, file suffix, expected grey values); grey results are replicated for channels=3.
GREY_CASES = {
    "L": (lambda: one_row("L", [0, 17, 255]), ".png", [0, 17, 255]),
    # 200 at alpha 128 over black: 200 * 128 / 255 = 100.4 -> 100.
    "LA": (lambda: one_row("LA", [(200, 255), (200, 128), (200, 0)]), ".png", [200, 100, 0]),
    # value / 257 rounded: 385 -> 1.498 -> 1, 386 -> 1.502 -> 2.
    "I;16": (
        lambda: Image.fromarray(np.array([[0, 257, 65535, 128, 385, 386, 32896]], dtype=np.uint16)),
        ".png",
        [0, 1, 255, 0, 1, 2, 128],
    ),
    "I": (lambda: Image.fromarray(np.array([[-5, 300, 77]], dtype=np.int32)), ".tif", [0, 255, 77]),
    "F": (lambda: Image.fromarray(np.array([[-1.5, 1000.0, 12.4, 12.6]], dtype=np.float32)), ".tif", [0, 255, 12, 13]),
    "1": (lambda: one_row("1", [0, 1, 0]), ".png", [0, 255, 0]),
    "P-grey": (lambda: palette_image([0, 1, 2], [(9, 9, 9), (200, 200, 200), (0, 0, 0)]), ".png", [9, 200, 0]),
    "P-grey-transparent": (
        lambda: palette_image([0, 1, 2], [(9, 9, 9), (200, 200, 200), (50, 50, 50)], transparent_index=1),
        ".png",
        [9, 0, 50],
    ),
    "L-transparent": (lambda: one_row("L", [0, 100, 200], transparent_value=100), ".png", [0, 0, 200]),
}

COLOURS = [(255, 0, 0), (0, 0, 255), (10, 20, 30)]

# mode -> (image, file suffix, expected RGB); channels=1 must equal PIL's "L" of that RGB.
COLOUR_CASES = {
    "RGB": (lambda: one_row("RGB", COLOURS), ".png", COLOURS),
    "RGBA": (
        lambda: one_row("RGBA", [(255, 0, 0, 0), (100, 200, 50, 255), (200, 100, 50, 128)]),
        ".png",
        [(0, 0, 0), (100, 200, 50), (100, 50, 25)],
    ),
    "P": (lambda: palette_image([0, 1, 2], COLOURS), ".png", COLOURS),
    "P-transparent": (
        lambda: palette_image([0, 1, 2], COLOURS, transparent_index=0), ".png", [(0, 0, 0), *COLOURS[1:]]
    ),
    # PIL's CMYK -> RGB is (255 - C) * (255 - K) / 255: (100, 0, 0, 100) -> 155 * 155 / 255 = 94.2.
    "CMYK": (
        lambda: one_row("CMYK", [(0, 0, 0, 0), (255, 0, 0, 0), (100, 0, 0, 100)]),
        ".tif",
        [(255, 255, 255), (0, 255, 255), (94, 155, 155)],
    ),
}


@pytest.mark.parametrize("case", sorted(GREY_CASES))
def test_grey_modes_decode_to_exact_values(tmp_path, case):
    make, suffix, expected = GREY_CASES[case]
    path = tmp_path / f"image{suffix}"
    make().save(path)
    grey = np.asarray([expected], dtype=np.uint8)
    one = load_image(path, channels=1)
    three = load_image(path, channels=3)
    assert one.dtype == np.uint8 and one.shape == (1, len(expected), 1)
    np.testing.assert_array_equal(one[..., 0], grey)
    np.testing.assert_array_equal(three, np.repeat(grey[..., None], 3, axis=-1))
    assert guess_channels([path]) == 1


@pytest.mark.parametrize("case", sorted(COLOUR_CASES))
def test_colour_modes_decode_to_exact_values(tmp_path, case):
    make, suffix, expected = COLOUR_CASES[case]
    path = tmp_path / f"image{suffix}"
    make().save(path)
    assert Image.open(path).mode == make().mode  # the file really holds the mode under test
    rgb = np.asarray([expected], dtype=np.uint8)
    np.testing.assert_array_equal(load_image(path, channels=3), rgb)
    np.testing.assert_array_equal(load_image(path, channels=1)[..., 0], pil_luma(rgb))
    assert guess_channels([path]) == 3


def test_rgb_to_luma_matches_pil_bit_for_bit():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_luma(rgb), pil_luma(rgb))


@pytest.mark.parametrize("orientation, turns_ccw", [(6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation, turns_ccw):
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:8, :8] = 255  # a white top-left corner, to see where it ends up
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    upright = load_image(path, channels=3)
    assert upright.shape == (32, 16, 3)
    expected = np.rot90(stored, k=turns_ccw)
    assert np.abs(upright.astype(int) - expected).max() < 40  # JPEG error, far below the 255 step
    corner = (slice(0, 8), slice(8, 16)) if orientation == 6 else (slice(24, 32), slice(0, 8))
    assert upright[corner].mean() > 200


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_raises_data_error_naming_it(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="cut") as error:
        load_image(path, channels=3)
    assert str(path) in str(error.value) and "remove or replace" in str(error.value)


def test_text_file_named_jpg_raises_data_error(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(DataError) as error:
        load_image(path, channels=1)
    assert str(path) in str(error.value)


def test_max_side_shrinks_shorter_side_keeping_aspect(tmp_path, png):
    path = png(tmp_path / "wide.png", np.full((40, 100, 3), 77, dtype=np.uint8))
    small = load_image(path, channels=3, max_side=20)
    assert small.shape == (20, 50, 3)
    assert (small == 77).all()
    assert load_image(path, channels=3, max_side=64).shape == (40, 100, 3)  # never enlarged


def test_jpeg_max_side_uses_draft_and_still_lands_on_max_side(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(np.full((160, 320, 3), 120, dtype=np.uint8)).save(path)
    small = load_image(path, channels=3, max_side=20)  # draft decodes at 1/8 scale: 20 x 40
    assert small.shape == (20, 40, 3)
    assert np.abs(small.astype(int) - 120).max() <= 2


def test_guess_channels_is_3_when_any_sampled_image_has_colour(tmp_path, png):
    greys = [png(tmp_path / f"g{i}.png", np.zeros((4, 4), dtype=np.uint8)) for i in range(5)]
    colour = png(tmp_path / "c.png", np.zeros((4, 4, 3), dtype=np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_text("x")
    assert guess_channels(greys + [broken]) == 1  # unreadable files are left to the store
    assert guess_channels(greys + [colour]) == 3
    assert guess_channels([broken]) == 3


@pytest.fixture
def huge_limit(monkeypatch):
    """Pillow's pixel limit lowered to 50 x 50, and huge images decoded to a 10 px side, so a
    "huge" test image is a few kilobytes: 60 x 60 and 50 x 100 are past the warning, 80 x 80 past twice it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50 * 50)
    monkeypatch.setattr(decode, "HUGE_IMAGE_SIDE", 10)


# mode -> a 60 x 60 image of that mode whose every pixel decodes to 90.
HUGE_IMAGES = {
    "RGB": lambda: Image.new("RGB", (60, 60), (90, 90, 90)),
    "P": lambda: palette_image([1] * 3600, [(0, 0, 0), (90, 90, 90)]).resize((60, 60)),
    "I;16": lambda: Image.fromarray(np.full((60, 60), 90 * 257, dtype=np.uint16)),
}


@pytest.mark.parametrize("mode, suffix", [("RGB", ".png"), ("RGB", ".jpg"), ("P", ".png"), ("I;16", ".png")])
def test_huge_image_is_decoded_reduced_without_a_warning(tmp_path, huge_limit, monkeypatch, mode, suffix):
    path = tmp_path / f"huge{suffix}"
    HUGE_IMAGES[mode]().save(path)
    full_size = []
    monkeypatch.setattr(decode, "_to_uint8", lambda im, real=decode._to_uint8: full_size.append(im.size) or real(im))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as under `python -W error`: a DecompressionBombWarning would crash
        pixels = load_image(path, channels=3)
    assert pixels.shape == (10, 10, 3) and np.abs(pixels.astype(int) - 90).max() <= 2
    assert max(full_size[0]) <= 30  # reduced before any conversion, never held at 60 x 60


def test_huge_image_with_max_side_lands_on_max_side(tmp_path, huge_limit, png):
    path = png(tmp_path / "wide.png", np.full((50, 100), 200, dtype=np.uint8))
    assert load_image(path, channels=1, max_side=20).shape == (20, 40, 1)


def test_decompression_bomb_is_a_data_error_with_its_reason(tmp_path, huge_limit, png):
    path = png(tmp_path / "bomb.png", np.zeros((80, 80), dtype=np.uint8))
    with pytest.raises(DataError, match="bomb.png has more pixels than Pillow decodes safely .*MAX_IMAGE_PIXELS"):
        load_image(path, channels=1)


def test_exif_rotated_huge_jpeg_is_upright(tmp_path, huge_limit):
    stored = np.zeros((50, 100, 3), dtype=np.uint8)
    stored[:, :50] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: shown turned 90 degrees clockwise
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    upright = load_image(path, channels=1)
    # Tall once turned, shorter side 10 (JPEG's 1/4-scale draft rounds 50 px up to 13: 19 px, not 20).
    assert upright.shape[1:] == (10, 1) and abs(upright.shape[0] - 20) <= 1
    assert upright[:8].mean() > 200 and upright[12:].mean() < 50  # the white half is now on top


def test_a_file_object_decodes_like_the_file_and_messages_use_its_name(tmp_path, png):
    path = png(tmp_path / "digit.png", np.arange(64, dtype=np.uint8).reshape(8, 8))
    with open(path, "rb") as upload:
        assert (load_image(upload, channels=1, name="digit.png") == load_image(path, channels=1)).all()
    with pytest.raises(DataError) as error:
        load_image(io.BytesIO(b"not an image"), channels=1, name="upload.png")
    assert str(error.value) == "cannot read image upload.png (cannot identify image file); remove or replace the file"


def test_max_pixels_refuses_from_the_header_before_decoding(tmp_path, png, monkeypatch):
    path = png(tmp_path / "wide.png", np.zeros((10, 30), dtype=np.uint8))
    monkeypatch.setattr(decode, "decode", lambda *args: pytest.fail("decoded an image over max_pixels"))
    with pytest.raises(decode.TooManyPixels, match="wide.png is 30 x 10 pixels, more than the 299 allowed"):
        load_image(path, channels=1, max_pixels=299)


def test_a_bomb_under_a_callers_cap_is_refused_with_the_callers_advice(tmp_path, huge_limit, png):
    path = png(tmp_path / "bomb.png", np.zeros((80, 80), dtype=np.uint8))
    with pytest.raises(decode.TooManyPixels, match="more pixels than Pillow decodes safely .*; send a smaller image$"):
        load_image(path, channels=1, max_pixels=10**9)
