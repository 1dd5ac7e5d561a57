"""The CNN chapter's building blocks from scratch, to read next to the d2l notes (seed 002).

Plain tensor code, differentiable with autograd, checked against torch in values and gradients
by tests/test_scratch.py. Seed section -> module:

- 图像卷积, 多输入多输出通道: conv.py (corr2d, Conv2D, corr2d_multi_in[_out][_1x1], conv2d)
- 填充和步幅:               windows.py (conv_output_size[_per_side], sliding_windows)
- 池化层:                   pool.py (pool2d)
- 批量归一化:               batchnorm.py (batch_norm, BatchNorm)

    >>> import torch
    >>> X = torch.ones(6, 8); X[:, 2:6] = 0
    >>> corr2d(X, torch.tensor([[1.0, -1.0]]))[0]   # edges light up, flat regions give 0
    tensor([ 0.,  1.,  0.,  0.,  0., -1.,  0.])
"""
from .batchnorm import BatchNorm, batch_norm
from .conv import Conv2D, conv2d, corr2d, corr2d_multi_in, corr2d_multi_in_out, corr2d_multi_in_out_1x1
from .pool import pool2d
from .windows import as_pair, conv_output_size, conv_output_size_per_side, sliding_windows

__all__ = [
    "BatchNorm",
    "Conv2D",
    "as_pair",
    "batch_norm",
    "conv2d",
    "conv_output_size",
    "conv_output_size_per_side",
    "corr2d",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "pool2d",
    "sliding_windows",
]
