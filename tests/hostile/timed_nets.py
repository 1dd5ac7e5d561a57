"""Models for the kill tests, named on the command line as tests.hostile.timed_nets:<Class>.

SlowNet makes each training step take a while, so a test can kill a run mid-epoch; KillOnce
kills its own process once (rank 1, second epoch), as a crashed torchrun worker would die.
"""
import os
import signal
import time
from pathlib import Path

from torch import nn

STEP_SECONDS = 0.05


class SlowNet(nn.Module):
    def __init__(self, num_classes: int = 3, in_channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                 nn.Linear(16, num_classes))

    def forward(self, x):
        if self.training:
            time.sleep(STEP_SECONDS)
        return self.net(x)


class KillOnce(SlowNet):
    """Rank 1 kills itself at its 9th training step (epoch 2 of 6-step epochs), unless $VF_KILLED_MARKER says it did already."""

    def __init__(self, num_classes: int = 3, in_channels: int = 1):
        super().__init__(num_classes, in_channels)
        self.steps = 0

    def forward(self, x):
        if self.training and os.environ.get("RANK") == "1":
            self.steps += 1
            marker = Path(os.environ["VF_KILLED_MARKER"])
            if self.steps == 9 and not marker.exists():
                marker.write_text("killed")
                os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)
