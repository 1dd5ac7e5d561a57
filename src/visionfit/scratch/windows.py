"""Padding and stride (填充和步幅): output-size arithmetic, and the strided windows that every
scratch layer reads its input through.

The seeds write the output height as floor((n_h - k_h + p_h + s_h) / s_h), where p_h is the
TOTAL padding (top plus bottom). torch layers take `padding` per side, so p_h = 2 * padding;
`conv_output_size_per_side` is that form. Both agree with torch's
floor((n + 2 * padding - k) / s) + 1 (dilation 1).
"""
import torch
from torch import Tensor

IntOrPair = int | tuple[int, int]


def as_pair(value: IntOrPair) -> tuple[int, int]:
    """(h, w) from one int used for both axes or from an (h, w) pair, as torch layers accept."""
    if isinstance(value, int):
        return value, value
    h, w = value
    return h, w


def conv_output_size(n: int, k: int, p: int, s: int) -> int:
    """Output length along one axis, the seeds' formula; `p` is the total padding of both sides."""
    size = (n - k + p + s) // s
    if size < 1:
        raise ValueError(
            f"a window of {k} does not fit an input of {n} with total padding {p}: "
            "use a smaller kernel or pool size, or more padding"
        )
    return size


def conv_output_size_per_side(n: int, k: int, padding: int, stride: int) -> int:
    """Output length along one axis with torch's convention: `padding` is added on each side."""
    return conv_output_size(n, k, 2 * padding, stride)


def sliding_windows(x: Tensor, kernel_hw: IntOrPair, stride_hw: IntOrPair = 1) -> Tensor:
    """Every window of x (..., H, W) under a sliding kernel, as (..., out_h, out_w, k_h, k_w).

    windows[..., i, j, :, :] is x[..., i*s_h : i*s_h + k_h, j*s_w : j*s_w + k_w], the slice that
    d2l's corr2d reads for output pixel (i, j). Pad x first; this only slides.

    We gather tap (a, b) of all windows at once: it is the strided slice of x that starts at
    (a, b). So the Python loop runs k_h * k_w times instead of d2l's out_h * out_w, and each step
    is one whole-batch view that autograd tracks, with no in-place writes.
    """
    (k_h, k_w), (s_h, s_w) = as_pair(kernel_hw), as_pair(stride_hw)
    out_h = conv_output_size(x.shape[-2], k_h, 0, s_h)
    out_w = conv_output_size(x.shape[-1], k_w, 0, s_w)
    taps = [
        x[..., a : a + s_h * (out_h - 1) + 1 : s_h, b : b + s_w * (out_w - 1) + 1 : s_w]
        for a in range(k_h)
        for b in range(k_w)
    ]
    return torch.stack(taps, dim=-1).unflatten(-1, (k_h, k_w))
