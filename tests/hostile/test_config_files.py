"""Hostile --config files: careless and crafted YAML. Each is refused before any work, in one
line naming the file (and the key), and no file makes visionfit run code."""
import pytest

from .conftest import MARKER, cli_error


def config_error(capsys, path) -> str:
    line = cli_error(capsys, "train", "--config", path)
    assert f"--config {path}" in line
    return line


def test_a_missing_file(capsys, tmp_path):
    assert "does not exist" in config_error(capsys, tmp_path / "nope.yaml")


def test_a_directory(capsys, tmp_path):
    assert "is a folder" in config_error(capsys, tmp_path)


def test_binary_garbage(capsys, tmp_path):
    (tmp_path / "run.yaml").write_bytes(bytes(range(256)) * 4)
    assert "not a text file" in config_error(capsys, tmp_path / "run.yaml")


@pytest.mark.parametrize("text, message", [
    ("train:\n  lr: \x00\x01\n", "is not plain YAML"),
    ("train:\n  lr: 0.1\n  epochs: [1, 2\n", "is not plain YAML (line "),
    ("- data\n- train\n", "holds a list; it must be a mapping of sections"),
    ("just some words\n", "holds text; it must be a mapping of sections"),
    ("optimiser:\n  lr: 0.1\n", "unknown section 'optimiser'"),
    ("train: fast\n", "section 'train' holds text"),
    ("train:\n  epochz: 3\n", "unknown key train.epochz; did you mean train.epochs?"),
    ("train:\n  lr: fast\n", "train.lr must be a number, not 'fast'"),
    ("train:\n  accumulate:\n", "train.accumulate is empty"),
    ("train:\n  amp: fp8\n", "train.amp is 'fp8'; it must be one of auto, bf16, fp16, off"),
    ("run:\n  resume: runs/exp\n", "a file cannot resume a run: use --resume runs/exp"),
], ids=["control-characters", "broken-yaml", "yaml-list", "scalar-document", "unknown-section",
        "section-not-a-mapping", "unknown-key", "wrong-type", "empty-required-value", "outside-the-choices",
        "resume-in-the-file"])
def test_a_careless_file(capsys, tmp_path, text, message):
    (tmp_path / "run.yaml").write_text(text)
    assert message in config_error(capsys, tmp_path / "run.yaml")


@pytest.mark.parametrize("value", [".nan", ".inf", "1e999", "1" + "0" * 400], ids=["nan", "inf", "1e999", "400-digit-int"])
def test_a_number_that_is_not_finite(capsys, tmp_path, value):
    (tmp_path / "run.yaml").write_text(f"train:\n  lr: {value}\n")
    assert "train.lr must be a number" in config_error(capsys, tmp_path / "run.yaml")


def test_a_python_tag_runs_no_command(capsys, tmp_path):
    marker = tmp_path / MARKER
    (tmp_path / "run.yaml").write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "is not plain YAML" in config_error(capsys, tmp_path / "run.yaml")
    assert not marker.exists()


def test_a_python_tag_imports_no_module(capsys, tmp_path, crafted_module):
    (tmp_path / "run.yaml").write_text("model:\n  model_args: !!python/object/new:vf_crafted.Net []\n")
    assert "is not plain YAML" in config_error(capsys, tmp_path / "run.yaml")


def test_nested_aliases_in_model_args(capsys, tmp_path):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    (tmp_path / "run.yaml").write_text("model:\n  model_args:\n" + "".join(f"    {level}\n" for level in levels))
    assert "model.model_args must be a mapping of names to plain values" in config_error(capsys, tmp_path / "run.yaml")


def test_a_file_far_too_big_for_settings(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n" + "  # padding\n" * 200_000)
    assert "far more than settings take" in config_error(capsys, tmp_path / "run.yaml")
