"""Guard rails for small data: what a run says when it is unlikely to learn, and when it did not.

    warning = few_steps_warning(steps_per_epoch, train_images, config, world_size)   # at the start
    warning = chance_warning(history, val_labels, num_classes, config, steps_per_epoch, recipe)  # at the end

A user training 480 images at batch 128 gets 4 optimizer steps an epoch and a model that
has barely moved; one whose validation accuracy ends where guessing would put it deserves to
hear that, and the usual reasons, rather than a table of numbers.
"""
import math

import torch

MIN_STEPS_PER_EPOCH = 20  # below this an epoch is a handful of updates: epochs-based schedules barely move
MIN_TOTAL_STEPS = 300  # fewer steps in the whole run rarely get a net from scratch past guessing
CHANCE_NOISE_SIGMAS = 3  # "at chance": within this many standard deviations of a guesser's accuracy


def steps_in_epoch(train_images: int, batch_size: int, accumulate: int = 1, world_size: int = 1) -> int:
    """Optimizer steps per epoch, counted as the loaders and the trainer count them."""
    batches = math.ceil(math.ceil(train_images / world_size) / batch_size)
    return math.ceil(batches / accumulate)


def few_steps_warning(steps_per_epoch: int, train_images: int, config, world_size: int = 1) -> str | None:
    """'4 steps per epoch: ...; try --batch-size 16 (30 steps) or --epochs 50', or None when there are enough."""
    if steps_per_epoch >= MIN_STEPS_PER_EPOCH:
        return None
    t, batch = config.train, config.data.batch_size
    tries = []
    smaller = _batch_for_steps(train_images, t.accumulate, world_size)
    if smaller < batch:
        tries.append(f"--batch-size {smaller} ({steps_in_epoch(train_images, smaller, t.accumulate, world_size)} steps)")
    epochs = math.ceil(t.epochs * MIN_STEPS_PER_EPOCH / steps_per_epoch)
    tries.append(f"--epochs {epochs} (the steps of {MIN_STEPS_PER_EPOCH} an epoch)")
    return (f"only {steps_per_epoch} optimizer step{'s' if steps_per_epoch > 1 else ''} per epoch "
            f"({train_images:,} training images, batch {batch}{_accumulated(t.accumulate, world_size)}): too few to "
            f"learn much in {t.epochs} epoch{'s' if t.epochs > 1 else ''}; try {' or '.join(tries)}")


def _batch_for_steps(train_images: int, accumulate: int, world_size: int) -> int:
    """The largest power-of-two batch that gives at least MIN_STEPS_PER_EPOCH steps (1 at least)."""
    batch = 1
    while steps_in_epoch(train_images, batch * 2, accumulate, world_size) >= MIN_STEPS_PER_EPOCH:
        batch *= 2
    return batch


def _accumulated(accumulate: int, world_size: int) -> str:
    parts = ([f"{accumulate} batches a step"] if accumulate > 1 else []) + (
        [f"{world_size} processes"] if world_size > 1 else [])
    return f", {', '.join(parts)}" if parts else ""


def chance_level(val_labels: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """(what guessing scores: the larger of 1/classes and the majority class's share, its noise:
    one standard deviation of a guesser's accuracy on this many images)."""
    counts = torch.bincount(val_labels.long().flatten(), minlength=num_classes)
    chance = max(1 / num_classes, counts.max().item() / max(1, len(val_labels)))
    return chance, math.sqrt(chance * (1 - chance) / max(1, len(val_labels)))


def chance_warning(history: list[dict], val_labels: torch.Tensor | None, num_classes: int, config,
                   steps_per_epoch: int, recipe=None) -> str | None:
    """'validation accuracy stayed at chance (11.2%, guessing gives 10.0%); likely causes: ...', or None."""
    accuracies = [row["val_acc"] for row in history if row.get("val_acc") is not None]
    if not accuracies or val_labels is None or not len(val_labels):
        return None
    best = max(accuracies)
    chance, noise = chance_level(val_labels, num_classes)
    if not best <= chance + CHANCE_NOISE_SIGMAS * noise:  # not: nan counts as at chance
        return None
    causes = likely_causes(config, steps_per_epoch * len(history), recipe)
    return (f"validation accuracy stayed at chance: best {best:.1%}, where guessing gives {chance:.1%} "
            f"(+/- {noise:.1%} on {len(val_labels):,} images). Likely causes: {'; '.join(causes)}")


def likely_causes(config, total_steps: int, recipe=None) -> list[str]:
    """The reasons a run stays at chance, those this run's settings point to first."""
    t, m = config.train, config.model
    causes = []
    if _sigmoid_lenet(m) and _yours(recipe, ("lr", "optimizer", "init", "batch_size", "momentum")):
        causes.append("sigmoid LeNet trains only with its d2l recipe (SGD lr 0.5, batch 256, Xavier, 20 epochs): "
                      "drop your --lr/--optimizer/--init/--batch-size or add --recipe d2l")
    if total_steps < MIN_TOTAL_STEPS:
        causes.append(f"too few steps ({total_steps} in all): more --epochs or a smaller --batch-size")
    if m.freeze == "backbone":
        causes.append("frozen features that do not fit this data" + (
            "" if m.pretrained or m.weights else " (the frozen backbone is random: add --pretrained)")
            + ": try --recipe finetune or --unfreeze-after 1")
    causes.append(f"the learning rate ({t.optimizer} at {t.lr:g}): too high and the net settles on one class, too "
                  f"low and it never leaves its start; try 10x either way")
    causes.append("labels that do not follow the images: look at them with `visionfit show-data`")
    return causes


def _sigmoid_lenet(model_cfg) -> bool:
    return model_cfg.model in ("lenet", "lenet_bn") and model_cfg.model_args.get("act", "sigmoid") == "sigmoid"


def _yours(recipe, fields) -> bool:
    """Whether the user set any of `fields` (or the recipe in use is not the net's d2l one)."""
    if recipe is None:
        return True
    return any(recipe.sources.get(name) == "your setting" for name in fields) or not recipe.name.startswith("d2l")
