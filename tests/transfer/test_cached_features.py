"""Cached backbone features: same training as on images, complete model files, same run files."""
import pytest
import torch

import visionfit
from visionfit.checkpoints import load_resume_state
from visionfit.models import create_model
from visionfit.train import trainer as trainer_module

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
    err = capsys.readouterr().err
    assert "not caching features: --mixup/--cutmix mix the images of every batch" in err
    assert "  mixing: MixUp alpha 0.4 on 100% of batches; training accuracy counts each image as the class" in err
    assert "input features" not in err


def test_the_weight_average_of_a_cached_run_is_a_complete_model(tiny_splits, tmp_path, lenet_start, capsys):
    result = fit(tiny_splits, tmp_path, lenet_start, epochs=1, ema=0.9)
    err = capsys.readouterr().err
    assert "cached head.7 input features" in err and "  EMA of the weights: decay 0.9 after warmup" in err
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
