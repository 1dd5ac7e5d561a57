"""resolve.task_settings: the monitor a run's data implies, and what multi-label data refuses."""
import pytest

from visionfit.config import Config
from visionfit.errors import ConfigError
from visionfit.resolve import task_settings


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
    from visionfit.resolve import resolve_recipe

    config, recipe = resolve_recipe(Config.from_options(recipe="timm-small"))
    assert config.train.mixup > 0 and config.train.cutmix > 0
    settled, notes = task_settings(config, multi_label=True, recipe=recipe)
    assert settled.train.mixup == 0 and settled.train.cutmix == 0 and settled.train.ema == config.train.ema
    assert any(note.startswith("--mixup off: recipe timm-small") for note in notes)
    typed, typed_recipe = resolve_recipe(Config.from_options(recipe="timm-small", mixup=0.4))
    with pytest.raises(ConfigError, match="--mixup is for single-label data"):
        task_settings(typed, multi_label=True, recipe=typed_recipe)
