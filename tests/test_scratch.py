"""visionfit.scratch against torch: values and gradients in float64, output shapes, and the
seeds' own examples (edge detection, learning a kernel, d2l's multi-channel and pooling numbers)."""
import doctest

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visionfit import scratch
from visionfit.scratch import (
    BatchNorm,
    Conv2D,
    as_pair,
    batch_norm,
    conv2d,
    conv_output_size,
    conv_output_size_per_side,
    corr2d,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_multi_in_out_1x1,
    pool2d,
)

TOL = dict(rtol=0.0, atol=1e-5)  # the brief's bound; float64 agreement is far tighter

# (n, c_i, h, w), (c_o, k_h, k_w), padding per side, stride
CONV_CASES = [
    ((1, 1, 6, 8), (1, 1, 2), 0, 1),  # the seeds' edge detector shape
    ((2, 3, 7, 5), (4, 3, 3), 1, 1),  # odd sizes, "same" padding
    ((2, 2, 7, 5), (3, 1, 1), 0, 2),  # 1x1 kernel with stride
    ((1, 2, 8, 8), (2, 3, 5), (0, 1), (3, 4)),  # the seeds' nn.Conv2d(kernel_size=(3, 5), ...)
    ((2, 1, 5, 7), (2, 2, 3), (1, 2), (2, 1)),  # non-square everything
    ((1, 3, 4, 4), (2, 4, 4), 2, 3),  # kernel as large as the input
]
CONV_IDS = [f"x{c[0]}-k{c[1]}-p{c[2]}-s{c[3]}" for c in CONV_CASES]

# (n, c, h, w), pool_size, padding per side, stride (None: the pool size)
POOL_CASES = [
    ((1, 1, 3, 3), 2, 0, 1),  # d2l's from-scratch pool2d: stride 1, no padding
    ((2, 3, 7, 5), 3, 1, None),
    ((2, 2, 7, 5), (2, 3), (1, 1), (2, 3)),  # the seeds' nn.MaxPool2d((2, 3), padding=(1, 1), ...)
    ((1, 2, 6, 8), (3, 2), (1, 0), (2, 1)),
    ((1, 1, 5, 5), 1, 0, 2),
]
POOL_IDS = [f"x{c[0]}-k{c[1]}-p{c[2]}-s{c[3]}" for c in POOL_CASES]


def leaves(*shapes, seed=0):
    """Random float64 tensors that require grad, reproducible per test."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]


def assert_same_values_and_grads(ours, theirs, inputs):
    """Both functions give the same output, and the same gradients of a random weighting of it."""
    y_ours, y_theirs = ours(*inputs), theirs(*inputs)
    torch.testing.assert_close(y_ours, y_theirs, **TOL)
    weights = torch.randn(y_ours.shape, generator=torch.Generator().manual_seed(1), dtype=y_ours.dtype)
    grads_ours = torch.autograd.grad((y_ours * weights).sum(), inputs)
    grads_theirs = torch.autograd.grad((y_theirs * weights).sum(), inputs)
    for g_ours, g_theirs in zip(grads_ours, grads_theirs):
        torch.testing.assert_close(g_ours, g_theirs, **TOL)


# ---- output size (填充和步幅) ----


@pytest.mark.parametrize("x_shape, k_shape, padding, stride", CONV_CASES, ids=CONV_IDS)
def test_output_size_formulas_match_torch_conv_shapes(x_shape, k_shape, padding, stride):
    c_o, k_h, k_w = k_shape
    K = torch.zeros(c_o, x_shape[1], k_h, k_w)
    out_hw = F.conv2d(torch.zeros(x_shape), K, padding=padding, stride=stride).shape[2:]
    sizes = list(zip(x_shape[2:], (k_h, k_w), as_pair(padding), as_pair(stride)))
    assert tuple(out_hw) == tuple(conv_output_size_per_side(n, k, p, s) for n, k, p, s in sizes)
    assert tuple(out_hw) == tuple(conv_output_size(n, k, 2 * p, s) for n, k, p, s in sizes)


@pytest.mark.parametrize("x_shape, pool_size, padding, stride", POOL_CASES, ids=POOL_IDS)
def test_output_size_matches_torch_pool_shapes(x_shape, pool_size, padding, stride):
    out = F.max_pool2d(torch.zeros(x_shape), pool_size, stride, padding)
    strides = as_pair(pool_size if stride is None else stride)
    sizes = zip(x_shape[2:], as_pair(pool_size), as_pair(padding), strides)
    assert tuple(out.shape[2:]) == tuple(conv_output_size_per_side(n, k, p, s) for n, k, p, s in sizes)


def test_seeds_padding_and_stride_example():
    # 8x8 input, kernel (3, 5), padding (0, 1) per side = (0, 2) in total, stride (3, 4): 2x2
    assert (conv_output_size(8, 3, 0, 3), conv_output_size(8, 5, 2, 4)) == (2, 2)


def test_kernel_larger_than_input_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 4, 4))


# ---- corr2d and Conv2D (图像卷积) ----


def test_corr2d_detects_the_seeds_vertical_edges():
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    K = torch.tensor([[1.0, -1.0]])
    row = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0])  # white->black gives 1, black->white -1
    torch.testing.assert_close(corr2d(X, K), row.expand(6, 7))
    # The transposed image has only horizontal edges, which this kernel cannot see.
    torch.testing.assert_close(corr2d(X.t(), K), torch.zeros(8, 5))


@pytest.mark.parametrize(
    "x_hw, k_hw", [((6, 8), (1, 2)), ((7, 5), (3, 2)), ((5, 7), (1, 1)), ((4, 4), (4, 4))]
)
def test_corr2d_matches_torch(x_hw, k_hw):
    unbatch = lambda X, K: F.conv2d(X[None, None], K[None, None])[0, 0]
    assert_same_values_and_grads(corr2d, unbatch, leaves(x_hw, k_hw))


def test_conv2d_module_learns_the_edge_kernel():
    torch.manual_seed(0)
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    K = torch.tensor([[1.0, -1.0]])
    Y = corr2d(X, K)
    layer = Conv2D((1, 2))
    # d2l trains weight only (nn.Conv2d(bias=False)) with lr 3e-2; our bias's gradient sums over
    # all 42 outputs, which diverges at that rate, so we train both at 1e-2 for longer.
    optimizer = torch.optim.SGD(layer.parameters(), lr=1e-2)
    for _ in range(30):
        loss = ((layer(X) - Y) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    torch.testing.assert_close(layer.weight.detach(), K, rtol=0.0, atol=0.05)
    assert abs(layer.bias.item()) < 0.01


# ---- multiple channels (多输入多输出通道) ----


def test_corr2d_multi_in_gives_d2l_numbers():
    X = torch.stack([torch.arange(9.0).reshape(3, 3), torch.arange(1.0, 10.0).reshape(3, 3)])
    K = torch.stack([torch.arange(4.0).reshape(2, 2), torch.arange(1.0, 5.0).reshape(2, 2)])
    torch.testing.assert_close(corr2d_multi_in(X, K), torch.tensor([[56.0, 72.0], [104.0, 120.0]]))


@pytest.mark.parametrize("k_hw", [(1, 1), (2, 3)])
def test_corr2d_multi_in_out_matches_torch(k_hw):
    unbatch = lambda X, K: F.conv2d(X[None], K)[0]
    assert_same_values_and_grads(corr2d_multi_in_out, unbatch, leaves((3, 7, 5), (2, 3, *k_hw)))
    multi_in = lambda X, K: corr2d_multi_in_out(X, K[None])[0]
    assert_same_values_and_grads(corr2d_multi_in, multi_in, leaves((3, 7, 5), (3, *k_hw)))


def test_1x1_as_matrix_product_matches_torch():
    unbatch = lambda X, K: F.conv2d(X[None], K)[0]
    assert_same_values_and_grads(corr2d_multi_in_out_1x1, unbatch, leaves((3, 7, 5), (2, 3, 1, 1)))


# ---- the batched layer ----


@pytest.mark.parametrize("x_shape, k_shape, padding, stride", CONV_CASES, ids=CONV_IDS)
def test_conv2d_matches_torch(x_shape, k_shape, padding, stride):
    c_o, k_h, k_w = k_shape
    inputs = leaves(x_shape, (c_o, x_shape[1], k_h, k_w), (c_o,))
    ours = lambda X, K, b: conv2d(X, K, b, padding=padding, stride=stride)
    theirs = lambda X, K, b: F.conv2d(X, K, b, padding=padding, stride=stride)
    assert_same_values_and_grads(ours, theirs, inputs)


def test_conv2d_without_bias_matches_torch():
    assert_same_values_and_grads(conv2d, F.conv2d, leaves((2, 3, 7, 5), (4, 3, 2, 3)))


def test_conv2d_passes_gradcheck():
    X, K, b = leaves((1, 2, 5, 4), (2, 2, 3, 2), (2,))
    convolve = lambda X, K, b: conv2d(X, K, b, padding=(1, 0), stride=(2, 1))
    assert torch.autograd.gradcheck(convolve, (X, K, b))


# ---- pooling (池化层) ----


def test_pool2d_gives_d2l_numbers():
    X = torch.arange(9.0).reshape(1, 1, 3, 3)
    max_2x2, avg_2x2 = pool2d(X, 2, "max", stride=1), pool2d(X, 2, "avg", stride=1)
    torch.testing.assert_close(max_2x2[0, 0], torch.tensor([[4.0, 5.0], [7.0, 8.0]]))
    torch.testing.assert_close(avg_2x2[0, 0], torch.tensor([[2.0, 3.0], [5.0, 6.0]]))


TORCH_POOLS = {"max": F.max_pool2d, "avg": F.avg_pool2d}


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("x_shape, pool_size, padding, stride", POOL_CASES, ids=POOL_IDS)
def test_pool2d_matches_torch(mode, x_shape, pool_size, padding, stride):
    ours = lambda X: pool2d(X, pool_size, mode, padding, stride)
    theirs = lambda X: TORCH_POOLS[mode](X, pool_size, stride, padding)
    assert_same_values_and_grads(ours, theirs, leaves(x_shape))


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool2d_passes_gradcheck(mode):
    (X,) = leaves((1, 2, 5, 4))
    assert torch.autograd.gradcheck(lambda X: pool2d(X, (3, 2), mode, padding=1, stride=(2, 1)), (X,))


def test_pool2d_refuses_bad_mode_and_padding():
    X = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="max, avg"):
        pool2d(X, 2, "mean")
    with pytest.raises(ValueError, match="half the pool size"):
        pool2d(X, 2, padding=2)


# ---- batch normalisation (批量归一化) ----

BN_SHAPES = [(8, 3), (4, 3, 5, 7)]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("x_shape", BN_SHAPES, ids=["2d", "4d"])
def test_batch_norm_matches_torch(x_shape, training):
    c = x_shape[1]
    moving_mean = torch.randn(c, dtype=torch.float64)
    moving_var = torch.rand(c, dtype=torch.float64) + 0.5
    # F.batch_norm updates its running statistics in place, so it gets copies.
    running_mean, running_var = moving_mean.clone(), moving_var.clone()

    moved = {}

    def ours(X, gamma, beta):
        Y, moved["mean"], moved["var"] = batch_norm(
            X, gamma, beta, moving_mean, moving_var, 1e-5, 0.9, training
        )
        return Y

    def theirs(X, gamma, beta):
        return F.batch_norm(X, running_mean, running_var, gamma, beta, training, momentum=0.1, eps=1e-5)

    assert_same_values_and_grads(ours, theirs, leaves(x_shape, (c,), (c,)))
    # One step each from the same statistics (eval leaves both unchanged).
    torch.testing.assert_close(moved["mean"], running_mean, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(moved["var"], running_var, rtol=0.0, atol=1e-12)


def test_batch_norm_passes_gradcheck():
    X, gamma, beta = leaves((3, 2, 2, 3), (2,), (2,))
    stats = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    normalise = lambda X, gamma, beta: batch_norm(X, gamma, beta, *stats, 1e-5, 0.9, True)[0]
    assert torch.autograd.gradcheck(normalise, (X, gamma, beta))


@pytest.mark.parametrize("momentum", [0.9, 0.7])
@pytest.mark.parametrize("x_shape", BN_SHAPES, ids=["2d", "4d"])
def test_batchnorm_module_tracks_torch_in_train_and_eval(x_shape, momentum):
    c = x_shape[1]
    ours = BatchNorm(c, num_dims=len(x_shape), momentum=momentum).double()
    torch_class = nn.BatchNorm1d if len(x_shape) == 2 else nn.BatchNorm2d
    theirs = torch_class(c, momentum=1.0 - momentum).double()  # d2l momentum = 1 - torch momentum
    with torch.no_grad():
        for p_ours, p_theirs in [(ours.gamma, theirs.weight), (ours.beta, theirs.bias)]:
            p_ours.copy_(torch.randn(c))
            p_theirs.copy_(p_ours)
    gen = torch.Generator().manual_seed(0)
    for step in range(3):
        # Shifted, scaled batches, so the statistics move and a wrong momentum or variance shows.
        X = torch.randn(x_shape, generator=gen, dtype=torch.float64) * (step + 1) + step
        Y_ours, Y_theirs = ours(X), theirs(X)
        torch.testing.assert_close(Y_ours, Y_theirs, **TOL)
        (Y_ours**2).sum().backward()
        (Y_theirs**2).sum().backward()
        torch.testing.assert_close(ours.moving_mean, theirs.running_mean, rtol=0.0, atol=1e-12)
        torch.testing.assert_close(ours.moving_var, theirs.running_var, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(ours.gamma.grad, theirs.weight.grad, **TOL)
    torch.testing.assert_close(ours.beta.grad, theirs.bias.grad, **TOL)

    ours.eval()
    theirs.eval()
    X = torch.randn(x_shape, generator=gen, dtype=torch.float64)
    moving_before = ours.moving_mean.clone(), ours.moving_var.clone()
    torch.testing.assert_close(ours(X), theirs(X), **TOL)
    # Eval uses the moving statistics: it leaves them alone, and each sample is normalised on its own.
    torch.testing.assert_close((ours.moving_mean, ours.moving_var), moving_before, rtol=0.0, atol=0.0)
    torch.testing.assert_close(ours(X[:1]), theirs(X)[:1], **TOL)


def test_batchnorm_module_keeps_statistics_in_state_dict():
    layer = BatchNorm(3, num_dims=4)
    X = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0)) + 5.0
    layer(X)
    state = layer.state_dict()
    assert set(state) == {"gamma", "beta", "moving_mean", "moving_var"}
    # One step of momentum 0.9 from zero: a tenth of the batch mean.
    torch.testing.assert_close(state["moving_mean"], 0.1 * X.mean(dim=(0, 2, 3)))


def test_batch_norm_refuses_bad_shapes():
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm(3, num_dims=2)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="num_dims=4"):
        BatchNorm(3, num_dims=4)(torch.randn(2, 3))


def test_package_docstring_example_runs():
    assert doctest.testmod(scratch, raise_on_error=True).attempted > 0
