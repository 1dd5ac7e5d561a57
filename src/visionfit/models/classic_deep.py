"""The deeper classic nets of d2l: GoogLeNet (Inception blocks) and ResNet-18 (Residual blocks).

Both end in global average pooling, so they take any input size; d2l trains them on
Fashion-MNIST resized to 96, their natural size here.
"""
import torch
from torch import nn
from torch.nn import functional as F

from .classic import ClassicNet
from .recipes import d2l_line
from .registry import register_model


def _pooled_head(width: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


class Inception(nn.Module):
    """Four parallel paths (1x1, 3x3, 5x5, pool) concatenated on channels, as d2l writes it.

    c2 and c3 are (1x1 reduction, output) channel pairs; output has c1 + c2[1] + c3[1] + c4 channels.
    """

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def _halving_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


@register_model("googlenet_d2l", input_size=96, d2l=d2l_line(lr=0.05, batch_size=128, epochs=10))
def googlenet_d2l(num_classes: int = 10, in_channels: int = 1, input_size: int = 96) -> ClassicNet:
    """d2l's GoogLeNet: a conv stem, nine Inception blocks in three stages, global pooling.

    input_size is unused by the layers (global pooling takes any size); it is kept so every
    classic net rebuilds from the same arguments.
    """
    features = nn.Sequential(
        nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(), _halving_pool()),
        nn.Sequential(
            nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
            nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(), _halving_pool(),
        ),
        nn.Sequential(
            Inception(192, 64, (96, 128), (16, 32), 32),
            Inception(256, 128, (128, 192), (32, 96), 64),
            _halving_pool(),
        ),
        nn.Sequential(
            Inception(480, 192, (96, 208), (16, 48), 64),
            Inception(512, 160, (112, 224), (24, 64), 64),
            Inception(512, 128, (128, 256), (24, 64), 64),
            Inception(512, 112, (144, 288), (32, 64), 64),
            Inception(528, 256, (160, 320), (32, 128), 128),
            _halving_pool(),
        ),
        nn.Sequential(
            Inception(832, 256, (160, 320), (32, 128), 128),
            Inception(832, 384, (192, 384), (48, 128), 128),
        ),
    )
    return ClassicNet(features, _pooled_head(1024, num_classes))


class Residual(nn.Module):
    """Two 3x3 conv + BN layers plus the input; a 1x1 conv matches shapes when they change."""

    def __init__(self, in_channels: int, out_channels: int, use_1x1conv: bool = False, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.conv3 is None else self.conv3(x)
        return F.relu(y + shortcut)


def _resnet_stage(in_channels: int, out_channels: int, num_residuals: int, first_stage: bool = False) -> nn.Sequential:
    """Residual blocks; every stage but the first halves the resolution and changes width in its first block."""
    blocks = [
        Residual(in_channels, out_channels, use_1x1conv=True, stride=2)
        if i == 0 and not first_stage
        else Residual(out_channels, out_channels)
        for i in range(num_residuals)
    ]
    return nn.Sequential(*blocks)


@register_model("resnet18_d2l", input_size=96, d2l=d2l_line(lr=0.05, batch_size=256, epochs=10))
def resnet18_d2l(num_classes: int = 10, in_channels: int = 1, input_size: int = 96) -> ClassicNet:
    """d2l's ResNet-18: a conv stem and four stages of two Residual blocks, 64 to 512 wide.

    input_size is unused by the layers (global pooling); kept so every classic net rebuilds alike.
    """
    stem = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
        _halving_pool(),
    )
    features = nn.Sequential(
        stem,
        _resnet_stage(64, 64, 2, first_stage=True),
        _resnet_stage(64, 128, 2),
        _resnet_stage(128, 256, 2),
        _resnet_stage(256, 512, 2),
    )
    return ClassicNet(features, _pooled_head(512, num_classes))
