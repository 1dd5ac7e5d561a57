"""An exponential moving average (EMA) of the weights, validated beside the raw ones.

    ema = WeightAverage(net, decay=0.999)    # the plain module: not DDP- or compile-wrapped
    ema.update()                             # after every optimizer step (Trainer._optimizer_step)
    trainer.evaluate(val_loader, ema.module) # the averaged copy, in eval mode

timm's ModelEmaV3 does the averaging: one foreach lerp over the parameters and floating
buffers (BatchNorm statistics included) per optimizer step, cheap beside the step itself
(on a CPU it reads and writes every weight once more). Its warmup keeps short runs from
averaging in the random start: at optimizer step t the decay is min(decay, 1 - t^(-2/3)),
so the first step copies the weights, the decay passes 0.99 after 1,000 steps and 0.999
after 31,623. Under torchrun every process averages its own copy of the same weights (DDP
keeps them equal), so the copies stay equal and only rank 0 writes one.
"""
import torch
from torch import nn

from ..checkpoints import unwrap
from ..errors import ModelError

WARMUP_POWER = 2 / 3  # timm's default; see the module docstring for what it means in steps


def describe_ema(decay: float | None) -> str | None:
    """One line for the start of a run, or None without --ema."""
    if not decay:  # None or 0: off
        return None
    return (f"EMA of the weights: decay {decay:g} after warmup, validated beside the raw weights; the better "
            "becomes best.safetensors")


class WeightAverage:
    """The EMA of `source`'s weights, as a copy of `source` that `update` moves towards it."""

    def __init__(self, source: nn.Module, decay: float):
        from timm.utils.model_ema import ModelEmaV3  # timm takes seconds to import: only runs with --ema pay

        self.source = source  # the live module: DDP and torch.compile share its parameters
        self.average = ModelEmaV3(source, decay=decay, use_warmup=True, warmup_power=WARMUP_POWER)
        self.steps = 0  # optimizer steps averaged in, over the whole run (resumes included)

    @property
    def module(self) -> nn.Module:
        """The averaged model, shaped as `source` (in eval mode unless someone trains it)."""
        return self.average.module

    @property
    def decay(self) -> float:
        """The decay the last update used (0 before the second step)."""
        return self.average.get_decay(self.steps)

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        self.average.update(self.source, step=self.steps)

    def state_dict(self) -> dict:
        """For last.ckpt: the step count and the averaged weights of the plain model."""
        return {"steps": self.steps, "weights": unwrap(self.module).state_dict()}

    def load_state_dict(self, state: dict | None, source: str = "the resume state") -> None:
        if state is None:
            raise ModelError(f"{source} has no EMA weights although the run averages them (--ema); it was not written "
                             "by this run: start a new run")
        try:
            unwrap(self.module).load_state_dict(state["weights"])
        except RuntimeError as error:  # missing, extra or misshapen tensors
            raise ModelError(f"{source} has EMA weights that do not fit the model ({str(error)[:200]}); "
                             "start a new run") from error
        self.steps = state["steps"]
