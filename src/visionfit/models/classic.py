"""The classic nets of d2l's CNN chapters, from the MLP to NiN, as clean registered factories.

Each follows d2l's layers and widths, but takes `in_channels` and `input_size` instead of
hard-coding Fashion-MNIST's 1 x 28 (or 1 x 224 resized): where d2l writes a flatten width
(16 * 5 * 5, 6400, 512 * 7 * 7), we find it with a dry run at construction. `input_size` is
a constructor argument, so a saved model rebuilds identically from its arguments.

GoogLeNet and ResNet live in classic_deep.py.
"""
import torch
from torch import nn

from ..errors import ModelError
from .recipes import d2l_line
from .registry import register_model
from .safety import MAX_IMAGE_SIDE

_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class ClassicNet(nn.Module):
    """A classic net laid out as timm lays out its models: `features`, then `head`.

    `head[-1]` is the Linear that maps to class scores, so a head swap (`reset_classifier`)
    and a frozen-backbone feature cache (`forward_features`) work alike for every net.
    """

    def __init__(self, features: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.features = features
        self.head = head

    def forward_features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return self.features(x_nchw)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x_nchw))

    def get_classifier(self) -> nn.Module:
        return self.head[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier with `num_classes` outputs, for fine-tuning on new classes."""
        self.head[-1] = nn.Linear(self.head[-1].in_features, num_classes)


def _choice(table: dict, value: str, option: str) -> type[nn.Module]:
    if value not in table:
        raise ModelError(f"{option} must be one of {', '.join(table)}, not '{value}' (--model-args {option}=...)")
    return table[value]


def _feature_shape(name: str, features: nn.Module, in_channels: int, input_size: int) -> torch.Size:
    """Shape (C, H, W) the features give for one image, by a dry run; a clear error if the size does not fit.

    The dry run runs on the meta device, on shape-only copies of the weights: it computes shapes
    and allocates nothing, so it also costs nothing when the model itself is built on meta.
    """
    if input_size > MAX_IMAGE_SIDE:
        raise ModelError(f"{name} cannot take {input_size} x {input_size} images (at most {MAX_IMAGE_SIDE} px a side); "
                         "use a smaller --image-size")
    shapes_only = {key: torch.empty_like(tensor, device="meta")
                   for key, tensor in [*features.named_parameters(), *features.named_buffers()]}
    was_training = features.training
    features.eval()  # as inference runs it: a train-mode BatchNorm1d refuses a batch of one
    try:
        x_nchw = torch.zeros(1, in_channels, input_size, input_size, device="meta")
        return torch.func.functional_call(features, shapes_only, (x_nchw,)).shape[1:]
    except RuntimeError as err:  # a pooling or conv window larger than what is left of the image
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelError(f"{name} cannot take {input_size} x {input_size} images ({reason}); "
                         "use a larger --image-size") from err
    finally:
        features.train(was_training)


def _flat_width(name: str, features: nn.Module, in_channels: int, input_size: int) -> int:
    # Plain Linear sized here, not nn.LazyLinear: lazy modules break loading weights into a
    # fresh model and ONNX export.
    return _feature_shape(name, features, in_channels, input_size).numel()


def _dense_head(width: int, num_classes: int) -> nn.Sequential:
    """AlexNet's and VGG's classifier: two 4096-wide hidden layers with dropout 0.5."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(width, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, num_classes),
    )


@register_model("mlp", input_size=28)
def mlp(num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> ClassicNet:
    """Two hidden layers of 512 on the flattened pixels: the baseline every CNN should beat."""
    features = nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * input_size * input_size, 512), nn.ReLU(),
        nn.Linear(512, 512), nn.ReLU(),
    )
    return ClassicNet(features, nn.Sequential(nn.Linear(512, num_classes)))


def _lenet(
    name: str, num_classes: int, in_channels: int, input_size: int, act: str, pool: str, batch_norm: bool
) -> ClassicNet:
    """LeNet-5 as d2l builds it, optionally with d2l's BatchNorm after every conv and hidden Linear."""
    act_layer, pool_layer = _choice(_ACTIVATIONS, act, "act"), _choice(_POOLS, pool, "pool")

    def conv_stage(c_in: int, c_out: int, padding: int) -> list[nn.Module]:
        norm = [nn.BatchNorm2d(c_out)] if batch_norm else []
        conv = nn.Conv2d(c_in, c_out, kernel_size=5, padding=padding)
        return [conv, *norm, act_layer(), pool_layer(kernel_size=2, stride=2)]

    def hidden(f_in: int, f_out: int) -> list[nn.Module]:
        norm = [nn.BatchNorm1d(f_out)] if batch_norm else []
        return [nn.Linear(f_in, f_out), *norm, act_layer()]

    # d2l pads LeNet's first conv (28 px stay 28) but not its BatchNorm LeNet's (16*4*4 in).
    features = nn.Sequential(*conv_stage(in_channels, 6, 0 if batch_norm else 2), *conv_stage(6, 16, 0))
    width = _flat_width(name, features, in_channels, input_size)
    head = nn.Sequential(nn.Flatten(), *hidden(width, 120), *hidden(120, 84), nn.Linear(84, num_classes))
    return ClassicNet(features, head)


# d2l line: the seed notes' run; d2l's book uses lr 0.9 and 10 epochs.
@register_model("lenet", input_size=28, d2l=d2l_line(lr=0.5, batch_size=256, epochs=20))
def lenet(
    num_classes: int = 10, in_channels: int = 1, input_size: int = 28, act: str = "sigmoid", pool: str = "avg"
) -> ClassicNet:
    """d2l's LeNet: sigmoid and average pooling as in 1998; act=relu, pool=max train faster."""
    return _lenet("lenet", num_classes, in_channels, input_size, act, pool, batch_norm=False)


@register_model("lenet_relu", input_size=28)
def lenet_relu(num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> ClassicNet:
    """LeNet with ReLU and max pooling: the same layers, trains in a fraction of the epochs.

    visionfit's default model (`visionfit train` with no flags).
    """
    return _lenet("lenet_relu", num_classes, in_channels, input_size, "relu", "max", batch_norm=False)


@register_model("lenet_bn", input_size=28, d2l=d2l_line(lr=1.0, batch_size=256, epochs=10))
def lenet_bn(
    num_classes: int = 10, in_channels: int = 1, input_size: int = 28, act: str = "sigmoid", pool: str = "max"
) -> ClassicNet:
    """d2l's LeNet with batch norm, which lets sigmoid LeNet train at lr 1.0 (max pooling, as in the seed notes)."""
    return _lenet("lenet_bn", num_classes, in_channels, input_size, act, pool, batch_norm=True)


@register_model("alexnet_d2l", input_size=224, d2l=d2l_line(lr=0.01, batch_size=128, epochs=10))
def alexnet_d2l(num_classes: int = 10, in_channels: int = 1, input_size: int = 224) -> ClassicNet:
    """d2l's AlexNet for Fashion-MNIST resized to 224: 5 convs, then 4096-wide dropout layers."""
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    return ClassicNet(features, _dense_head(_flat_width("alexnet_d2l", features, in_channels, input_size), num_classes))


_VGG11_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))  # (convs, channels) per block


def _vgg_block(num_convs: int, c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convs that keep the resolution, then a 2x2 max pool that halves it."""
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel_size=3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2))


@register_model("vgg11_d2l", input_size=224, d2l=d2l_line(lr=0.05, batch_size=128, epochs=10, ratio=4))
def vgg11_d2l(num_classes: int = 10, in_channels: int = 1, input_size: int = 224, ratio: int = 1) -> ClassicNet:
    """d2l's VGG-11; ratio divides every conv's channels (d2l trains ratio=4 to fit its GPU budget)."""
    if not (isinstance(ratio, int) and 1 <= ratio <= 64):
        raise ModelError(f"vgg11_d2l ratio must be a whole number from 1 to 64, not {ratio!r} (--model-args ratio=4)")
    blocks, c_in = [], in_channels
    for num_convs, channels in _VGG11_ARCH:
        blocks.append(_vgg_block(num_convs, c_in, channels // ratio))
        c_in = channels // ratio
    features = nn.Sequential(*blocks)
    return ClassicNet(features, _dense_head(_flat_width("vgg11_d2l", features, in_channels, input_size), num_classes))


def _nin_block(c_in: int, c_out: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    """One spatial conv, then two 1x1 convs: a small MLP at every pixel."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, stride, padding), nn.ReLU(),
        nn.Conv2d(c_out, c_out, kernel_size=1), nn.ReLU(),
        nn.Conv2d(c_out, c_out, kernel_size=1), nn.ReLU(),
    )


def _nin_classifier(num_classes: int) -> nn.Sequential:
    # d2l keeps the ReLU on the class maps (scores >= 0); kept so results match the book.
    class_maps = _nin_block(384, num_classes, kernel_size=3, stride=1, padding=1)
    return nn.Sequential(class_maps, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class NiN(ClassicNet):
    """NiN has no Linear: its last NiN block makes one map per class, averaged to a score."""

    def get_classifier(self) -> nn.Module:
        return self.head[0]

    def reset_classifier(self, num_classes: int) -> None:
        self.head = _nin_classifier(num_classes)


@register_model("nin", input_size=224, d2l=d2l_line(lr=0.1, batch_size=128, epochs=10))
def nin(num_classes: int = 10, in_channels: int = 1, input_size: int = 224) -> NiN:
    """d2l's Network in Network: AlexNet-like stages of NiN blocks, global average pooling, no dense layers."""
    features = nn.Sequential(
        _nin_block(in_channels, 96, kernel_size=11, stride=4, padding=0),
        nn.MaxPool2d(kernel_size=3, stride=2),
        _nin_block(96, 256, kernel_size=5, stride=1, padding=2),
        nn.MaxPool2d(kernel_size=3, stride=2),
        _nin_block(256, 384, kernel_size=3, stride=1, padding=1),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Dropout(p=0.5),
    )
    _feature_shape("nin", features, in_channels, input_size)  # fail now, not mid-training, on a too-small size
    return NiN(features, _nin_classifier(num_classes))
