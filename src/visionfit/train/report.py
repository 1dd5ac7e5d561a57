"""What a run says on stdout: what it settled on when it starts, what it reached when it ends.

    print(run_summary(resolved, prepared, net, device, channels_last, caching))   # one block
    ... one line per epoch (callbacks.ProgressPrinter) ...
    print(result_lines(result))                                                  # best epoch, test, files

Both go to stdout, like the epoch lines between them: together they are the run's record, so
`visionfit train ... > log.txt` keeps it. Bars, warnings and hints go to stderr (progress.py).
config.yaml holds everything; this is the part a person reads.
"""
import numpy as np
import torch
from torch import nn

from ..data.augment import describe as describe_augmentation
from ..data.loader import colour_on_device_by_default
from ..data.prepare import default_workers
from ..data.store import LazyImages
from ..infer.summary import human, summary
from ..resolve import FROZEN_BACKBONE_DEFAULT, Resolved
from .callbacks import monitored_key
from .ema import describe_ema
from .features import uncached_cost
from .mixing import describe_mixing
from .trainer import amp_dtype

CLASSES_LISTED = 10  # up to this many classes are listed one by one; more are summarised
# The frozen backbone's default views (resolve.py) and how their features are cached: (caching, random ops) -> words.
FROZEN_VIEWS = {("fixed", ()): ("none", "features cached"),
                ("mirrored", ("flip",)): ("flip only", "features of each image and its mirror cached")}
PRECISION_NAMES = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + loss scaling", None: "fp32"}


def run_summary(resolved: Resolved, prepared, net: nn.Module, device: torch.device, channels_last: bool,
                caching: str | None, frozen: list[str] = (), threads: str | None = None,
                layout_note: str | None = None) -> str:
    """The run's resolved settings as one block: data, classes, input, model, device, recipe, folder.
    `threads`: how the process shares its cores with DataLoader workers, when it gave some up;
    `layout_note`: why channels_last is on or off, when a CPU run timed it."""
    config, spec = resolved.config, resolved.model
    val, test = (len(store) if store is not None else 0 for store in (prepared.val, prepared.test))
    weights = f", starting from {spec.weights}" if spec.weights else ""
    frozen_parts = f" (frozen: {', '.join(frozen)})" if frozen else ""
    lines = [
        f"run folder: {resolved.run_dir}",
        f"  data:    {resolved.dataset}: {len(resolved.class_names)} classes, {len(prepared.train):,} training, "
        f"{val:,} validation{f', {test:,} test' if test else ''} images",
        f"  classes: {class_counts(resolved.class_names, prepared.train.labels)}",
        f"  input:   {resolved.preset.size}x{resolved.preset.size}, {resolved.preset.preprocess.summary()}",
        f"           {training_storage(resolved, prepared, device)}",
        *(f"           {note}" for note in resolved.notes),
        f"  augment: {augmentation_text(resolved, prepared, caching, device)}",
        f"  model:   {spec.architecture}{weights}; {parameter_counts(net)}{frozen_parts}{model_macs(resolved)}",
        f"  device:  {device}, {PRECISION_NAMES[amp_dtype(config.train.amp, device)]}, "
        f"channels_last {'on' if channels_last else 'off'}{f' ({layout_note})' if layout_note else ''}"
        f"{f', {threads}' if threads else ''}",
        f"  recipe:  {recipe_line(resolved)}",
        *(f"           {line}" for line in (describe_mixing(config.train), describe_ema(config.train.ema)) if line),
    ]
    return "\n".join(lines)


def class_counts(class_names, labels: torch.Tensor) -> str:
    """'ants 123, bees 121', or for many classes 'min 40 (cat), median 80, max 120 (dog)'."""
    counts = images_per_class(labels, len(class_names))
    if len(class_names) <= CLASSES_LISTED:
        return ", ".join(f"{name} {count:,}" for name, count in zip(class_names, counts))
    low, high = int(counts.argmin()), int(counts.argmax())
    return (f"training images per class: min {counts[low]:,} ({class_names[low]}), median {int(np.median(counts)):,}, "
            f"max {counts[high]:,} ({class_names[high]})")


def images_per_class(labels, classes: int) -> np.ndarray:
    """Images of each class: label counts, or for multi-label (N x K 0/1) the images tagged with each."""
    labels = np.asarray(labels)
    return labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=classes)


def parameter_counts(net: nn.Module) -> str:
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    return f"{trainable:,} of {total:,} parameters trainable"


def model_macs(resolved: Resolved) -> str:
    """', 0.40 GMACs per image' (infer/summary.py's count) from a skeleton of the architecture,
    never the net being trained: a forward pass of that one would be a side effect (a stateful
    module counts its calls). '' for a module of the user's own code, or one that cannot be traced."""
    spec, preset = resolved.model, resolved.preset
    if ":" in spec.architecture.removeprefix("timm:"):
        return ""  # package.module:Class: building another instance would run its code again
    try:
        macs = summary(_skeleton(spec), input_size=(1, preset.channels, preset.size, preset.size)).total_macs
    except Exception:  # the count is only information; the run does not depend on it
        return ""
    return f", {human(macs)}MACs per image"


def _skeleton(spec) -> nn.Module:
    """The architecture on the meta device (no memory, no time), else on the CPU for the few
    that read their own tensors while being built (timm's drop-path schedules)."""
    try:
        with torch.device("meta"):
            return spec.build()
    except Exception:  # any failure here means: not buildable on the meta device
        return spec.build()


def training_storage(resolved: Resolved, prepared, device: torch.device = torch.device("cpu")) -> str:
    """'training images stored at 258x258 (presize); random resized crop + flip on the device':
    how the training images are kept, and where their augmentation runs (data/loader.py's two paths)."""
    plan, preset, train = resolved.plan, resolved.preset, prepared.train
    kept = "decoded from disk each epoch" if isinstance(train.images, LazyImages) else "stored"
    if plan.small:
        kept += f" at {plan.store_shape[0]}x{plan.store_shape[1]}"
    elif plan.trains_on_eval_view:
        kept += f" as their eval view ({plan.size}x{plan.size})"
    elif plan.presize:
        kept += f" at {plan.presize}x{plan.presize} (presize)"
    else:
        kept += f" whole, the shorter side at most {plan.store_side} px"
    if train.from_disk_cache:
        kept += ", read from the disk cache"
    ops = preset.random_ops()
    if not ops:
        return f"training images {kept}; no random augmentation"
    workers = default_workers(resolved.config.data.workers)
    batched = train.uniform and (not preset.per_sample_ops or colour_on_device_by_default(device, workers))
    return f"training images {kept}; {' + '.join(ops)} {'on the device' if batched else 'per image in DataLoader workers'}"


def augmentation_text(resolved: Resolved, prepared, caching: str | None = None,
                      device: torch.device = torch.device("cpu")) -> str:
    """'medium: pad 3 + random crop, TrivialAugmentWide, erasing p 0.1', and when an op only runs
    image by image on images that could go batched, and the device is no GPU (where it runs on the
    device batch), that training takes the slower path; with a frozen backbone, whether its
    features are cached, or what training on images costs."""
    preset = resolved.preset
    if frozen_backbone_default(resolved) and (caching, preset.random_ops()) in FROZEN_VIEWS:
        seen, cached = FROZEN_VIEWS[caching, preset.random_ops()]
        return f"{seen} (frozen backbone: {cached}; --augment light to train on random crops instead)"
    text = f"{resolved.plan.augment}: {describe_augmentation(preset)}"
    workers = default_workers(resolved.config.data.workers)
    if preset.per_sample_ops and prepared.train.uniform and not colour_on_device_by_default(device, workers):
        text += (f"; per image in {workers} DataLoader worker{'s' if workers != 1 else ''} (TrivialAugment, "
                 "RandAugment and colour jitter run on the device batch on a GPU, or where workers would "
                 "leave the model one core)")
    cost = uncached_cost(resolved.config, preset)
    return text + _caching_text(caching) + (f"; {cost}" if cost else "")


def frozen_backbone_default(resolved: Resolved) -> bool:
    """Whether the training view is the frozen backbone's cacheable default (resolve.py), not one asked for."""
    recipe = resolved.recipe
    return recipe is not None and recipe.sources.get("pad", "").startswith(FROZEN_BACKBONE_DEFAULT)


def recipe_line(resolved: Resolved) -> str:
    """'d2l (lenet's own): sgd lr 0.5 ..., init xavier; yours: --epochs': the recipe, its values, what the user set."""
    config, recipe = resolved.config, resolved.recipe
    values = f"{recipe_text(config.train, config.data.batch_size)}, init {config.model.init}"
    if recipe is None:
        return values
    yours = [name for name, why in recipe.sources.items() if why == "your setting"]
    overridden = f"; yours: {', '.join('--' + n.replace('_', '-') for n in yours)}" if yours else ""
    return f"{recipe.name}: {values}{overridden}"


def recipe_text(train_cfg, batch_size: int) -> str:
    """'sgd lr 0.05 momentum 0.9 weight decay 0, cosine schedule, 10 epochs of batch 128'."""
    t = train_cfg
    optimizer = f"{t.optimizer} lr {t.lr:g}"
    if t.optimizer in ("sgd", "rmsprop"):
        optimizer += f" momentum {t.momentum:g}{' nesterov' if t.nesterov and t.optimizer == 'sgd' else ''}"
    optimizer += f" weight decay {t.weight_decay:g}"
    schedule = f"{t.scheduler} schedule" + (f" (step {t.step_size}, gamma {t.gamma:g})" if t.scheduler == "step" else "")
    extras = [f"warmup {t.warmup_epochs:g} epochs" if t.warmup_epochs else "",
              f"label smoothing {t.label_smoothing:g}" if t.label_smoothing else "",
              f"accumulate {t.accumulate}" if t.accumulate > 1 else "", f"seed {t.seed}"]
    return ", ".join([optimizer, schedule, f"{t.epochs} epochs of batch {batch_size}", *filter(None, extras)])


def _caching_text(caching: str | None) -> str:
    if caching == "mirrored":
        return "; the head trains on cached backbone features of each image and its mirror"
    if caching == "fixed":
        return "; the head trains on cached backbone features"
    return ""


def result_lines(result) -> str:
    """The end of a run: best epoch and score, the test split's result, where the files are."""
    best = next((row for row in result.history if row["epoch"] == result.best_epoch), result.history[-1])
    monitor = result.resolved.config.train.monitor if result.resolved is not None else "val_acc"
    shown = [monitored_key(best, monitor)] + [key for key in ("val_acc", "val_loss") if key in best]
    values = ", ".join(f"{key} {best[key]:.4f}" if key.endswith(("loss", "f1")) else f"{key} {best[key]:.2%}"
                       for key in dict.fromkeys(shown))
    lines = [f"best epoch {result.best_epoch}: {values}; "
             f"{len(result.history)} epochs in {result.seconds:.1f} s on {result.device}"]
    if result.test is not None:
        extra = f", mAP {result.test['map']:.4f}" if "map" in result.test else ""  # multi-label: acc is exact match
        lines.append(f"test (best model): acc {result.test['acc']:.2%}, loss {result.test['loss']:.4f}{extra}")
    lines.append(f"files: {result.run_dir} (best.safetensors, last.safetensors, metrics.csv, curves.png, config.yaml)")
    return "\n".join(lines)
