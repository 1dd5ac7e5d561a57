"""resolve.task_settings: the monitor a run's data implies, and what multi-label data refuses;
resolve_recipe: the training view of a frozen backbone."""
import numpy as np
import pytest

from visionfit import resolve
from visionfit.config import Config
from visionfit.data.plan import plan_input
from visionfit.data.samples import Samples
from visionfit.errors import ConfigError
from visionfit.models.recipes import Recipe
from visionfit.resolve import resolve_recipe, task_settings


@pytest.mark.parametrize("multi_label, expected", [(False, "val_acc"), (True, "map")])
def test_the_default_monitor_follows_the_task(multi_label, expected):
    config, notes = task_settings(Config.from_options(), multi_label)
    assert config.train.monitor == expected and bool(notes) == multi_label
    assert task_settings(Config.from_options(monitor="val_loss"), multi_label)[0].train.monitor == "val_loss"


@pytest.mark.parametrize("options, match", [
    (dict(class_weights="auto"), "--class-weights is for single-label data"),
    (dict(sampler="balanced"), "--sampler balanced is for single-label data"),
    (dict(mixup=0.2), "--mixup is for single-label data"),
    (dict(monitor="balanced_acc"), "--monitor balanced_acc is for single-label data"),
])
def test_multi_label_data_refuses_what_only_single_label_training_does(options, match):
    with pytest.raises(ConfigError, match=match):
        task_settings(Config.from_options(**options), multi_label=True)


def test_monitor_map_needs_multi_label_data():
    with pytest.raises(ConfigError, match="--monitor map is for multi-label data"):
        task_settings(Config.from_options(monitor="map"), multi_label=False)


def test_a_recipes_mixing_is_turned_off_for_multi_label_data_and_said():
    """--recipe timm-small sets MixUp/CutMix; on tags data the run drops them and says so,
    where the same flags typed by the user are refused."""
    config, recipe = resolve_recipe(Config.from_options(recipe="timm-small"))
    assert config.train.mixup > 0 and config.train.cutmix > 0
    settled, notes = task_settings(config, multi_label=True, recipe=recipe)
    assert settled.train.mixup == 0 and settled.train.cutmix == 0 and settled.train.ema == config.train.ema
    assert any(note.startswith("--mixup off: recipe timm-small") for note in notes)
    typed, typed_recipe = resolve_recipe(Config.from_options(recipe="timm-small", mixup=0.4))
    with pytest.raises(ConfigError, match="--mixup is for single-label data"):
        task_settings(typed, multi_label=True, recipe=typed_recipe)


def frozen(**options):
    return resolve_recipe(Config.from_options(freeze="backbone", **options))


def test_a_frozen_backbone_trains_on_the_cacheable_view_by_default():
    config, recipe = frozen()
    assert (config.data.augment, config.data.pad, config.data.flip) == ("light", 0, None)
    assert recipe.sources["pad"].startswith("frozen backbone default: no random crop")
    assert recipe.sources["flip"].startswith("no recipe sets it")  # the data decides: photos flip, digits do not
    digits = Samples(labels=np.zeros(4, dtype=np.int64), images=np.zeros((4, 28, 28), dtype=np.uint8))
    plan = plan_input(config.data, digits, natural_size=28)
    assert (plan.small, plan.pad, plan.flip) == (True, 0, False)
    assert plan.preset((0.5,), (0.25,)).random_ops() == ()  # features cached once
    photos = Samples(labels=np.zeros(4, dtype=np.int64), images=np.zeros((4, 96, 128, 3), dtype=np.uint8))
    assert plan_input(config.data, photos, natural_size=96).flip  # photos keep flipping: both orientations cached


@pytest.mark.parametrize("options", [
    dict(augment="light"), dict(augment="none"), dict(pad=4), dict(flip=True), dict(flip=False), dict(rotation=10.0),
    dict(unfreeze_after=1, epochs=3), dict(recipe="timm-small"), dict(cache_features=False), dict(mixup=0.2),
])
def test_a_frozen_backbone_keeps_the_augmentation_asked_for(options):
    """Flags, a --recipe that augments, a backbone that unfreezes, --no-cache-features or
    MixUp (trained on images anyway): the recipe's augmentation, untouched."""
    config, recipe = frozen(**options)
    assert config.data.pad == options.get("pad") and not recipe.sources["pad"].startswith("frozen backbone")
    assert config.data.augment == options.get("augment", "strong" if "recipe" in options else "light")


def test_the_model_s_own_recipe_does_not_count_as_asking_for_augmentation(monkeypatch):
    heavy = Recipe("heavy", "a net's own recipe that augments hard", dict(augment="strong", flip=True))
    monkeypatch.setattr(resolve, "own_recipe", lambda name: heavy)
    config, recipe = frozen()
    assert (config.data.augment, config.data.pad, config.data.flip) == ("light", 0, True)
    assert recipe.sources["augment"] == "frozen backbone default: light, not strong, so features can be cached"
    assert resolve_recipe(Config.from_options())[0].data.augment == "strong"  # trained whole: its own
