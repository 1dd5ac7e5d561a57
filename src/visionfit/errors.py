"""Errors a user can meet. The CLI prints them as one line and exits with code 2.

Each message names the flag, file or row at fault and says what to do about it.
"""


class VisionfitError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ConfigError(VisionfitError):
    """A flag or option has a value we cannot work with."""


class DataError(VisionfitError):
    """A dataset path, file, row or image is missing or unreadable."""


class ModelError(VisionfitError):
    """A model name, model file or weight file cannot be used."""


class OutputError(VisionfitError):
    """A file or folder cannot be written (full disk, read-only, no permission, in use by another run)."""


class TrainingDiverged(VisionfitError):
    """The loss or the weights stopped being finite numbers: the run diverged.

    The attributes say where, so a caller that knows the run folder can add what it kept:
    `what` ("training loss", "validation loss" or "weights"), `epoch` (1-based, as in
    metrics.csv), `step` (the batch, 1-based within the epoch; None outside training),
    `value` (the loss: nan, inf or -inf; None for weights) and `lr` (the head's lr then).
    """

    def __init__(self, what: str, epoch: int, lr: float, step: int | None = None, value: float | None = None):
        self.what, self.epoch, self.lr, self.step, self.value = what, epoch, lr, step, value
        became = "non-finite" if value is None else str(value)
        where = f"epoch {epoch}" if step is None else f"epoch {epoch}, step {step}"
        super().__init__(f"the {what} became {became} at {where} (lr {lr:.3g}): the run diverged; "
                         "try a 10x smaller --lr, or --warmup-epochs 1")

    def in_run(self, run_dir) -> "TrainingDiverged":
        """The same error, its message ending with what `run_dir` kept (nothing of this epoch is written)."""
        kept = (f"{run_dir} keeps the run up to epoch {self.epoch - 1} (last.ckpt, last.safetensors, best.safetensors)"
                if self.epoch > 1 else f"{run_dir} has no finished epoch")
        error = TrainingDiverged(self.what, self.epoch, self.lr, self.step, self.value)
        error.args = (f"{self}; {kept}",)
        return error
