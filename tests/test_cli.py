"""The CLI: errors before work (one line, exit code 2, no traceback), bugs in one line (exit
code 1), help that states every default, flags spelled as the Python API's keywords, end-to-end runs."""
import argparse
import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import visionfit
from visionfit.cli import build_parser, main
from visionfit.cli import train as train_command
from visionfit.cli.help import DefaultsFormatter, describe
from visionfit.config import SECTIONS


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    err = capsys.readouterr().err
    return exit_info.value.code, err


def photo_folders(root, classes=("ants", "bees"), per_class=6, seed=0):
    """Class folders of RGB JPEGs of different sizes; class = dominant colour channel."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = rng.integers(30, 60, size=2)
            pixels = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.jpg")
    return root


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0"], "--lr must be > 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--model", "resnet81"], "Did you mean resnet18"),
    (["--data", "no/such/folder"], "--data no/such/folder does not exist"),
])
def test_bad_flags_fail_fast_with_one_line_and_exit_code_2(capsys, argv, message):
    code, err = run_cli(capsys, "train", *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_class_folder_without_images_is_named(capsys, tmp_path):
    data = photo_folders(tmp_path / "data")
    (data / "wasps").mkdir()
    code, err = run_cli(capsys, "train", "--data", str(data), "--project", str(tmp_path / "runs"))
    assert code == 2 and "wasps" in err and "Traceback" not in err


def test_a_csv_without_a_label_column_cannot_be_trained_on(capsys, tmp_path):
    photo_folders(tmp_path / "images")
    (tmp_path / "test.csv").write_text("image\nants/0.jpg\nbees/1.jpg\n")
    code, err = run_cli(capsys, "train", "--data", str(tmp_path / "test.csv"), "--images", str(tmp_path / "images"))
    assert code == 2 and "no labelled training images" in err


def test_a_csv_row_pointing_at_a_missing_file_is_named(capsys, tmp_path):
    photo_folders(tmp_path / "images")
    (tmp_path / "train.csv").write_text("image,label\nants/0.jpg,ants\nants/nope.jpg,ants\nbees/1.jpg,bees\n")
    code, err = run_cli(capsys, "train", "--data", str(tmp_path / "train.csv"), "--images", str(tmp_path / "images"))
    assert code == 2 and "row 3" in err and "nope.jpg" in err


def test_bad_images_are_skipped_and_counted_not_fatal(capsys, tmp_path):
    data = photo_folders(tmp_path / "data")
    (data / "ants" / "broken.jpg").write_bytes(b"not a jpeg at all")
    main(["train", "--data", str(data), "--model", "lenet_relu", "--image-size", "32", "--epochs", "1",
          "--batch-size", "4", "--quiet", "--project", str(tmp_path / "runs"), "--workers", "0"])
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())
    assert [p.endswith("broken.jpg") for p in summary["skipped_images"]] == [True]
    assert "skipped 1 unreadable images" in err


def test_train_on_photo_folders_with_a_csv_and_val_split(capsys, tmp_path):
    photo_folders(tmp_path / "images", per_class=10)
    rows = [f"{c}/{i}.jpg,{c}" for c in ("ants", "bees") for i in range(10)]
    (tmp_path / "train.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    main(["train", "--data", str(tmp_path / "train.csv"), "--images", str(tmp_path / "images"), "--val-split", "0.2",
          "--model", "lenet_relu", "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--quiet",
          "--project", str(tmp_path / "runs"), "--workers", "1"])
    summary = json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())
    assert summary["train_images"] == 16 and summary["val_images"] == 4
    assert summary["classes"] == ["ants", "bees"]


def test_models_lists_classic_and_torchvision_names(capsys):
    main(["models", "resnet"])
    out = capsys.readouterr().out
    assert "resnet18_d2l" in out and "resnet18" in out and "timm:resnet18" in out
    assert "lenet" not in out and "vgg11" not in out  # only names containing the filter


def test_without_a_cache_a_file_that_breaks_mid_run_is_skipped_and_counted(capsys, tmp_path):
    data = photo_folders(tmp_path / "data", per_class=8)
    (data / "bees" / "3.jpg").write_bytes(b"\xff\xd8 truncated")  # decoded only when a batch needs it
    main(["train", "--data", str(data), "--cache", "none", "--val-split", "0.25", "--model", "lenet_relu",
          "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--quiet", "--workers", "2",
          "--project", str(tmp_path / "runs")])
    summary = json.loads((tmp_path / "runs" / "exp" / "summary.json").read_text())
    assert len(summary["skipped_images"]) == 1 and summary["skipped_images"][0].endswith("3.jpg")
    assert summary["epochs_run"] == 2


# --- start-up: building the parser imports no heavy library ------------------------------------

def test_building_the_parser_imports_no_heavy_library():
    """`visionfit --help` must not pay for torch: the commands import what they need when they run."""
    heavy = ["torch", "torchvision", "timm", "matplotlib", "safetensors", "numpy", "yaml", "onnx"]
    code = ("import sys; from visionfit.cli import build_parser; build_parser(); "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    src = str(Path(visionfit.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": src, "PATH": ""}).stdout
    assert out.strip() == "[]"


# --- help states every default ------------------------------------------------------------------

def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return DefaultsFormatter(parser.prog)._get_help_string(action)


def help_page(capsys, command: str) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare word by word


def test_every_train_flag_states_its_default_from_the_config_field():
    train = subcommands()["train"]
    by_dest = {action.dest: action for action in train._actions}
    for kind in SECTIONS.values():
        for f in dataclasses.fields(kind):
            text = shown_help(train, by_dest[f.name])
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assert text.count("default:") == 1, text
            if default is not None:
                assert text.endswith(f"(default: {describe(default)})"), text


def test_train_help_reads_naturally(capsys):
    page = help_page(capsys, "train")
    for fragment in ["passes over the training data; default: the recipe's (10; d2l's for the classic nets)",
                     "peak learning rate (for sgd; adam/adamw/lamb usually want about 0.001, lion 3-10x less), or auto: run the LR "
                     "finder first and train with its suggestion; default: the recipe's (0.05)",
                     "Nesterov momentum for sgd (default: off)",
                     "(e.g. act=relu) (default: none)", "--images IMAGES root folder for relative image paths in a "
                     "CSV (default: none)", "default: the embedded MNIST sample --images"]:
        assert fragment in page


@pytest.mark.parametrize("command, fragment", [
    ("predict", "CSV to write (default: predictions.csv; one image without -o is only printed)"),
    ("predict", "images per forward pass (default: 64)"),
    ("predict", "(default: full)"),
    ("eval", "cpu, cuda, cuda:N or mps (default: auto)"),
    ("export", "largest allowed |logit difference| (default: 0.0001)"),
    ("show-data", "images per row (default: 8)"),
    ("show-data", "split to draw from (default: train)"),
    ("summary", "(e.g. act=relu) (default: none)"),
])
def test_other_commands_state_their_argparse_defaults(capsys, command, fragment):
    assert fragment in help_page(capsys, command)


def test_no_flag_states_its_default_twice():
    for name, parser in subcommands().items():
        for action in parser._actions:
            text = shown_help(parser, action) or ""
            assert text.count("default:") <= 1 and "(default " not in text, f"{name} {action.option_strings}: {text}"


# --- a bug is one line, exit code 1; an interrupt exits 130 --------------------------------------

def test_a_bug_is_one_line_naming_its_type_and_exit_code_1(capsys, monkeypatch):
    def broken(args):
        raise KeyError("class_names")

    monkeypatch.delenv("VISIONFIT_DEBUG", raising=False)
    monkeypatch.setattr(train_command, "run_models", broken)
    assert run_cli(capsys, "models") == (1, "visionfit: internal error: KeyError: 'class_names' (a bug: please "
                                            "report it; set VISIONFIT_DEBUG=1 to see the traceback)\n")


def test_a_bug_with_a_long_message_keeps_its_first_line(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("shapes differ\n  at layer 3\n  at layer 4")

    monkeypatch.delenv("VISIONFIT_DEBUG", raising=False)
    monkeypatch.setattr(train_command, "run_models", broken)
    code, err = run_cli(capsys, "models")
    assert code == 1 and err.startswith("visionfit: internal error: RuntimeError: shapes differ (a bug")
    assert len(err.splitlines()) == 1


def test_visionfit_debug_shows_the_bug_itself(monkeypatch):
    def broken(args):
        raise KeyError("class_names")

    monkeypatch.setenv("VISIONFIT_DEBUG", "1")
    monkeypatch.setattr(train_command, "run_models", broken)
    with pytest.raises(KeyError, match="class_names"):
        main(["models"])


def test_an_interrupt_exits_130_in_one_line(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "run_models", interrupted)
    assert run_cli(capsys, "models") == (130, "visionfit: interrupted\n")


# --- every flag is a keyword of the command's Python function -----------------------------------

API = {"train": ["fit"], "lr-find": ["lr_find"], "eval": ["evaluate"], "predict": ["predict"], "export": ["export_onnx", "export_torchscript", "export_int8", "push_to_hub"],
       "summary": ["summary"], "show-data": ["show_data"], "compare": ["compare"], "models": ["list_models"],
       "check-data": ["check_data"], "serve": ["serve"]}
# Flags whose Python spelling is a choice of function, or a step before the call, rather than a keyword.
NOT_KEYWORDS = {
    ("train", "config"): "Config.from_file(path, **options) reads the file; fit takes the options",
    ("export", "onnx"): "export_onnx(model, path)",
    ("export", "torchscript"): "export_torchscript(model, path)",
    ("export", "quantize"): "export_int8(model, path)",
    ("export", "hub_folder"): "export_hub_folder(model, folder)",
    ("export", "push_to_hub"): "push_to_hub(folder, repo_id)",
    ("models", "all"): "printing only: list_models returns every name",
}
CONFIG_FIELDS = {f.name for kind in SECTIONS.values() for f in dataclasses.fields(kind)}


def keywords(function) -> set[str]:
    """The keyword names `function` takes; with **options, the config fields it hands to Config.from_options."""
    parameters = inspect.signature(function).parameters.values()
    names = {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names | CONFIG_FIELDS if any(p.kind is p.VAR_KEYWORD for p in parameters) else names


def cli_options() -> list:
    """(command, dest) for every argument of every command."""
    return [(name, action.dest) for name, parser in subcommands().items() for action in parser._actions
            if not isinstance(action, argparse._HelpAction) and (name, action.dest) not in NOT_KEYWORDS]


@pytest.mark.parametrize("command, dest", cli_options())
def test_every_flag_is_a_keyword_of_the_commands_python_function(command, dest):
    accepted = set().union(*(keywords(getattr(visionfit, name)) for name in API[command]))
    assert dest in accepted, f"visionfit {command}: {dest} is not a keyword of {' or '.join(API[command])}"


def test_summary_takes_input_size_and_still_the_old_input():
    parser = build_parser()
    for flag in ("--input-size", "--input"):
        assert parser.parse_args(["summary", "lenet", flag, "1,1,28,28"]).input_size == (1, 1, 28, 28)


# --- train --config -----------------------------------------------------------------------------

def test_a_saved_config_yaml_reruns_with_the_flags_given_winning(capsys, tmp_path):
    data, runs = photo_folders(tmp_path / "data"), tmp_path / "runs"
    main(["train", "--data", str(data), "--model", "lenet_relu", "--image-size", "16", "--epochs", "1",
          "--batch-size", "4", "--lr", "0.02", "--quiet", "--project", str(runs), "--workers", "0"])
    main(["train", "--config", str(runs / "exp" / "config.yaml"), "--epochs", "2", "--name", "again"])
    first, again = (yaml.safe_load((runs / name / "config.yaml").read_text()) for name in ("exp", "again"))
    assert (again["train"]["epochs"], again["run"]["name"]) == (2, "again")
    assert again["train"]["lr"] == 0.02 and again["data"]["batch_size"] == 4  # from the file, not the defaults
    first["train"]["epochs"], first["run"]["name"] = 2, "again"
    resolved_first, resolved_again = first.pop("resolved"), again.pop("resolved")
    assert again == first
    assert resolved_again["preprocess"] == resolved_first["preprocess"]  # the same data resolves the same
    assert resolved_again["run_dir"] == str(runs / "again")


def test_config_and_resume_together_are_refused(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  epochs: 2\n")
    code, err = run_cli(capsys, "train", "--config", str(tmp_path / "run.yaml"), "--resume", str(tmp_path / "exp"))
    assert code == 2 and "a resumed run keeps its own saved settings" in err


@pytest.mark.parametrize("command", ["train", "lr-find"])
def test_train_and_lr_find_leave_the_process_group_even_when_they_fail(monkeypatch, capsys, command):
    """Under torchrun the process group is destroyed before exit, whether the run ended or failed."""
    from visionfit import finding, fitting
    from visionfit.errors import ConfigError
    from visionfit.train import distributed

    def failing(*args, **kwargs):
        raise ConfigError("no data")

    left = []
    monkeypatch.setattr(fitting, "fit", failing)
    monkeypatch.setattr(finding, "lr_find", failing)
    monkeypatch.setattr(distributed, "shutdown_distributed", lambda: left.append(True))
    with pytest.raises(SystemExit):
        main([command, "--data", "nowhere"])
    assert left == [True] and "no data" in capsys.readouterr().err
