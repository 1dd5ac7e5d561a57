"""`visionfit.compare`: train several nets on the same data, each with its own recipe, and tabulate them.

    result = visionfit.compare(["lenet_bn", "resnet18_d2l"], "mnist/", epochs=2, max_image_size=96)
    print(result.markdown)      # also in runs/compare/results.md, results.csv and results.png
    visionfit compare --data mnist/ --epochs 2 --max-image-size 96 --set vgg11_d2l.lr=0.02

By default each net trains with the recipe the d2l CNN chapters (seed notes 002) train it
with on Fashion-MNIST: plain SGD at a constant learning rate, Xavier init, no augmentation,
and the net's own learning rate, batch size, epochs and input size (resized up as d2l does).
Settings stack, later winning:

    d2l recipe  <  options for every net (epochs=2)  <  overrides for one net ({"vgg11_d2l": {"lr": 0.02}})

An override key is a config field (lr, batch_size, image_size, ...) or, failing that, an
argument of the net's factory (ratio for vgg11_d2l, act for lenet).
"""
import csv
import dataclasses
import io
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from torch import nn

from .config import SECTIONS, Config
from .data.samples import DatasetSplits
from .data.sources import resolve
from .data.validation import limit_per_class
from .errors import ConfigError, ModelError
from .fitting import fit
from .files import atomic_path, write_text_atomic
from .train.run_dir import check_project, create_numbered_dir
from .infer.summary import summary as model_summary
from .models import create_model, model_args_for_input, natural_input
from .models.recipes import d2l_nets, d2l_options

CLASSIC_CNNS = d2l_nets()  # the classic nets with a d2l recipe, beside their factories (models/recipes.py)

# Options that do not apply to a comparison, and what to use instead.
_REFUSED = {"model": "name the nets with models= (--models a,b,c)", "resume": "resume a single net's run with `visionfit train --resume`"}
_DATA_OPTIONS = ("images", "val_data", "val_split", "download_dir", "label_column", "image_column")  # consumed once, by the shared split
_CONFIG_FIELDS = {f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind)}
CSV_COLUMNS = ["model", "image_size", "batch_size", "lr", "epochs", "params", "macs", "best_val_acc", "best_epoch",
               "final_val_acc", "final_train_acc", "final_train_loss", "images_per_s", "seconds", "train_images",
               "val_images", "device", "run"]


@dataclass
class NetPlan:
    """One net of a comparison and the fit() options it will train with."""

    name: str
    options: dict


@dataclass
class CompareResult:
    out_dir: Path
    rows: list[dict]  # one per net, keys CSV_COLUMNS

    @property
    def markdown(self) -> str:
        return markdown_table(self.rows)


def compare(models: list[str] | str | None = None, data=None, *, overrides: dict | None = None,
            max_image_size: int | None = None, max_val_per_class: int | None = None, **options) -> CompareResult:
    """Train each of `models` (default: the seven d2l CNNs) on `data` and write a table and chart of
    parameters, MACs, best validation accuracy, images/s and seconds into runs/compare (numbered).

    options apply to every net (fit's options: epochs, max_per_class, device, project, name, ...);
    overrides to one ({"vgg11_d2l": {"lr": 0.02, "ratio": 8}}). max_image_size shrinks nets designed
    for bigger inputs (a CPU budget); max_val_per_class validates on a seeded slice of the val split.
    """
    models = models.split(",") if isinstance(models, str) else list(models or CLASSIC_CNNS)
    _check_options(options, max_image_size, max_val_per_class)
    project, name = Path(options.pop("project", "runs")), options.pop("name", None) or "compare"
    data_options = {key: options.pop(key) for key in _DATA_OPTIONS if key in options}
    plans = plan_runs(models, options, overrides or {}, max_image_size)
    check_project(project, data_folders=(data, data_options.get("val_data")))
    splits = shared_splits(data, data_options, options.get("seed", 0), max_val_per_class)

    out_dir = create_numbered_dir(project, name)
    _record(out_dir, plans, models=models, data=splits.name if isinstance(data, DatasetSplits) else data,
            options={**options, **data_options}, overrides=overrides or {}, max_image_size=max_image_size,
            max_val_per_class=max_val_per_class)
    rows = []
    for number, plan in enumerate(plans, start=1):
        # stdout, like the run summaries and epoch lines it heads: which net of how many
        print(f"compare: net {number} of {len(plans)}: {plan.name}", flush=True)
        rows.append(train_one(plan, splits, out_dir))
        write_results(out_dir, rows)  # after every net: a crash at net 6 keeps the first five
    return CompareResult(out_dir, rows)


def _check_options(options: dict, max_image_size: int | None, max_val_per_class: int | None) -> None:
    for key, instead in _REFUSED.items():
        if options.get(key) is not None:
            raise ConfigError(f"compare does not take {key}; {instead}")
    if max_image_size is not None and max_image_size < 8:
        raise ConfigError("--max-image-size must be at least 8 pixels")
    if max_val_per_class is not None and max_val_per_class < 1:
        raise ConfigError("--max-val-per-class must be at least 1")


def _record(out_dir: Path, plans: list[NetPlan], **called_with) -> None:
    """compare.yaml: the call, and each net's resolved options (what `visionfit train` would need to rerun it)."""
    if isinstance(called_with["data"], Path):
        called_with["data"] = str(called_with["data"])
    settings = {**called_with, "runs": {plan.name: plan.options for plan in plans}}
    write_text_atomic(out_dir / "compare.yaml", yaml.safe_dump(settings, sort_keys=False))


def plan_runs(models: list[str], options: dict, overrides: dict, max_image_size: int | None) -> list[NetPlan]:
    """Every net's settings, checked and built once before any training: a typo in the last
    net's name or a too-small input should cost seconds, not the hours of the nets before it.
    """
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise ConfigError(f"--models lists {', '.join(repeated)} more than once; each net trains once")
    strays = sorted(set(overrides) - set(models))
    if strays:
        raise ConfigError(f"--set names {', '.join(strays)}, which is not in --models ({', '.join(models)})")
    plans = []
    for name in models:
        natural_size = natural_input(name)[1]  # ModelError, with suggestions, for an unknown name
        settings = _layer(d2l_options(name), options, _as_options(overrides.get(name, {})))
        if settings.get("image_size") is None:
            settings["image_size"] = min(natural_size, max_image_size or natural_size)
        Config.from_options(model=name, **settings)  # ConfigError for a bad value, naming the flag
        _check_builds(name, settings)
        plans.append(NetPlan(name, settings))
    return plans


def _layer(*layers: dict) -> dict:
    """Later layers win, except model_args, which merge key by key (a recipe's ratio=4 stays
    when the user adds another argument)."""
    merged = {}
    for layer in layers:
        model_args = {**merged.get("model_args", {}), **layer.get("model_args", {})}
        merged.update(layer)
        if model_args:
            merged["model_args"] = model_args
    return merged


def _as_options(override: dict) -> dict:
    """{"lr": 0.02, "ratio": 8} -> {"lr": 0.02, "model_args": {"ratio": 8}}: config fields stay, the rest are model args."""
    options = {k: v for k, v in override.items() if k in _CONFIG_FIELDS}
    model_args = {k: v for k, v in override.items() if k not in _CONFIG_FIELDS}
    if model_args:
        options["model_args"] = {**options.get("model_args", {}), **model_args}
    return options


def _check_builds(name: str, settings: dict) -> None:
    """Build the net at its planned input size, as fit() will (classic nets size their head to it)."""
    args = model_args_for_input(name, settings["image_size"], settings.get("model_args", {}))
    try:
        create_model(name, **args)
    except ModelError as err:
        raise ModelError(f"{err} (in compare: --set {name}.image_size=N or --max-image-size N)") from err


def shared_splits(data, data_options: dict, seed: int, max_val_per_class: int | None) -> DatasetSplits:
    """The data resolved once, so every net trains and validates on exactly the same images."""
    splits = data if isinstance(data, DatasetSplits) else resolve(data, seed=seed, **data_options)
    if splits.val is None or not len(splits.val):
        raise ConfigError(f"{splits.name} has no validation images; compare ranks nets on them (drop --val-split 0)")
    if max_val_per_class:
        splits = dataclasses.replace(splits, val=limit_per_class(splits.val, max_val_per_class, seed))
    return splits


def train_one(plan: NetPlan, splits: DatasetSplits, out_dir: Path) -> dict:
    """fit() one net into out_dir/<net>, then tabulate what ran, from fit's result alone."""
    started = time.perf_counter()
    result = fit(plan.name, splits, project=str(out_dir), name=plan.name, **plan.options)
    seconds = time.perf_counter() - started
    resolved, last = result.resolved, result.history[-1]
    spec, config = resolved.model, resolved.config
    net = spec.build()
    size = resolved.preset.size
    return {
        "model": plan.name, "image_size": size, "batch_size": config.data.batch_size,
        "lr": config.train.lr, "epochs": len(result.history), "params": count_params(net),
        "macs": model_summary(net, input_size=(1, spec.in_channels, size, size)).total_macs,
        "best_val_acc": max(row["val_acc"] for row in result.history), "best_epoch": result.best_epoch,
        "final_val_acc": last["val_acc"], "final_train_acc": last["acc"], "final_train_loss": last["loss"],
        "images_per_s": train_images_per_s(result.history), "seconds": round(seconds, 1),
        "train_images": result.train_images, "val_images": result.val_images, "device": result.device,
        "run": result.run_dir.name,
    }


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_images_per_s(history: list[dict]) -> float:
    """Training images over training seconds, all epochs together (d2l's 'examples/sec')."""
    images = sum(row["images_per_s"] * row["seconds"] for row in history)
    return images / sum(row["seconds"] for row in history)


def write_results(out_dir: Path, rows: list[dict]) -> None:
    """results.csv (every number, raw), results.md (the readable table), results.png (the chart)."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out_dir / "results.csv", table.getvalue())
    write_text_atomic(out_dir / "results.md", markdown_table(rows))
    plot_results(rows, out_dir / "results.png")


def markdown_table(rows: list[dict]) -> str:
    lines = ["| model | input px | batch | lr | epochs | params | MACs / image | best val acc (epoch) | train images/s | seconds |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['image_size']} | {r['batch_size']} | {r['lr']:g} | {r['epochs']} | "
            f"{_si(r['params'])} | {_si(r['macs'])} | {r['best_val_acc']:.2%} ({r['best_epoch']}) | "
            f"{r['images_per_s']:,.0f} | {r['seconds']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def _si(count: float) -> str:
    """61706 -> '61.7 k', 1.43e9 -> '1.43 G': three significant figures."""
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= factor:
            return f"{count / factor:.3g} {unit}"
    return str(count)


def plot_results(rows: list[dict], path: Path) -> None:
    """Two bar panels, one bar per net in run order: best val accuracy, and training throughput
    on a log axis (LeNet and VGG differ by a hundredfold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']} ({r['image_size']} px)" for r in rows][::-1]
    accs = [100 * r["best_val_acc"] for r in rows][::-1]
    speeds = [r["images_per_s"] for r in rows][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 1.2 + 0.55 * len(rows)), sharey=True)
    left.barh(labels, accs, color="tab:blue")
    left.set(xlim=(0, 112), xlabel="best validation accuracy (%)")
    right.barh(labels, speeds, color="tab:orange")
    right.set(xscale="log", xlim=(min(speeds) / 2, max(speeds) * 8), xlabel="training images / s (log scale)")
    for axis, values, text in ((left, accs, "{:.1f}%"), (right, speeds, "{:,.0f}")):
        for y, value in enumerate(values):
            axis.annotate(text.format(value), (value, y), xytext=(4, 0), textcoords="offset points", va="center")
        axis.grid(axis="x", alpha=0.3)
    r = rows[0]
    fig.suptitle(f"{r['train_images']:,} training / {r['val_images']:,} validation images, {r['device']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
