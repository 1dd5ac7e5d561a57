"""Tiny user-style models for the `package.module:ClassName` route (imported by name in tests)."""
from torch import nn


class TinyNet(nn.Module):
    """Takes num_classes and in_channels, and says it was designed for 32 px."""

    input_size = 32

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class GreyOnly(nn.Module):
    """Takes no in_channels: fixed to grey images, as its class attribute says."""

    in_channels = 1

    def __init__(self, num_classes: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


class NoClasses(nn.Module):
    """Cannot be sized for the user's classes."""

    def __init__(self):
        super().__init__()


def tiny_factory(num_classes: int, in_channels: int = 3) -> nn.Module:
    return TinyNet(num_classes, in_channels)


def not_a_module(num_classes: int) -> str:
    return "not a model"


class TiedNet(nn.Module):
    """Its classifier shares the encoder's weight: a model file stores that tensor once."""

    def __init__(self, num_classes: int, in_channels: int = 1):
        super().__init__()
        self.encode = nn.Linear(in_channels * 28 * 28, num_classes)
        self.decode = nn.Linear(num_classes, in_channels * 28 * 28)
        self.classify = nn.Linear(in_channels * 28 * 28, num_classes)
        self.classify.weight = self.encode.weight

    def forward(self, x):
        return self.classify(self.decode(self.encode(x.flatten(1))))
