import os
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

import visionfit
from visionfit.infer.runner import load_classifier
from visionfit.checkpoints import load_resume_state, read_meta, read_resume_state, save_model_file, save_resume_state
from visionfit.errors import ModelError

from .conftest import model_meta


def test_model_file_round_trip_keeps_outputs_and_metadata(tmp_path):
    net = visionfit.create_model("lenet_bn", num_classes=4, in_channels=3).eval()
    net(torch.randn(2, 3, 28, 28))  # running stats are part of the file too
    save_model_file(tmp_path / "m.safetensors", net, model_meta("lenet_bn", list("abcd"), in_channels=3))
    loaded = visionfit.load_model(tmp_path / "m.safetensors")
    x = torch.randn(3, 3, 28, 28)
    assert torch.equal(loaded(x), net(x))
    assert read_meta(tmp_path / "m.safetensors")["class_names"] == ["a", "b", "c", "d"]
    assert not loaded.training


def test_a_multi_label_head_round_trips_and_its_classifier_reads_tags(tmp_path):
    net = visionfit.create_model("lenet_relu", num_classes=3).eval()
    meta = model_meta("lenet_relu", ["cat", "dog", "owl"], multi_label=True, thresholds=[0.3, 0.5, 0.9])
    save_model_file(tmp_path / "m.safetensors", net, meta)
    assert read_meta(tmp_path / "m.safetensors")["thresholds"] == [0.3, 0.5, 0.9]
    classifier = load_classifier(tmp_path / "m.safetensors")
    assert classifier.multi_label and classifier.tags(np.array([0.3, 0.49, 0.95])) == ["cat", "owl"]
    assert not load_classifier(net_with_meta(tmp_path, net)).multi_label  # a file without the field: single-label


def net_with_meta(tmp_path, net) -> Path:
    save_model_file(tmp_path / "single.safetensors", net, model_meta("lenet_relu", ["cat", "dog", "owl"]))
    return tmp_path / "single.safetensors"


def test_plain_weights_are_not_mistaken_for_a_model_file(tmp_path):
    safetensors.torch.save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(ModelError, match="plain weights"):
        visionfit.load_model(tmp_path / "plain.safetensors")


@pytest.mark.parametrize("content", [None, b"garbage bytes"])
def test_missing_or_corrupt_model_files_get_a_clear_error(tmp_path, content):
    path = tmp_path / "best.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=str(path)):
        visionfit.load_model(path)


def resume_state(epoch: int) -> dict:
    """A small but complete resume state, told apart by its epoch."""
    return {"epoch": epoch, "model": {"w": torch.full((2,), float(epoch))}, "optimizer": {"state": {}},
            "scheduler": {}, "scaler": {}, "history": [{"epoch": epoch + 1}], "best_score": 0.5,
            "config": {"train": {}}}


def test_each_save_keeps_the_checkpoint_it_replaces_as_previous(tmp_path):
    save_resume_state(tmp_path, resume_state(0), keep_previous=False)
    assert not (tmp_path / "previous.ckpt").exists()
    save_resume_state(tmp_path, resume_state(1), keep_previous=True)
    save_resume_state(tmp_path, resume_state(2), keep_previous=True)
    assert read_resume_state(tmp_path / "last.ckpt")["epoch"] == 2
    assert read_resume_state(tmp_path / "previous.ckpt")["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "previous.ckpt"]


def test_a_last_ckpt_not_known_good_never_pushes_out_previous(tmp_path):
    save_resume_state(tmp_path, resume_state(0), keep_previous=False)
    save_resume_state(tmp_path, resume_state(1), keep_previous=True)
    (tmp_path / "last.ckpt").write_bytes(b"damaged")  # what a resume fell back from
    save_resume_state(tmp_path, resume_state(2), keep_previous=False)
    assert read_resume_state(tmp_path / "previous.ckpt")["epoch"] == 0
    assert read_resume_state(tmp_path / "last.ckpt")["epoch"] == 2


def test_killed_between_the_two_renames_the_run_resumes_from_previous(tmp_path, monkeypatch, capsys):
    save_resume_state(tmp_path, resume_state(0), keep_previous=False)
    real_replace, calls = os.replace, []

    def killed_on_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save_resume_state(tmp_path, resume_state(1), keep_previous=True)
    monkeypatch.undo()
    assert not (tmp_path / "last.ckpt").exists()
    assert load_resume_state(tmp_path)["epoch"] == 0
    assert capsys.readouterr().err == f"{tmp_path / 'last.ckpt'} is missing; resuming from previous.ckpt (epoch 1)\n"


def test_a_truncated_last_ckpt_falls_back_to_previous_with_one_line(tmp_path, capsys):
    save_resume_state(tmp_path, resume_state(3), keep_previous=False)
    save_resume_state(tmp_path, resume_state(4), keep_previous=True)
    last = tmp_path / "last.ckpt"
    last.write_bytes(last.read_bytes()[:200])
    assert load_resume_state(tmp_path)["epoch"] == 3
    err = capsys.readouterr().err
    assert err.startswith(f"{last} is unreadable (") and err.endswith("); resuming from previous.ckpt (epoch 4)\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize("damage, reason", [
    (lambda s: s.pop("optimizer"), "'optimizer' is missing or not of type dict"),
    (lambda s: s.update(epoch="3"), "'epoch' is missing or not of type int"),
    (lambda s: s.update(epoch=-1), "'epoch' is negative"),
    (lambda s: s.update(best_score=None), "'best_score' is missing or not of type float"),
    (lambda s: s.update(history={}), "'history' is missing or not of type list"),
    (lambda s: s["model"].update(w="weights"), "'model' holds something other than tensors"),
    (lambda s: s.update(ema=[]), "'ema' is not a dict"),
    (lambda s: s.update(ema={"weights": {}}), "'ema' has no 'steps' of type int"),
    (lambda s: s.update(ema={"steps": True, "weights": {}}), "'ema' has no 'steps' of type int"),
    (lambda s: s.update(ema={"steps": -1, "weights": {}}), "'ema' has a negative step count"),
    (lambda s: s.update(ema={"steps": 3, "weights": {"w": "x"}}), "'ema' weights hold something other than tensors"),
], ids=["missing_key", "epoch_text", "epoch_negative", "best_score_none", "history_dict", "model_not_tensors",
        "ema_list", "ema_no_steps", "ema_steps_bool", "ema_steps_negative", "ema_not_tensors"])
def test_a_resume_state_of_the_wrong_shape_is_refused_with_the_reason(tmp_path, damage, reason):
    state = resume_state(0)
    damage(state)
    torch.save(state, tmp_path / "last.ckpt")
    with pytest.raises(ModelError) as caught:
        read_resume_state(tmp_path / "last.ckpt")
    assert str(caught.value) == f"{tmp_path / 'last.ckpt'} is unreadable ({reason})"


def test_with_both_checkpoints_damaged_the_error_names_both_and_how_to_start_again(tmp_path):
    (tmp_path / "last.ckpt").write_bytes(b"")
    (tmp_path / "previous.ckpt").write_text("not a checkpoint")
    with pytest.raises(ModelError) as caught:
        load_resume_state(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"cannot resume {tmp_path}: {tmp_path / 'last.ckpt'} is unreadable (")
    assert f"{tmp_path / 'previous.ckpt'} is unreadable (" in message
    assert message.endswith(f"start a new run without --resume, or from these weights with --weights "
                            f"{tmp_path / 'last.safetensors'}")


def test_resuming_a_folder_that_is_not_there_says_so(tmp_path):
    with pytest.raises(ModelError, match="is not a run directory"):
        load_resume_state(tmp_path / "nope")


def test_tied_weights_are_stored_once_and_tied_again(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "models"))
    net = visionfit.create_model("custom_net:TiedNet", num_classes=3).eval()
    save_model_file(tmp_path / "m.safetensors", net, model_meta("custom_net:TiedNet"))
    with safetensors.safe_open(tmp_path / "m.safetensors", framework="pt") as f:
        assert len(list(f.keys())) == 5  # 6 state_dict entries, one of them shared
    loaded = visionfit.load_model(tmp_path / "m.safetensors", trust_code=True)
    assert loaded.classify.weight is loaded.encode.weight
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), net(x))


def test_a_file_written_by_a_release_without_preprocess_and_format_still_loads(tmp_path):
    net = visionfit.create_model("lenet", num_classes=3)
    meta = model_meta(visionfit_version="0.1.0", dataset="bars", weights=None, metrics={"val_acc": 0.9})
    del meta["preprocess"]  # 0.1.0 wrote the preset alone: size, channels, mean, std and the augmentation
    meta["preset"] = {"size": 28, "channels": 1, "mean": [0.1307], "std": [0.3081], "small": True, "flip": False,
                      "rotation": 0.0, "pad": 3}
    safetensors.torch.save_model(net, str(tmp_path / "m.safetensors"), metadata={"visionfit": json.dumps(meta)})
    assert visionfit.load_model(tmp_path / "m.safetensors").visionfit_meta["metrics"] == {"val_acc": 0.9}
    spec = load_classifier(tmp_path / "m.safetensors", "cpu").preset.preprocess
    assert (spec.size, spec.resize, spec.resize_side, spec.mean) == (28, "both", 28, (0.1307,))
