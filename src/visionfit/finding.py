"""`visionfit.lr_find`: the LR range test on the data and model a training run would use.

    found = visionfit.lr_find("lenet_relu", "mnist/", optimizer="sgd", batch_size=128)
    found.suggestion, found.method       # e.g. 0.0331, "valley"
    found.lrs, found.losses              # the curve (smoothed loss per step)
    found.plot                           # runs/lr_find/lr_find.png (beside lr_find.csv)

The data and the model are resolved exactly as `fit` resolves them (the same options), the
sweep runs with the run's optimizer, loss and augmentation, and the model is left as it was:
`visionfit train --lr auto` does the same inside a training run and then trains at the
suggestion.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .config import Config
from .errors import ConfigError
from .fitting import DEFAULT_MODEL, architecture_name, prepare_run
from .resolve import resolve_recipe
from .train.lr_finder import END_LR, MAX_STEPS, METHODS, START_LR, SweepSettings
from .train.lr_run import find_run_lr
from .train.run_dir import check_project, create_run_dir
from .train.session import start_session, writing

DEFAULT_FOLDER = "lr_find"  # runs/lr_find, lr_find2, ... unless --name says otherwise


@dataclass
class LRFindResult:
    lrs: list[float]  # the head's lr at each step of the sweep
    losses: list[float]  # the smoothed training loss after each step
    suggestion: float  # the suggested lr (by `method`)
    method: str  # "valley" (the default) or "steep"
    suggestions: dict[str, float]  # every method's lr
    run_dir: Path  # where lr_find.png and lr_find.csv are
    plot: Path | None

    def format(self) -> str:
        """The line the CLI prints: the suggestion first, so `| head -1` or a script can read it."""
        others = ", ".join(f"{name} {lr:.3g}" for name, lr in self.suggestions.items() if name != self.method)
        return f"suggested lr: {self.suggestion:.3g} ({self.method}; {others}); plot: {self.plot}"


def lr_find(model: str | nn.Module | None = None, data=None, *, start_lr: float = START_LR, end_lr: float = END_LR,
            steps: int | None = None, suggest: str = "valley", **options) -> LRFindResult:
    """Sweep the lr from `start_lr` to `end_lr` over `steps` optimizer steps (fewer when the
    loss diverges) on `model` (a name or an nn.Module, left as it was) and `data`, as `fit`
    takes them; options are fit's (optimizer, batch_size, image_size, ...; `lr` is ignored).
    Writes lr_find.png and lr_find.csv into a new folder under `project` (runs/lr_find, ...).
    """
    settings = _settings(start_lr, end_lr, steps, suggest)
    module = model if isinstance(model, nn.Module) else None
    options.pop("lr", None)  # the sweep sets the lr
    config = Config.from_options(model=architecture_name(model or DEFAULT_MODEL), data=data, **options)
    config, recipe = resolve_recipe(config)  # the model's recipe fills what the options leave unset, as in fit()
    dist, device = start_session(config)
    check_project(config.run.project, data_folders=(config.data.data, config.data.val_data))
    parts = prepare_run(config, module, dist, recipe)
    run_dir = create_run_dir(Path(config.run.project), config.run.name or DEFAULT_FOLDER, dist)
    with writing(run_dir, dist):
        print(f"lr finder: {config.model.model}, {config.train.optimizer}, batch {config.data.batch_size}, "
              f"folder {run_dir}", file=sys.stderr)
        found = find_run_lr(parts.net, parts.prepared, config, device, dist, run_dir, settings)
    sweep = found.sweep
    return LRFindResult(sweep.lrs, sweep.losses, found.lr, sweep.method, dict(sweep.suggestions), run_dir, found.plot)


def _settings(start_lr: float, end_lr: float, steps: int | None, suggest: str) -> SweepSettings:
    """The sweep's range and length, checked (the CLI's --start-lr, --end-lr, --steps, --suggest)."""
    if not 0 < start_lr < end_lr <= 100:
        raise ConfigError(f"--start-lr {start_lr:g} and --end-lr {end_lr:g}: need 0 < start < end <= 100 "
                          f"(e.g. {START_LR:g} and {END_LR:g})")
    if steps is not None and not 10 <= steps <= 10_000:
        raise ConfigError(f"--steps {steps} must be between 10 and 10000 (e.g. {MAX_STEPS})")
    if suggest not in METHODS:
        raise ConfigError(f"--suggest {suggest} is not one of {', '.join(METHODS)}")
    return SweepSettings(start_lr, end_lr, steps, suggest)
