"""Pooling from scratch (池化层): F.max_pool2d and F.avg_pool2d on the same sliding windows as conv2d.

d2l's from-scratch pool2d slides with stride 1 and no padding; this one takes padding and stride
like nn.MaxPool2d((2, 3), padding=(1, 1), stride=(2, 3)) in the seeds, stride defaulting to the
pool size as in torch. Channels are pooled separately, so they come out as many as they went in.
"""
import math
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from .windows import IntOrPair, as_pair, sliding_windows

# mode -> (padding value, reduction over the last dim of the flattened windows).
# Max pads with -inf so padding never wins. Avg pads with zeros that count in the mean,
# torch's default count_include_pad=True.
_POOLS: dict[str, tuple[float, Callable[[Tensor], Tensor]]] = {
    "max": (-math.inf, lambda windows: windows.max(dim=-1).values),
    "avg": (0.0, lambda windows: windows.mean(dim=-1)),
}


def pool2d(
    X: Tensor,
    pool_size: IntOrPair,
    mode: str = "max",
    padding: IntOrPair = 0,
    stride: IntOrPair | None = None,
) -> Tensor:
    """Max or average of every pool window of X (n, c, h, w) -> (n, c, out_h, out_w).

    `padding` is per side and at most half the pool size (torch's rule, which keeps a real
    pixel in every window); `stride` None means the pool size.
    """
    if mode not in _POOLS:
        raise ValueError(f"pool2d mode {mode!r} is unknown: use one of {', '.join(_POOLS)}")
    (k_h, k_w), (p_h, p_w) = as_pair(pool_size), as_pair(padding)
    if p_h > k_h // 2 or p_w > k_w // 2:
        raise ValueError(
            f"pool2d padding {(p_h, p_w)} exceeds half the pool size {(k_h, k_w)}: "
            "pad at most pool_size // 2 on each side"
        )
    pad_value, reduce = _POOLS[mode]
    X = F.pad(X, (p_w, p_w, p_h, p_h), value=pad_value)
    windows = sliding_windows(X, (k_h, k_w), (k_h, k_w) if stride is None else stride)
    return reduce(windows.flatten(-2))
