"""Each model's own recipe, --recipe, and the user's flags over both: what resolve_recipe fills in and records."""
import dataclasses

import pytest
import torch
import yaml

import visionfit
from visionfit.comparing import CLASSIC_CNNS, plan_runs
from visionfit.config import Config, TrainConfig
from visionfit.errors import ConfigError
from visionfit.models import MODELS
from visionfit.models.recipes import NAMED_RECIPES, RECIPE_DEFAULTS, RECIPE_FIELDS, TIMM_SMALL, d2l_options
from visionfit.resolve import resolve_recipe
from visionfit.train.optim import FINE_TUNE_UNFROZEN_LR, build_scheduler, one_cycle


def resolved(**options):
    return resolve_recipe(Config.from_options(**options))


def test_lenet_trains_with_d2l_s_recipe_unless_told_otherwise():
    config, recipe = resolved(model="lenet")
    t = config.train
    assert (t.optimizer, t.lr, t.momentum, t.scheduler, t.epochs) == ("sgd", 0.5, 0.0, "none", 20)
    assert (config.data.batch_size, config.model.init, config.data.pad, config.data.flip) == (256, "xavier", 0, False)
    assert recipe.name == "d2l (lenet's own)" and recipe.sources["lr"].startswith("recipe d2l: d2l's train_ch6")


def test_every_field_a_recipe_may_set_is_unset_until_resolved_and_set_after():
    given = Config.from_options(model="resnet18")
    config, recipe = resolve_recipe(given)
    for name in set(RECIPE_FIELDS) - {"flip", "pad", "unfreeze_after", "lr_backbone_mult", "ema"}:
        assert given.flat()[name] is None and config.flat()[name] == RECIPE_DEFAULTS.values[name], name
    assert recipe.name == "default (no recipe of its own)"
    assert config.flat()["flip"] is None and "the data and --augment decide" in recipe.sources["flip"]
    assert config.train.ema is None and recipe.sources["ema"] == "no recipe sets it: off"


def test_a_named_recipe_wins_over_the_model_s_own_and_a_flag_over_both():
    config, recipe = resolved(model="lenet", recipe="timm-small", lr=0.01, epochs=6)
    t = config.train
    assert (t.optimizer, t.weight_decay, t.label_smoothing, t.mixup, t.cutmix, t.ema) == ("adamw", 0.05, 0.1, 0.8, 1.0,
                                                                                          0.995)
    assert (t.lr, t.epochs, config.data.augment) == (0.01, 6, "strong")
    assert config.data.batch_size == 256 and config.model.init == "xavier"  # lenet's own, where timm-small is silent
    assert recipe.sources["lr"] == "your setting" and recipe.sources["optimizer"].startswith("recipe timm-small")
    assert recipe.sources["batch_size"].startswith("recipe d2l") and recipe.name == "timm-small (--recipe)"
    # timm-small's 3 warmup epochs, capped to a fifth of the 6 epochs asked for
    assert t.warmup_epochs == pytest.approx(1.2) and "capped" in recipe.sources["warmup_epochs"]


def test_finetune_is_fastai_s_two_cycles_with_the_backbone_frozen_then_at_a_hundredth():
    config, _ = resolved(model="resnet18", recipe="finetune", epochs=4)
    t = config.train
    assert (config.model.freeze, t.unfreeze_after, t.lr_backbone_mult, t.scheduler) == ("backbone", 1, 0.01, "onecycle")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=t.lr)  # the schedule alone
    scheduler = build_scheduler(optimizer, t, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    frozen, unfrozen = lrs[:10], lrs[10:]
    assert frozen[0] == pytest.approx(t.lr / 25) and max(frozen) == pytest.approx(t.lr * one_cycle(9, 10, 0.99, 25))
    assert unfrozen[0] == pytest.approx(t.lr * FINE_TUNE_UNFROZEN_LR / 5)  # a new cycle, from half the lr over div 5
    assert max(unfrozen) == pytest.approx(t.lr * FINE_TUNE_UNFROZEN_LR) and unfrozen.index(max(unfrozen)) == 9
    assert unfrozen[-1] < t.lr * 1e-2 and unfrozen[-1] < unfrozen[-2]


def test_compare_trains_each_classic_net_with_the_table_beside_its_factory(tmp_path):
    assert CLASSIC_CNNS == ["lenet", "lenet_bn", "alexnet_d2l", "vgg11_d2l", "nin", "googlenet_d2l", "resnet18_d2l"]
    assert all(MODELS.get(name).d2l for name in CLASSIC_CNNS) and MODELS.get("lenet_relu").d2l is None
    plan, = plan_runs(["vgg11_d2l"], {}, {}, max_image_size=32)
    assert plan.options == {**d2l_options("vgg11_d2l"), "image_size": 32}
    assert plan.options["model_args"] == {"ratio": 4} and plan.options["lr"] == 0.05
    config, _ = resolved(model="vgg11_d2l", recipe="d2l")
    assert (config.train.lr, config.data.batch_size, config.model.model_args) == (0.05, 128, {})


def test_an_unknown_recipe_is_refused_naming_the_flag():
    choices = next(f for f in dataclasses.fields(TrainConfig) if f.name == "recipe").metadata["choices"]
    assert choices == list(NAMED_RECIPES)  # --recipe's choices are the recipes there are
    with pytest.raises(ConfigError, match="--recipe fancy is not one of d2l, finetune, timm-small"):
        resolved(model="lenet", recipe="fancy")


def test_the_run_names_its_recipe_and_config_yaml_says_where_each_value_came_from(tiny_splits, tmp_path, capsys):
    result = visionfit.fit("lenet", tiny_splits, project=str(tmp_path), epochs=1, image_size=16, quiet=True,
                           recipe="timm-small", augment="light", mixup=0.0, cutmix=0.0, ema=None)
    out = capsys.readouterr().out  # the run summary, on stdout
    assert "recipe:  timm-small (--recipe): adamw lr 0.001 weight decay 0.05, cosine schedule, 1 epochs of batch 256" in out
    assert "yours: --epochs, --augment, --mixup, --cutmix" in out
    record = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    sources = record["resolved"]["recipe"]["sources"]
    assert record["train"]["optimizer"] == "adamw" and record["train"]["recipe"] == "timm-small"
    assert sources["epochs"] == "your setting" and sources["augment"] == "your setting"
    assert sources["optimizer"] == f"recipe timm-small: {TIMM_SMALL.why}"
    assert sources["init"].startswith("recipe d2l") and record["model"]["init"] == "xavier"
    again = Config.from_file(result.run_dir / "config.yaml")  # --config runs/x/config.yaml: every value set
    assert resolve_recipe(again)[0] == again and again.train.lr == 0.001



@pytest.mark.slow
def test_sigmoid_lenet_learns_mnist_with_its_own_recipe(tmp_path):
    """The seeds' sigmoid LeNet stayed at chance under SGD momentum 0.9, lr 0.05, batch 128 (11.8%
    after 5 epochs); d2l's recipe gets it going after ~200 steps. 8 of its 20 epochs on the
    embedded sample (12,000 real digits, 47 steps an epoch) keep the test short."""
    result = visionfit.fit("lenet", project=str(tmp_path), epochs=8, quiet=True)
    config = result.resolved.config
    assert (config.train.lr, config.data.batch_size, config.model.init) == (0.5, 256, "xavier")
    assert result.best_score > 0.5


def test_finetune_with_one_epoch_says_what_the_recipe_needs():
    with pytest.raises(ConfigError, match=r"--recipe finetune trains the new head for 1 epoch .*give --epochs 2 or more \(not 1\)"):
        resolve_recipe(Config.from_options(model="resnet18", recipe="finetune", epochs=1))


def test_ema_zero_drops_the_recipes_average():
    from visionfit.train.session import _weight_average

    config, recipe = resolve_recipe(Config.from_options(recipe="timm-small", ema=0.0))
    assert config.train.ema == 0.0 and recipe.sources["ema"] == "your setting"
    assert _weight_average(torch.nn.Linear(2, 2), config.train.ema, None) is None
    assert _weight_average(torch.nn.Linear(2, 2), resolve_recipe(Config.from_options(recipe="timm-small"))[0].train.ema,
                           None) is not None
