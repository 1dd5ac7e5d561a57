"""Cached backbone features: same training as on images, complete model files, same run files;
both orientations when flip is the only random operation."""
import dataclasses

import numpy as np
import pytest
import torch

import yaml

import visionfit
from visionfit.checkpoints import load_resume_state
from visionfit.config import Config, DataConfig
from visionfit.data.loader import BatchLoader
from visionfit.data.plan import plan_input
from visionfit.data.prepare import prepare_data
from visionfit.models import create_model
from visionfit.models.transfer import find_head
from visionfit.train import trainer as trainer_module
from visionfit.resolve import resolve_recipe
from visionfit.train.features import CachingTime, FeatureLoader, cache_features, uncached_cost

from ..conftest import make_preset

RUN = dict(epochs=2, lr=0.1, batch_size=32, quiet=True, image_size=16, pad=0, freeze="backbone", scheduler="step",
           step_size=1, gamma=0.5)


def fit(tiny_splits, path, lenet_start, **options):
    return visionfit.fit("lenet_bn", tiny_splits, project=str(path), weights=str(lenet_start), **{**RUN, **options})


def test_cached_training_matches_training_on_images(tiny_splits, tmp_path, lenet_start, capsys):
    cached = fit(tiny_splits, tmp_path / "cached", lenet_start)
    assert "cached head.7 input features of 96 train + 30 val images (84,)" in capsys.readouterr().err
    plain = fit(tiny_splits, tmp_path / "plain", lenet_start, cache_features=False)
    assert "input features" not in capsys.readouterr().err

    assert {p.name for p in cached.run_dir.iterdir()} == {p.name for p in plain.run_dir.iterdir()}
    for a, b in zip(cached.history, plain.history):  # lenet_bn has no dropout: the same run
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["val_acc"] == b["val_acc"]
    a = load_resume_state(cached.run_dir)["model"]
    b = load_resume_state(plain.run_dir)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_the_model_file_is_the_frozen_backbone_plus_the_trained_head(tiny_splits, tmp_path, lenet_start):
    result = fit(tiny_splits, tmp_path, lenet_start)
    model = visionfit.load_model(result.run_dir / "last.safetensors")
    head = {k: v for k, v in load_resume_state(result.run_dir)["model"].items() if k.startswith("head.")}
    reference = create_model("lenet_bn", num_classes=3, in_channels=1, input_size=16)
    reference.load_state_dict({**torch.load(lenet_start), **head})
    reference.eval()
    x = torch.randn(8, 1, 16, 16)
    assert torch.equal(model(x), reference(x))
    assert not torch.equal(model.head[7].weight, torch.load(lenet_start)["head.7.weight"])


def test_random_augmentation_is_not_cached_unless_asked(tiny_splits, tmp_path, lenet_start, capsys):
    fit(tiny_splits, tmp_path / "a", lenet_start, pad=2, epochs=1)
    assert "input features" not in capsys.readouterr().err
    fit(tiny_splits, tmp_path / "b", lenet_start, pad=2, epochs=1, cache_features=True)
    err = capsys.readouterr().err
    assert "eval view (random augmentation is off)" in err and "cached head.7 input features" in err


def test_a_model_that_works_after_its_head_trains_on_images(tiny_splits, tmp_path, capsys):
    # SqueezeNet's classifier conv is followed by ReLU and pooling: head(features) is not the output.
    visionfit.fit("squeezenet1_0", tiny_splits, project=str(tmp_path), **{**RUN, "epochs": 1, "image_size": 64},
                  max_per_class=4)
    assert "not caching features: this model does more after its classification layer" in capsys.readouterr().err


def test_a_resumed_cached_run_ends_where_an_uninterrupted_one_does(tiny_splits, tmp_path, lenet_start, monkeypatch):
    full = fit(tiny_splits, tmp_path / "full", lenet_start, epochs=3)
    original = trainer_module.Trainer.train_one_epoch

    def crash_in_third_epoch(self):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "train_one_epoch", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_splits, tmp_path / "crashed", lenet_start, epochs=3)
    monkeypatch.setattr(trainer_module.Trainer, "train_one_epoch", original)
    resumed = visionfit.fit(data=tiny_splits, resume=str(tmp_path / "crashed" / "exp"))
    a = load_resume_state(full.run_dir)["model"]
    b = load_resume_state(resumed.run_dir)["model"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_mixing_turns_the_default_cache_off_and_says_so(tiny_splits, tmp_path, lenet_start, capsys):
    fit(tiny_splits, tmp_path, lenet_start, epochs=1, mixup=0.4)
    said = capsys.readouterr()
    assert "not caching features: --mixup/--cutmix mix the images of every batch" in said.err
    assert "mixing: MixUp alpha 0.4 on 100% of batches; training accuracy counts each image as the class" in said.out
    assert "input features" not in said.err + said.out


def test_the_weight_average_of_a_cached_run_is_a_complete_model(tiny_splits, tmp_path, lenet_start, capsys):
    result = fit(tiny_splits, tmp_path, lenet_start, epochs=1, ema=0.9)
    said = capsys.readouterr()
    assert "cached head.7 input features" in said.err and "EMA of the weights: decay 0.9 after warmup" in said.out
    assert "ema_val_acc" in result.history[0]
    ema = load_resume_state(result.run_dir)["ema"]["weights"]
    assert ema.keys() == load_resume_state(result.run_dir)["model"].keys()
    assert torch.equal(ema["features.0.weight"], torch.load(lenet_start)["features.0.weight"])  # the frozen backbone


def test_the_balanced_sampler_reaches_the_cached_features(tiny_splits, tmp_path, lenet_start):
    """The same class-balanced draw with and without the cache: the same run (had the cached
    loader shuffled instead, its batches and so its loss would differ)."""
    cached = fit(tiny_splits, tmp_path / "cached", lenet_start, sampler="balanced", epochs=1)
    images = fit(tiny_splits, tmp_path / "images", lenet_start, sampler="balanced", epochs=1, cache_features=False)
    assert cached.history[0]["loss"] == pytest.approx(images.history[0]["loss"], rel=1e-4)


@pytest.fixture
def level_bars(tiny_splits):
    """The bars turned horizontal: a mirror image keeps its class, so flipping is a fair augmentation."""
    def turned(samples):
        return dataclasses.replace(samples, images=np.ascontiguousarray(samples.images.transpose(0, 2, 1)))
    return dataclasses.replace(tiny_splits, train=turned(tiny_splits.train), val=turned(tiny_splits.val))


def prepared_with_flip(splits):
    config = DataConfig(image_size=16, pad=0, flip=True, workers=0)
    return prepare_data(config, splits, plan_input(config, splits.train, natural_size=16))


def test_the_mirror_features_are_the_backbone_of_the_flipped_image(level_bars, lenet_start):
    net = create_model("lenet_bn", num_classes=3, in_channels=1, input_size=16)
    net.load_state_dict(torch.load(lenet_start))
    prepared = prepared_with_flip(level_bars)
    cached = cache_features(net, prepared, 32, torch.device("cpu"), mirrored=True)

    x, _ = next(iter(BatchLoader(prepared.train, prepared.preset, 96, train=False, device=torch.device("cpu"))))
    seen = []
    hook = find_head(net)[1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        net.eval()(x.flip(-1))
        net(x)
    hook.remove()
    assert torch.allclose(cached.train.mirrored, seen[0], atol=1e-6)
    assert torch.allclose(cached.train.features, seen[1], atol=1e-6)
    assert not torch.equal(cached.train.mirrored, cached.train.features)  # the noise is not symmetric
    assert cached.val.mirrored is None


def test_each_epoch_picks_a_seeded_half_of_the_mirrors():
    n = 10_000
    index = torch.arange(n, dtype=torch.float32)[:, None]
    loader = FeatureLoader(index, torch.zeros(n, dtype=torch.int64), 500, True, seed=3, mirrored=-index - 1)
    first = loader.mirror_choice()
    assert torch.equal(first, loader.mirror_choice())  # seeded: a resumed run draws the same
    assert 0.48 < first.float().mean() < 0.52
    x = torch.cat([batch for batch, _ in loader])[:, 0]
    mirrored = x < 0
    rows = torch.where(mirrored, -x - 1, x).long()
    assert sorted(rows.tolist()) == list(range(n))  # every image once per epoch, in its seeded order
    assert torch.equal(mirrored, first[rows])  # each image's view is the one drawn for it
    loader.set_epoch(1)
    assert (loader.mirror_choice() != first).float().mean() > 0.4  # a new draw each epoch


def test_a_frozen_run_with_flip_trains_on_cached_mirrors_as_well_as_on_images(level_bars, tmp_path, capsys):
    # A randomly initialised lenet_relu backbone: its features still tell where the bar is.
    run = dict(epochs=2, optimizer="adam", lr=0.05, batch_size=16, quiet=True, image_size=16, pad=0, flip=True,
               freeze="backbone")
    cached = visionfit.fit("lenet_relu", level_bars, project=str(tmp_path / "cached"), **run)
    err = capsys.readouterr().err
    assert "input features of 96 train (each image and its mirror) + 30 val images" in err and "hint" not in err
    plain = visionfit.fit("lenet_relu", level_bars, project=str(tmp_path / "plain"), cache_features=False, **run)
    assert "input features" not in capsys.readouterr().err
    assert cached.best_score > 0.9 and abs(cached.best_score - plain.best_score) <= 0.1  # chance is 1/3
    for a, b in zip(cached.history, plain.history):  # other images flipped, the same learning
        assert a["loss"] == pytest.approx(b["loss"], abs=0.02)


def test_the_caching_time_counts_in_the_first_epoch_only():
    timing = CachingTime(seconds=3.0)
    first, second = {"images_per_s": 100.0, "seconds": 1.0}, {"images_per_s": 100.0, "seconds": 1.0}
    timing.on_epoch_end(None, first)
    timing.on_epoch_end(None, second)
    assert first == {"images_per_s": 25.0, "seconds": 4.0} and second == {"images_per_s": 100.0, "seconds": 1.0}


def test_a_frozen_run_says_why_its_features_are_not_cached(tiny_splits, tmp_path, lenet_start, capsys):
    fit(tiny_splits, tmp_path, lenet_start, pad=2, flip=True, epochs=1)
    hints = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hint:")]
    assert hints == ["hint: the backbone is frozen, but its features are not cached because training draws a "
                     "random crop + flip per image each epoch (a full forward pass per image per epoch); "
                     "--cache-features trains the head on each image's eval view instead (much faster); or turn "
                     "them off (--pad 0; flip alone is cached too)"]


def test_a_frozen_backbone_caches_its_features_by_default(tiny_splits, tmp_path, capsys):
    """No augmentation flag: the bars train without a random crop, on features computed once.
    (lenet_relu: no d2l recipe of its own, whose pad 0 would leave nothing to decide.)"""
    options = {**{key: value for key, value in RUN.items() if key != "pad"}, "epochs": 1}
    result = visionfit.fit("lenet_relu", tiny_splits, project=str(tmp_path), **options)
    said = capsys.readouterr()
    assert "cached head.5 input features of 96 train + 30 val images (84,)" in said.err and "hint" not in said.err
    assert "  augment: none (frozen backbone: features cached; --augment light to train on random crops instead)" \
        in said.out.splitlines()
    record = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert record["data"]["pad"] == 0 and record["resolved"]["augmentation"]["pad"] == 0
    assert record["resolved"]["recipe"]["sources"]["pad"].startswith("frozen backbone default: no random crop")


@pytest.mark.parametrize("options, said", [
    (dict(pad=2), "not cached: augmentation runs the frozen backbone on every image every epoch, about 5x the compute "
                  "of cached features (one forward per image per epoch, not once); --cache-features trains the head "
                  "on each image's eval view, computed once"),
    (dict(pad=0, mixup=0.2), "not cached: MixUp/CutMix runs the frozen backbone on every image every epoch, about 5x "
                             "the compute of cached features (one forward per image per epoch, not once)"),
    (dict(pad=0), None),  # cached
    (dict(pad=2, epochs=1), None),  # one epoch costs the same either way
    (dict(pad=2, cache_features=False), None),  # the user chose images
    (dict(pad=2, freeze="none"), None),  # the backbone trains
])
def test_the_summary_says_what_training_a_frozen_backbone_on_images_costs(options, said):
    config, _ = resolve_recipe(Config.from_options(**{"freeze": "backbone", "epochs": 5, **options}))
    preset = make_preset(16, 1, (0.5,), (0.25,), small=True, pad=config.data.pad)
    assert uncached_cost(config, preset) == said
