"""Uploads read under caps: a request body of bounded size, a bounded number of files, bounded pixels.

An upload is data: its size is counted as it streams in (a Content-Length may lie or be
absent), its pixel count is read from the image header before anything is decoded
(data/decode.py), and every refusal is a Refused with the HTTP status and one line
saying what to send instead. The server keeps serving whatever a client sends.
"""
from dataclasses import dataclass

from PIL import UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..data.decode import TooManyPixels
from ..errors import DataError
from .server import DEFAULT_LIMITS

MB = 1024 * 1024
# HTTP statuses of the refusals.
TOO_LARGE, UNSUPPORTED, BAD_REQUEST = 413, 415, 400


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_mb: float = DEFAULT_LIMITS["max_upload_mb"]  # the whole request body, all its images together
    max_pixels: int = DEFAULT_LIMITS["max_pixels"]  # per image (width x height), read from the header before decoding
    max_files: int = DEFAULT_LIMITS["max_files"]  # images per request


class Refused(Exception):
    """A request the server will not score: `status` is its HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_images(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each file in a multipart/form-data request, in order."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise Refused(UNSUPPORTED, "send images as multipart/form-data file fields, "
                                   "e.g. curl -F file=@digit.png http://127.0.0.1:8000/predict")
    max_bytes = int(limits.max_upload_mb * MB)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), limits)  # refused before a byte of it is read
    parser = MultiPartParser(request.headers, _counted(request.stream(), max_bytes, limits), max_files=limits.max_files,
                             max_fields=limits.max_files)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise Refused(BAD_REQUEST, f"the multipart body is malformed or has too much in it: {error.message}")
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise Refused(BAD_REQUEST, "the request has no image file; send one or more, "
                                       "e.g. curl -F file=@digit.png -F file=@other.png ...")
        return [(_name(upload, i), await upload.read()) for i, upload in enumerate(files)]
    finally:
        await form.close()


def refusal(error: DataError) -> Refused:
    """decode_upload's DataError as the response it deserves: too many pixels (413), not an image
    (415), or an image file that is truncated or corrupt (400)."""
    if isinstance(error, TooManyPixels):
        return Refused(TOO_LARGE, str(error))
    status = UNSUPPORTED if isinstance(error.__cause__, UnidentifiedImageError) else BAD_REQUEST
    advice = "send a PNG, JPEG or another image file Pillow reads"
    return Refused(status, str(error).replace("remove or replace the file", advice))


async def _counted(stream, max_bytes: int, limits: Limits):
    """The body's chunks, refused as soon as they add up to more than max_bytes."""
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(received, limits)
        yield chunk


def _too_large(size: int, limits: Limits) -> Refused:
    return Refused(TOO_LARGE, f"the upload is {size:,} bytes or more, over the {limits.max_upload_mb:g} MB this server "
                              "takes per request; send fewer or smaller images")


def _name(upload: UploadFile, index: int) -> str:
    """The file name the client gave, short and printable, for messages and the response."""
    name = "".join(ch for ch in (upload.filename or "") if ch.isprintable())[:100]
    return name or f"file {index + 1}"
