import dataclasses
import math

import pytest
import yaml

from visionfit.config import SECTIONS, Config, number_ranges
from visionfit.errors import ConfigError
from visionfit.resolve import resolve_recipe


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


FLOAT_FIELDS = [f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind) if "float" in str(f.type)]


def test_the_float_fields_are_found():
    assert {"lr", "momentum", "rotation", "mean", "std", "warmup_epochs"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_every_float_field_must_be_finite_and_has_a_range(name, value):
    """Found from the dataclasses: a float field added later is covered without a new test."""
    wrong = [value] if name in ("mean", "std") else value
    with pytest.raises(ConfigError) as caught:
        Config.from_options(**{name: wrong})
    flag = "--" + name.replace("_", "-")
    assert str(caught.value).startswith(f"{flag} must be a finite number {number_ranges(Config())[name]}, not ")


@pytest.mark.parametrize("options, allowed", [
    ({"lr": 10}, True), ({"lr": 10.001}, False), ({"lr": 1e-12}, True),
    ({"momentum": 0.999}, True), ({"momentum": 1.0}, False), ({"momentum": -0.1}, False),
    ({"weight_decay": 0.0}, True), ({"weight_decay": 1.0}, False),
    ({"gamma": 1.0}, True), ({"gamma": 0.0}, False),
    ({"label_smoothing": 0.0}, True), ({"label_smoothing": 1.0}, False),
    ({"warmup_epochs": 2.5, "epochs": 3}, True), ({"warmup_epochs": 3, "epochs": 3}, False),
    ({"rotation": 180}, True), ({"rotation": 180.5}, False), ({"rotation": -5}, False),
    ({"val_split": 0.0}, True), ({"val_split": 1.0}, False),
    ({"mean": [0.0, 0.5, 1.0]}, True), ({"mean": [0.5, 1.2, 0.5]}, False),
    ({"std": [1.0]}, True), ({"std": [0.0]}, False),
    ({"lr_backbone": 0.001}, True), ({"lr_backbone": 0.0}, False),
    ({"lr_backbone_mult": 10.0}, True), ({"lr_backbone_mult": 11.0}, False),
    ({"image_size": 8}, True), ({"image_size": 2048}, True), ({"image_size": 2049}, False), ({"image_size": 7}, False),
    ({"batch_size": 65536}, True), ({"batch_size": 65537}, False),
    ({"epochs": 100_000}, True), ({"epochs": 100_001}, False),
    ({"workers": 0}, True), ({"workers": 65}, False),
    ({"accumulate": 1024}, True), ({"accumulate": 1025}, False),
    ({"pad": 64}, True), ({"pad": -1}, False),
    ({"max_per_class": 1}, True), ({"max_per_class": 0}, False),
    ({"patience": 1}, True), ({"step_size": 0}, False),
    ({"presize": 0}, True), ({"presize": 4096}, True), ({"presize": 4097}, False), ({"presize": -1}, False),
    ({"presize": 224, "image_size": 224}, True), ({"presize": 0, "image_size": 224}, True),
], ids=str)
def test_range_edges(options, allowed):
    if allowed:
        Config.from_options(**options)
    else:
        flag = "--" + next(iter(options)).replace("_", "-")
        with pytest.raises(ConfigError, match=f"^{flag} must be "):
            Config.from_options(**options)


def test_an_out_of_range_message_says_the_range_the_value_and_what_to_use():
    with pytest.raises(ConfigError) as caught:
        Config.from_options(lr=1e6)
    assert str(caught.value) == "--lr must be > 0 and at most 10, not 1e+06; try 0.01 for SGD, 0.001 for Adam"
    with pytest.raises(ConfigError) as caught:
        Config.from_options(image_size=4096)
    assert str(caught.value).startswith("--image-size must be at least 8 and at most 2048, not 4096; ")


def write_yaml(path, document) -> str:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def test_a_saved_config_yaml_reads_back_as_the_same_config_ignoring_visionfit_bookkeeping(tmp_path):
    config = Config.from_options(model="resnet18", lr=0.3, epochs=4, mean=[0.5], model_args={"act": "relu"},
                                 flip=True, name="exp7")
    saved = {**config.to_dict(), "resolved": {"image_size": 224, "channels": 3}, "visionfit_version": "0.1.0"}
    assert Config.from_file(write_yaml(tmp_path / "config.yaml", saved)) == config


def test_options_given_with_the_file_override_it_and_the_rest_keep_the_file_or_the_default(tmp_path):
    path = write_yaml(tmp_path / "run.yaml", {"train": {"lr": 0.3, "epochs": 4}, "model": {"model": "resnet18"}})
    config = Config.from_file(path, lr=0.01)
    assert (config.train.lr, config.train.epochs, config.model.model) == (0.01, 4, "resnet18")
    assert config.train.optimizer is None and config.data.batch_size is None  # the recipe's, where neither speaks
    resolved, _ = resolve_recipe(config)
    assert resolved.train.optimizer == "sgd" and resolved.data.batch_size == 128 and resolved.train.lr == 0.01


def test_yaml_1_1_number_text_counts_as_the_number_it_means(tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  lr: 1e-3\n  weight_decay: 0\n")
    config = Config.from_file(tmp_path / "run.yaml")
    assert config.train.lr == 0.001 and config.train.weight_decay == 0.0 and isinstance(config.train.weight_decay, float)


def test_an_empty_file_and_empty_sections_mean_every_default(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "sections.yaml").write_text("data:\ntrain:\n")
    assert Config.from_file(tmp_path / "empty.yaml") == Config.from_file(tmp_path / "sections.yaml") == Config()


@pytest.mark.parametrize("document, message", [
    ({"train": {"lrr": 0.1}}, r"unknown key train\.lrr; did you mean train\.lr\?"),
    ({"data": {"lr": 0.1}}, r"unknown key data\.lr; lr belongs under train:"),
    ({"lr": 0.1}, r"unknown section 'lr'; settings sit in their section: put lr under train:"),
    ({"trian": {"lr": 0.1}}, r"unknown section 'trian'; did you mean train\?"),
    ({"train": {"epochs": "many"}}, r"train\.epochs must be a whole number, not 'many'"),
    ({"train": {"epochs": 2.5}}, r"train\.epochs must be a whole number, not 2\.5"),
    ({"train": {"nesterov": "yes please"}}, r"train\.nesterov must be true or false"),
    ({"train": {"accumulate": None}}, r"train\.accumulate is empty"),
    ({"data": {"mean": ["a"]}}, r"data\.mean must be a list of numbers"),
    ({"data": {"cache": "disk"}}, r"data\.cache is 'disk'; it must be one of ram, none"),
    ({"model": {"model_args": {"depth": [[1]]}}}, r"model\.model_args must be a mapping of names to plain values"),
    ({"train": 5}, r"section 'train' holds a number; it must be a mapping of settings"),
    (["data", "train"], r"holds a list; it must be a mapping of sections"),
    ({"run": {"resume": "runs/exp"}}, r"sets run\.resume; a file cannot resume a run: use --resume runs/exp"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_key(tmp_path, document, message):
    path = write_yaml(tmp_path / "run.yaml", document)
    with pytest.raises(ConfigError, match=message) as error:
        Config.from_file(path)
    assert str(error.value).startswith(f"--config {path}") and "\n" not in str(error.value)


def test_the_file_values_are_validated_like_flags(tmp_path):
    path = write_yaml(tmp_path / "run.yaml", {"train": {"lr": 0}})
    with pytest.raises(ConfigError, match="--lr must be > 0"):
        Config.from_file(path)


def test_a_presize_smaller_than_the_input_is_refused_naming_both_flags(capsys):
    from visionfit.cli import main

    with pytest.raises(ConfigError, match=r"^--presize must be 0 or at least --image-size \(224\), not 200: "):
        Config.from_options(image_size=224, presize=200)
    with pytest.raises(SystemExit):  # the flag exists, generated from the field, and is checked before any work
        main(["train", "--image-size", "64", "--presize", "50"])
    assert "--presize must be 0 or at least --image-size (64), not 50" in capsys.readouterr().err
