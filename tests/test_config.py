import pytest

from visionfit.config import Config
from visionfit.errors import ConfigError


@pytest.mark.parametrize("options, message", [
    ({"lr": 0}, "--lr must be > 0"),
    ({"lr": -1.0}, "--lr must be > 0"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"epochs": 0}, "--epochs"),
    ({"val_split": 1.5}, "--val-split"),
    ({"optimizer": "adamm"}, "Did you mean adam"),
    ({"scheduler": "cosin"}, "Did you mean cosine"),
    ({"init": "xavierr"}, "Did you mean xavier"),
    ({"device": "gpu"}, "--device 'gpu'"),
    ({"mean": [0.1, 0.2]}, "--mean takes 1 or 3 numbers"),
    ({"learning_rate": 0.1}, "unknown option 'learning_rate'"),
])
def test_bad_options_fail_before_any_work_with_a_message_naming_the_flag(options, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_options(**options)


def test_config_round_trips_through_its_dict():
    config = Config.from_options(lr=0.3, model="resnet18", model_args={"act": "relu"}, epochs=4, mean=[0.5])
    again = Config.from_dict(config.to_dict())
    assert again == config
    assert again.train.lr == 0.3 and again.model.model_args == {"act": "relu"}
