"""Does an exported model compute what the PyTorch model computes? Checked on real images.

A batch of 1 and a batch of 7 go through both (7 exercises the dynamic batch axis with a
size the export never saw); we report the largest absolute logit difference and how often
the top-1 class agrees. Real images, not random noise: noise keeps activations in ranges
real data never visits and misses the errors that matter.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data.embedded import load_embedded
from ..data.samples import Samples
from ..errors import DataError, ModelError
from .runner import Classifier, decode_sample, read_samples

CHECK_BATCHES = (1, 7)


class ParityError(ModelError):
    """An exported model's outputs differ from PyTorch's by more than the tolerance."""


@dataclass
class Parity:
    batch_size: int
    max_abs_diff: float  # largest |exported logit - PyTorch logit|
    top1_agreement: float  # fraction of images with the same top-1 class

    def format(self) -> str:
        return f"batch {self.batch_size}: max |logit diff| {self.max_abs_diff:.3g}, top-1 agreement {self.top1_agreement:.0%}"


def check_pixels(classifier: Classifier, data=None, images: str | None = None) -> torch.Tensor:
    """Real images as the model sees them: uint8 N x C x size x size after the eval transform.

    From `data` (a folder, CSV or Samples) when given, else one digit per class from the
    bundled MNIST sample (made grey or RGB and resized by the model's own preset).
    """
    preset, count = classifier.preset, max(CHECK_BATCHES)
    samples = _embedded_digits(count) if data is None else read_samples(data, images)
    decoded = []
    for index in range(len(samples)):
        try:
            decoded.append(decode_sample(samples, index, preset))
        except DataError:
            continue  # an unreadable file among the check images: the others are enough
        if len(decoded) == count:
            break
    if not decoded:
        raise DataError(f"--check-data {data}: none of its images could be read; give a folder or CSV of images")
    decoded = [decoded[i % len(decoded)] for i in range(count)]  # fewer than needed: reuse them
    return torch.stack(decoded)


def _embedded_digits(count: int) -> Samples:
    val = load_embedded().val
    firsts = [int(np.flatnonzero(val.labels == digit)[0]) for digit in range(count)]
    return val.subset(np.asarray(firsts))


def compare(reference: nn.Module, run: Callable[[np.ndarray], np.ndarray], inputs: torch.Tensor) -> list[Parity]:
    """Parity of `run` (exported model: numpy in, logits out) against `reference` at each check batch size."""
    results = []
    for n in CHECK_BATCHES:
        x = inputs[:n]
        with torch.inference_mode():
            expected = reference(x).float().numpy()
        got = np.asarray(run(x.numpy()), dtype=np.float32)
        agreement = float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
        results.append(Parity(n, float(np.abs(got - expected).max()), agreement))
    return results


def require_parity(results: list[Parity], tolerance: float, what: str) -> None:
    worst = max(results, key=lambda r: r.max_abs_diff if np.isfinite(r.max_abs_diff) else np.inf)
    if not worst.max_abs_diff <= tolerance:  # written so that NaN fails too
        raise ParityError(
            f"{what} differs from PyTorch by up to {worst.max_abs_diff:.3g} at batch {worst.batch_size} "
            f"(tolerance {tolerance:g}); the file is kept for inspection — try another --opset, "
            "or raise --tolerance if that difference is acceptable"
        )
