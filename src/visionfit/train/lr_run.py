"""The LR range test on a prepared run: the net, loader, optimizer and loss the run itself
trains with, and the plot and table it leaves in the run folder.

    finding = find_run_lr(net, prepared, config, device, dist, run_dir)   # lr_find.png, lr_find.csv
    config = config.replace(lr=finding.lr)                                # what `--lr auto` trains with

Used by `visionfit lr-find` (finding.py) and by `visionfit train --lr auto` (fitting.py).
"""
import contextlib
import csv
import dataclasses
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..data.prepare import PreparedData
from ..errors import ConfigError
from ..files import atomic_path, write_text_atomic
from ..models.transfer import freeze, optimizer_groups
from .distributed import Distributed
from .lr_finder import LRSweep, SweepSettings, lr_sweep, sweep_steps
from .optim import build_optimizer
from .session import make_loaders, training_task
from .trainer import amp_dtype

PLOT_FILE, TABLE_FILE = "lr_find.png", "lr_find.csv"
# Below this fall of the smoothed loss (3% of its start) the sweep saw no real learning: a net
# still on its initial plateau gives a flat, noisy curve whose "valley" is noise, and the run
# says so rather than trusting it quietly. LeNet on MNIST fell 0.7% in 100 steps (its
# suggestion trained to 98.4%) and 5% in 300 (98.8%): RESULTS.md.
WEAK_FALL = 0.03
AUTO = "auto"  # --lr auto: run the finder, then train with its suggestion


@dataclass
class LRFinding:
    """A sweep over a run's data, and where its picture and table went (None on other ranks)."""

    sweep: LRSweep
    plot: Path | None = None
    table: Path | None = None

    @property
    def lr(self) -> float:
        return self.sweep.suggestion

    def record(self) -> dict:
        """What config.yaml says about it (`resolved.lr_finder`)."""
        return {"lr": self.lr, "from": f"lr finder ({self.sweep.method})",
                "suggestions": dict(self.sweep.suggestions), "steps": len(self.sweep.lrs),
                "range": [self.sweep.lrs[0], self.sweep.lrs[-1]], "stopped": self.sweep.stopped,
                "loss_fell": round(self.sweep.fall, 4),
                "plot": str(self.plot) if self.plot else None}

    def note(self) -> str:
        """The run's note on where its lr came from (config.yaml's resolved notes, the start of the run)."""
        return f"lr {self.lr:.3g}: the LR finder's {self.sweep.method} suggestion (--lr auto; plot {self.plot})"

    def line(self) -> str:
        others = ", ".join(f"{name} {lr:.3g}" for name, lr in self.sweep.suggestions.items() if name != self.sweep.method)
        line = (f"lr finder: suggests lr {self.lr:.3g} ({self.sweep.method}; {others}) after {len(self.sweep.lrs)} steps "
                f"from {self.sweep.lrs[0]:.1e} to {self.sweep.lrs[-1]:.2g}; plot: {self.plot}")
        if self.sweep.fall < WEAK_FALL:
            line += (f"\nwarning: the smoothed loss fell only {self.sweep.fall:.0%} during the sweep, so the model "
                     f"hardly learned and the suggestion is a guess; look at the plot, and try a longer sweep "
                     f"(visionfit lr-find --steps {2 * len(self.sweep.lrs)}) or give --lr")
        return line


def find_run_lr(net: nn.Module, prepared: PreparedData, config: Config, device: torch.device, dist: Distributed,
                out_dir: Path, settings: SweepSettings = SweepSettings()) -> LRFinding:
    """Sweep the lr on the run's training data, then leave `net` as it was; rank 0 writes the
    plot and the table into `out_dir`, and every rank gets rank 0's suggestion."""
    if config.train.lr_backbone is not None:
        raise ConfigError("--lr-backbone is an absolute rate, which the LR finder cannot scale; "
                          "give --lr-backbone-mult instead (the backbone's lr as a multiple of --lr)")
    net = net.to(device)
    freeze(net, config.model.freeze)  # the sweep trains what the run trains (train_resolved freezes it again)
    # The sweep sets every group's lr; this only fixes their ratios (--lr-backbone-mult).
    train_cfg = dataclasses.replace(config.train, lr=settings.start_lr)
    optimizer = build_optimizer(optimizer_groups(net, train_cfg), train_cfg)
    loader = make_loaders(prepared, config, device, dist, channels_last=False)[0]
    if settings.steps is None:
        settings = dataclasses.replace(settings, steps=sweep_steps(len(loader)))
    task = training_task(config, prepared)
    dtype = amp_dtype(config.train.amp, device)
    sweep = lr_sweep(net, optimizer, loader, task.train_loss, settings, _amp_step(optimizer, device, dtype),
                     autocast=_autocast(device, dtype))
    if not sweep.suggestions:
        raise ConfigError(f"the LR finder's loss diverged after {len(sweep.lrs)} of {settings.steps} steps, too soon "
                          f"to suggest a rate; give --lr yourself, or check the data (is it normalised?)")
    sweep.suggestions = dist.broadcast_object(sweep.suggestions)  # every rank trains at rank 0's lr
    finding = LRFinding(sweep)
    if dist.is_main:
        finding.plot, finding.table = out_dir / PLOT_FILE, out_dir / TABLE_FILE
        write_table(finding.table, sweep)
        plot_sweep(finding.plot, sweep)
        print(finding.line(), file=sys.stderr)
    return finding


def with_found_lr(config: Config, finding: LRFinding) -> Config:
    """The run's config with the finder's lr in place of `auto` (what config.yaml and a resume read)."""
    return config.replace(lr=finding.lr)


def _amp_step(optimizer, device: torch.device, dtype):
    """backward and step as the trainer does them: a GradScaler for fp16 (a no-op otherwise)."""
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step(loss: torch.Tensor) -> None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


def _autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def write_table(path: Path, sweep: LRSweep) -> None:
    """lr_find.csv: step, lr, loss (that step's), smoothed_loss (what the suggestion reads)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    for step, (lr, loss, smooth) in enumerate(zip(sweep.lrs, sweep.raw_losses, sweep.losses), start=1):
        writer.writerow([step, f"{lr:.6g}", f"{loss:.6g}", f"{smooth:.6g}"])
    write_text_atomic(path, text.getvalue())


def plot_sweep(path: Path, sweep: LRSweep) -> None:
    """Smoothed loss against lr (log axis), the raw losses faint behind it, each suggestion marked
    and the one used named in the legend and the title."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.plot(sweep.lrs, sweep.raw_losses, color="0.75", linewidth=0.8, label="loss per step")
    ax.plot(sweep.lrs, sweep.losses, color="C0", linewidth=2, label="smoothed loss")
    for (name, lr), colour in zip(sweep.suggestions.items(), ("C3", "C2")):
        used = " (used)" if name == sweep.method else ""
        ax.axvline(lr, color=colour, linestyle="--" if used else ":", linewidth=1.2)
        ax.plot([lr], [_loss_at(sweep, lr)], "o", color=colour, markersize=8, label=f"{name}: {lr:.3g}{used}")
    ax.set_xscale("log")
    ax.set_ylim(*_loss_limits(sweep))
    ax.set_xlabel("learning rate (head group)")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test: suggested lr {sweep.suggestion:.3g} ({sweep.method})")
    ax.grid(alpha=0.3)
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _loss_at(sweep: LRSweep, lr: float) -> float:
    return sweep.losses[min(range(len(sweep.lrs)), key=lambda i: abs(sweep.lrs[i] - lr))]


def _loss_limits(sweep: LRSweep) -> tuple[float, float]:
    """From just below the lowest smoothed loss to a little above the first: the blow-up at the
    end would otherwise squash the part of the curve that matters."""
    finite = [v for v in sweep.losses if v == v and abs(v) != float("inf")]
    low, start = min(finite), finite[0]
    top = max(start, low) * 1.15
    return low - 0.05 * (top - low), top
