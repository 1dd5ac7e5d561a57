"""Samples -> the model's input, a batch at a time: decode on threads only where that pays, then
one stack, one copy to the device and one normalisation per batch.

    for batch in eval_batches(samples, preset.preprocess, batch_size=256):
        batch.rows, batch.scored       # the batch's sample indices; those that decoded
        batch.pixels                   # uint8 len(scored) x size x size x C: Preprocess.apply's output
        batch.errors                   # {sample index: why it could not be read}
    x = model_input(batch.pixels, preset, device)   # float N x C x size x size, normalised

Each image passes through Preprocess.apply, the one eval preprocessing, unless it already is
the model's input (apply would hand it back unchanged: MNIST's 28 x 28 digits for a 28-pixel
model), so equal-size batches cost one np.stack. The images travel as uint8 (4x less to copy)
and become float, in N x C x H x W order, where the model runs.

Threads decode ahead only when the files are big enough to pay for them. PIL releases the GIL
inside the decoder, but opening a file and parsing its header is Python: a tiny PNG (MNIST's
are under 1 KiB) spends most of its ~0.2 ms there, so threads only queue for the GIL and the
hand-off costs more than it saves, while they fight the model's own threads for the cores.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..data.decode import load_image, match_channels, spread_picks
from ..data.preprocess import Preprocess
from ..data.samples import Samples
from ..data.transforms import Preset
from ..errors import DataError

# Median file size from which decoding on threads pays: such a file takes a millisecond or more
# to decode (a 256-pixel JPEG, a 128-pixel PNG), mostly inside PIL's decoder, without the GIL.
THREADED_DECODE_BYTES = 32 * 1024
MAX_DECODE_THREADS = 8
SIZE_SAMPLE = 16  # files whose sizes are looked at, spread over the list


@dataclass
class EvalBatch:
    rows: range  # the sample indices of this batch
    scored: list[int] = field(default_factory=list)  # those that decoded, in order
    pixels: np.ndarray | None = None  # uint8 len(scored) x size x size x C, or None when none decoded
    errors: dict[int, DataError] = field(default_factory=dict)  # sample index -> why it is unreadable


def eval_batches(samples: Samples, spec: Preprocess, batch_size: int, workers: int | None = None) -> Iterator[EvalBatch]:
    """The samples' eval pixels, batch by batch in order; see the module docstring.

    workers: decoding threads (0 or None: as many as pay, see decode_threads).
    """
    threads = decode_threads(samples, workers)
    starts = range(0, len(samples), batch_size)
    batches = (range(start, min(start + batch_size, len(samples))) for start in starts)
    if not threads:
        for rows in batches:
            yield _batch(rows, [eval_view(samples, row, spec) for row in rows])
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ahead = None  # the batch that decodes while the caller runs the one before it
        for rows in batches:
            current, ahead = ahead, (rows, [pool.submit(eval_view, samples, row, spec) for row in rows])
            if current is not None:
                yield _batch(current[0], [future.result() for future in current[1]])
        if ahead is not None:
            yield _batch(ahead[0], [future.result() for future in ahead[1]])


def decode_threads(samples: Samples, workers: int | None = None) -> int:
    """Threads to decode `samples` with; 0: on the calling thread. `workers` (when > 0) decides;
    else threads only for files of THREADED_DECODE_BYTES or more (median), on more than one core."""
    if workers:
        return workers
    cores = os.cpu_count() or 1
    if samples.paths is None or cores < 2:  # arrays: nothing to decode
        return 0
    return min(MAX_DECODE_THREADS, cores) if median_file_bytes(samples.paths) >= THREADED_DECODE_BYTES else 0


def median_file_bytes(paths: list) -> float:
    """The median size of up to SIZE_SAMPLE files spread evenly over `paths` (unreadable ones left out)."""
    if not paths:
        return 0.0
    picks = spread_picks(len(paths), SIZE_SAMPLE)
    sizes = []
    for index in picks:
        try:
            sizes.append(os.path.getsize(paths[index]))
        except OSError:
            continue
    return float(np.median(sizes)) if sizes else 0.0


def eval_view(samples: Samples, index: int, spec: Preprocess) -> np.ndarray | DataError:
    """One sample decoded at full size and through the eval preprocessing: uint8 size x size x C,
    or the DataError of an unreadable file (returned, so one bad file does not stop a batch)."""
    try:
        if samples.images is not None:
            pixels = match_channels(samples.images[index], spec.channels)
        else:
            pixels = load_image(samples.paths[index], spec.channels)
    except DataError as error:
        return error
    return pixels if is_model_input(pixels, spec) else spec.apply(pixels)


def is_model_input(pixels: np.ndarray, spec: Preprocess) -> bool:
    """Pixels that Preprocess.apply would hand back unchanged: already size x size, and a size
    its resize rule keeps (so its centre crop is the whole image)."""
    shape = pixels.shape[:2]
    return shape == (spec.size, spec.size) and spec.resized_shape(*shape) == shape


def _batch(rows: range, decoded: list) -> EvalBatch:
    batch = EvalBatch(rows)
    for row, pixels in zip(rows, decoded):
        if isinstance(pixels, DataError):
            batch.errors[row] = pixels
        else:
            batch.scored.append(row)
    if batch.scored:
        batch.pixels = np.stack([pixels for pixels in decoded if not isinstance(pixels, DataError)])
    return batch


def model_input(pixels_nhwc: np.ndarray | torch.Tensor, preset: Preset, device: torch.device | None = None) -> torch.Tensor:
    """uint8 N x H x W x C -> float32 N x C x H x W on `device`, normalised as the preset says.

    Copied as uint8 and turned to float where the model runs."""
    x = torch.as_tensor(pixels_nhwc).to(device).permute(0, 3, 1, 2)
    # A fresh tensor with N x C x H x W strides, as training fed the model: a one-channel permuted
    # view already counts as contiguous, but its strides send convolutions down the channels-last
    # path, whose sums differ in the last bits.
    return preset.normalize(x.clone(memory_format=torch.contiguous_format))
