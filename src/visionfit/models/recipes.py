"""Training recipes: what a run trains with where the user does not say (timm's default_cfgs idea).

    own_recipe("lenet")                          # d2l's: SGD lr 0.5, batch 256, 20 epochs, Xavier, no augmentation
    named_recipe("finetune", "resnet18")         # fastai's fine_tune
    RECIPE_DEFAULTS                              # what applies where no recipe speaks

A classic net carries its line of the d2l chapters beside its factory
(`@register_model("lenet", 28, d2l=d2l_line(lr=0.5, batch_size=256, epochs=20))`); every
other net (torchvision, timm, your own) trains with RECIPE_DEFAULTS. resolve.py lays them
out: the user's flags > --recipe NAME > the model's own recipe > RECIPE_DEFAULTS. One thing
comes after them: a backbone that stays frozen drops the random crop unless the user or the
--recipe asked for augmentation (its features are then computed once; resolve.py).
"""
from dataclasses import dataclass, field

from ..errors import ConfigError
from .registry import MODELS


@dataclass(frozen=True)
class Recipe:
    """A named set of config values and the one line that says where they come from."""

    name: str
    why: str
    values: dict = field(default_factory=dict)  # config field -> value


# The fields a recipe may set: each defaults to None in config.py, meaning "the recipe's".
RECIPE_FIELDS = ("optimizer", "lr", "momentum", "weight_decay", "scheduler", "warmup_epochs", "label_smoothing",
                 "epochs", "batch_size", "init", "augment", "flip", "pad", "freeze", "unfreeze_after",
                 "lr_backbone_mult", "mixup", "cutmix", "ema")

# Under every recipe, and the whole recipe of torchvision, timm and custom nets: timm's train.py
# baseline (SGD, momentum 0.9, lr 0.1 per 256 images, i.e. 0.05 at batch 128, cosine decay),
# which trains any net from scratch or from pretrained weights without tuning, and "light"
# augmentation (random crop, flip for photos), which never hurts. flip and pad stay unset:
# the data decides them (photos flip, small images pad by a eighth of their side).
RECIPE_DEFAULTS = Recipe("default", "visionfit's default: timm's train.py baseline (SGD momentum 0.9, "
                         "lr 0.05 at batch 128, cosine), light augmentation", dict(
                             optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.0, scheduler="cosine",
                             warmup_epochs=0.0, label_smoothing=0.0, epochs=10, batch_size=128, init="default",
                             augment="light", freeze="none", mixup=0.0, cutmix=0.0))

# What every d2l chapter-6/7 run shares: d2l.train_ch6 is plain SGD at a fixed lr on Xavier
# weights, and feeds the images as they are (no crop padding, no flip).
D2L_COMMON = dict(optimizer="sgd", momentum=0.0, scheduler="none", init="xavier", pad=0, flip=False)

# fastai's Learner.fine_tune (fastai/callback/schedule.py): one epoch on the new head with the
# body frozen, then everything unfrozen at half the lr, the body at lr/100 (fastai's lr_mult;
# it spreads slice(lr/100, lr) over its layer groups, we have two: backbone and head), each
# phase one cycle (schedule "onecycle" with --unfreeze-after restarts the cycle, see
# train/optim.py); fastai's default optimizer is Adam with decoupled weight decay 0.01.
FINETUNE = Recipe("finetune", "fastai's fine_tune: 1 epoch head only, then all at lr/2 (backbone lr/100), "
                  "one cycle per phase, AdamW wd 0.01", dict(
                      freeze="backbone", unfreeze_after=1, optimizer="adamw", lr=2e-3, weight_decay=0.01,
                      lr_backbone_mult=0.01, scheduler="onecycle"))

# timm's recipes for small data and models (DeiT/ResNet-strikes-back style, shortened): AdamW,
# cosine after a warmup, label smoothing, RandAugment (augment strong), MixUp 0.8 / CutMix 1.0,
# and an EMA of the weights whose decay suits runs of a few thousand steps.
TIMM_SMALL = Recipe("timm-small", "timm's small-data recipe: AdamW lr 1e-3 wd 0.05, cosine after warmup, "
                    "label smoothing 0.1, RandAugment, MixUp/CutMix, EMA", dict(
                        optimizer="adamw", lr=1e-3, weight_decay=0.05, scheduler="cosine", warmup_epochs=3.0,
                        label_smoothing=0.1, augment="strong", mixup=0.8, cutmix=1.0, ema=0.995))

def d2l_line(lr: float, batch_size: int, epochs: int, **model_args) -> dict:
    """A classic net's `lr, num_epochs, batch_size = ...` line of d2l, with the model arguments
    d2l trains it with (vgg11_d2l's ratio=4)."""
    line = dict(lr=lr, batch_size=batch_size, epochs=epochs)
    return {**line, "model_args": model_args} if model_args else line


def d2l_nets() -> list[str]:
    """The classic nets with a d2l line, in registration order (`compare`'s default list)."""
    return [name for name in MODELS.in_order() if _d2l_line(name)]


def d2l_options(name: str) -> dict:
    """d2l's settings for `name`: the shared ones, then the net's own line (lr, batch, epochs,
    model args) when it has one. `compare` trains each net with these."""
    return {**D2L_COMMON, **_d2l_line(name)}


def d2l_recipe(name: str) -> Recipe:
    """d2l's settings for `name` as a recipe (model args stay compare's: train builds the net as asked)."""
    own = f"; {name}'s lr, batch size and epochs from its d2l chapter" if _d2l_line(name) else ""
    values = {key: value for key, value in d2l_options(name).items() if key != "model_args"}
    return Recipe("d2l", "d2l's train_ch6: plain SGD at a fixed lr on Xavier weights, images as they are" + own, values)


def _d2l_line(name: str) -> dict:
    return (getattr(MODELS.get(name), "d2l", None) or {}) if name in MODELS else {}


def own_recipe(name: str) -> Recipe:
    """The recipe `name` trains with by default: d2l's for a classic net that has a d2l line,
    else RECIPE_DEFAULTS. Never imports anything (a custom name stays a name)."""
    if _d2l_line(name):
        return d2l_recipe(name)
    return RECIPE_DEFAULTS


def named_recipe(recipe: str, model: str) -> Recipe:
    """--recipe NAME for `model` (d2l's values depend on the net)."""
    if recipe not in NAMED_RECIPES:
        raise ConfigError(f"--recipe {recipe} is not one of {', '.join(NAMED_RECIPES)}")
    return NAMED_RECIPES[recipe](model)


NAMED_RECIPES = {"d2l": d2l_recipe, "finetune": lambda model: FINETUNE, "timm-small": lambda model: TIMM_SMALL}
