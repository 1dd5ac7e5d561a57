"""Batch normalisation from scratch (批量归一化), as the seeds, with moving statistics that track
torch's running statistics.

Two conventions differ between d2l and torch:

- Momentum. d2l: moving = momentum * moving + (1 - momentum) * batch, momentum = 0.9.
  torch:       running = (1 - m) * running + m * batch,            m = 0.1.
  Here `momentum` keeps d2l's meaning (the weight of the OLD statistics): momentum = 1 - m.
- Variance. Both normalise a batch by its biased variance (divide by n). torch folds the
  UNBIASED variance (divide by n - 1) into running_var; d2l folds the biased one. We follow
  torch, so BatchNorm(c, 4, momentum=0.9) keeps the same moving_var as
  nn.BatchNorm2d(c, momentum=0.1). The two differ by n / (n - 1), with n the values per channel
  in a batch (N*H*W, or N for 2-D input): negligible for big batches, which is why d2l's simpler
  form trains as well.
"""
import torch
from torch import Tensor, nn


def batch_norm(
    X: Tensor,
    gamma: Tensor,
    beta: Tensor,
    moving_mean: Tensor,
    moving_var: Tensor,
    eps: float,
    momentum: float,
    training: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Normalise X per feature (n, c) or per channel (n, c, h, w); return (Y, moving_mean, moving_var).

    gamma, beta and the moving statistics are (c,). Training normalises with the batch's own
    statistics and folds them into the returned moving ones; evaluation normalises with the moving
    statistics and returns them unchanged. d2l picks the mode by torch.is_grad_enabled(); we take
    `training` explicitly, as F.batch_norm does, since evaluating under autograd is legitimate.
    """
    if X.dim() not in (2, 4):
        raise ValueError(f"batch_norm takes (n, c) or (n, c, h, w) input, not shape {tuple(X.shape)}")
    per_channel = (1, -1) + (1,) * (X.dim() - 2)  # lays a (c,) vector along X's channel dim
    if training:
        dims = (0,) if X.dim() == 2 else (0, 2, 3)
        count = X.numel() // X.shape[1]
        if count < 2:
            raise ValueError(
                "batch_norm training needs more than one value per channel: use a batch of 2 or more"
            )
        mean = X.mean(dim=dims)
        var = ((X - mean.reshape(per_channel)) ** 2).mean(dim=dims)
        with torch.no_grad():  # the moving statistics are bookkeeping, not part of the graph
            unbiased_var = var * count / (count - 1)
            moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
            moving_var = momentum * moving_var + (1.0 - momentum) * unbiased_var
    else:
        mean, var = moving_mean, moving_var
    X_hat = (X - mean.reshape(per_channel)) / torch.sqrt(var.reshape(per_channel) + eps)
    return gamma.reshape(per_channel) * X_hat + beta.reshape(per_channel), moving_mean, moving_var


class BatchNorm(nn.Module):
    """The seeds' BatchNorm layer; `num_dims` 2 after a linear layer, 4 after a convolution.

    Differs from d2l in storage only: gamma, beta and the moving statistics are (c,) like
    torch's, and the moving statistics are buffers, so they follow .to(device) and state_dict.
    BatchNorm(c, 4, eps, momentum) matches nn.BatchNorm2d(c, eps, momentum=1 - momentum), and
    BatchNorm(c, 2, ...) matches nn.BatchNorm1d, in train and eval mode.
    """

    def __init__(self, num_features: int, num_dims: int, eps: float = 1e-5, momentum: float = 0.9):
        super().__init__()
        if num_dims not in (2, 4):
            raise ValueError(
                f"BatchNorm num_dims must be 2 (after nn.Linear) or 4 (after a convolution), "
                f"not {num_dims}"
            )
        self.num_dims, self.eps, self.momentum = num_dims, eps, momentum
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("moving_mean", torch.zeros(num_features))
        self.register_buffer("moving_var", torch.ones(num_features))

    def forward(self, X: Tensor) -> Tensor:
        if X.dim() != self.num_dims:
            raise ValueError(
                f"BatchNorm built with num_dims={self.num_dims} got input of shape {tuple(X.shape)}"
            )
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean, self.moving_var,
            self.eps, self.momentum, self.training,
        )
        return Y
