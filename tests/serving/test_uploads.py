"""The caps: an oversize body, a non-image, a truncated image, a decompression bomb, too many files:
each gets a 4xx with a one-line reason, before the model sees anything, and the server goes on serving."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from visionfit.data import decode
from visionfit.serving.uploads import Limits

from .conftest import served, uploads


def png_bytes(pixels: np.ndarray) -> bytes:
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="PNG")
    return encoded.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int) -> bytes:
    """A PNG of about 100 bytes whose header claims side x side grey pixels."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
            + png_chunk(b"IEND", b""))


NOISE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
# name -> (file bytes, status, words the message must have)
BAD_UPLOADS = {
    "text": (b"shopping list: milk, eggs", 415, "cannot identify image file"),
    "html-named-png": (b"<!DOCTYPE html><html><body>404</body></html>", 415, "cannot identify image file"),
    "empty": (b"", 415, "cannot identify image file"),
    "truncated-png": (png_bytes(NOISE)[:2000], 400, "truncated"),
    "bomb-over-the-cap": (bomb_png(10_000), 413, "10,000 x 10,000 pixels"),  # 100 MP > the 40 MP default
    "bomb-over-pillows-limit": (bomb_png(100_000), 413, "(10000000000 pixels)"),  # refused by Pillow on open
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_gets_a_4xx_naming_it_and_the_server_keeps_serving(mnist_model, digit_files, monkeypatch, case):
    data, status, words = BAD_UPLOADS[case]
    decoded = []
    monkeypatch.setattr(decode, "decode", lambda image, side=None, real=decode.decode: decoded.append(image.size)
                        or real(image, side))
    with served(mnist_model) as client:
        answer = client.post("/predict", files=[("file", (f"{case}.png", data, "image/png"))])
        assert answer.status_code == status, answer.text
        assert f"{case}.png" in answer.json()["error"] and words in answer.json()["error"]
        assert client.get("/health").json()["images_scored"] == 0
        assert client.post("/predict", files=uploads(digit_files[:1])).status_code == 200  # still serving
    assert all(width * height <= Limits().max_pixels for width, height in decoded)  # a bomb: refused from its header


def test_pixel_cap_is_the_servers_setting(mnist_model):
    with served(mnist_model, Limits(max_pixels=27 * 28)) as client:
        answer = client.post("/predict", files=[("file", ("digit.png", png_bytes(NOISE[:28, :28, 0]), "image/png"))])
    assert answer.status_code == 413 and "28 x 28 pixels, more than the 756 allowed" in answer.json()["error"]


def test_an_oversize_body_gets_413_whether_or_not_it_says_its_length(mnist_model):
    limits = Limits(max_upload_mb=0.01)  # 10 kB
    big = png_bytes(np.random.default_rng(1).integers(0, 256, (100, 100, 3), dtype=np.uint8))  # ~30 kB
    with served(mnist_model, limits) as client:
        declared = client.post("/predict", files=[("file", ("big.png", big, "image/png"))])
        streamed = client.post("/predict", content=iter([b"--x\r\n", big, b"\r\n--x--\r\n"]),  # chunked: no length
                               headers={"content-type": "multipart/form-data; boundary=x"})
    for answer in (declared, streamed):
        assert answer.status_code == 413 and "over the 0.01 MB this server takes" in answer.json()["error"]


def test_too_many_files_or_none_or_not_multipart_is_a_400_or_415(mnist_model, digit_files):
    with served(mnist_model, Limits(max_files=2)) as client:
        too_many = client.post("/predict", files=uploads(digit_files[:3]))
        none = client.post("/predict", content=b'--x\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--x--\r\n',
                           headers={"content-type": "multipart/form-data; boundary=x"})  # a field, no file
        raw = client.post("/predict", content=digit_files[0].read_bytes(), headers={"content-type": "image/png"})
    assert too_many.status_code == 400 and "Too many files" in too_many.json()["error"]
    assert none.status_code == 400 and "no image file" in none.json()["error"]
    assert raw.status_code == 415 and "multipart/form-data" in raw.json()["error"]


def test_one_bad_file_refuses_its_request_by_name(mnist_model, digit_files):
    with served(mnist_model) as client:
        answer = client.post("/predict", files=[*uploads(digit_files[:2]), ("file", ("notes.png", b"not an image", "x"))])
    assert answer.status_code == 415 and answer.json()["error"].startswith("cannot read image notes.png")
