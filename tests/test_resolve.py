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
