"""Convolution from scratch (图像卷积, 多输入多输出通道), in the order the seeds build it.

corr2d -> Conv2D -> corr2d_multi_in -> corr2d_multi_in_out (-> _1x1 as a matrix product)
-> conv2d, the batched NCHW layer with padding and stride that matches F.conv2d.
Like torch, "convolution" here is cross-correlation: the kernel is not flipped.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .windows import IntOrPair, as_pair, sliding_windows


def corr2d(X: Tensor, K: Tensor) -> Tensor:
    """2-D cross-correlation of X (h, w) with K (k_h, k_w), stride 1, no padding.

    Y[i, j] = (X[i:i + k_h, j:j + k_w] * K).sum(), as in the seeds; the windows come all at once
    rather than from d2l's loop over (i, j). Leading dims of X, e.g. channels, are kept.
    """
    return (sliding_windows(X, K.shape) * K).sum(dim=(-2, -1))


class Conv2D(nn.Module):
    """The seeds' single-channel layer: corr2d with a learned kernel and a scalar bias."""

    def __init__(self, kernel_size: tuple[int, int]):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(kernel_size))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return corr2d(x, self.weight) + self.bias


def corr2d_multi_in(X: Tensor, K: Tensor) -> Tensor:
    """X (c_i, h, w), K (c_i, k_h, k_w) -> (out_h, out_w): correlate channel by channel, then add."""
    return sum(corr2d(x, k) for x, k in zip(X, K))


def corr2d_multi_in_out(X: Tensor, K: Tensor) -> Tensor:
    """X (c_i, h, w), K (c_o, c_i, k_h, k_w) -> (c_o, out_h, out_w): one multi-in kernel per output."""
    return torch.stack([corr2d_multi_in(X, k) for k in K], dim=0)


def corr2d_multi_in_out_1x1(X: Tensor, K: Tensor) -> Tensor:
    """The same for a 1x1 kernel K (c_o, c_i, 1, 1), as a matrix product over channels.

    Each output pixel mixes only the channels of the same input pixel, so a 1x1 convolution is a
    fully connected layer applied at every pixel: (c_o, c_i) @ (c_i, h * w).
    """
    c_i, h, w = X.shape
    c_o = K.shape[0]
    Y = K.reshape(c_o, c_i) @ X.reshape(c_i, h * w)
    return Y.reshape(c_o, h, w)


def conv2d(
    X: Tensor,
    K: Tensor,
    bias: Tensor | None = None,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
) -> Tensor:
    """F.conv2d from scratch: X (n, c_i, h, w), K (c_o, c_i, k_h, k_w), bias (c_o,) -> NCHW.

    `padding` is zeros added on EACH side (torch's convention; the seeds' p is twice that) and,
    like `stride`, is an int or an (h, w) pair. Output size: conv_output_size_per_side.
    """
    p_h, p_w = as_pair(padding)
    X = F.pad(X, (p_w, p_w, p_h, p_h))
    windows = sliding_windows(X, K.shape[-2:], stride)  # (n, c_i, out_h, out_w, k_h, k_w)
    # corr2d_multi_in_out for the whole batch: per output channel o, sum window * K[o] over
    # input channels c and kernel taps (a, b).
    Y = torch.einsum("ncijab,ocab->noij", windows, K)
    if bias is None:
        return Y
    return Y + bias.reshape(1, -1, 1, 1)
