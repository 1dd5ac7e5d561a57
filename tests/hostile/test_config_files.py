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


def test_text_with_control_characters(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  lr: \x00\x01\n")
    assert "is not plain YAML" in config_error(capsys, tmp_path / "run.yaml")


def test_broken_yaml_names_the_line(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  lr: 0.1\n  epochs: [1, 2\n")
    assert "is not plain YAML (line " in config_error(capsys, tmp_path / "run.yaml")


def test_a_yaml_list(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("- data\n- train\n")
    assert "holds a list; it must be a mapping of sections" in config_error(capsys, tmp_path / "run.yaml")


def test_a_scalar_document(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("just some words\n")
    assert "holds text; it must be a mapping of sections" in config_error(capsys, tmp_path / "run.yaml")


def test_an_unknown_section(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("optimiser:\n  lr: 0.1\n")
    assert "unknown section 'optimiser'" in config_error(capsys, tmp_path / "run.yaml")


def test_a_section_that_is_not_a_mapping(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train: fast\n")
    assert "section 'train' holds text" in config_error(capsys, tmp_path / "run.yaml")


def test_an_unknown_key(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  epochz: 3\n")
    assert "unknown key train.epochz; did you mean train.epochs?" in config_error(capsys, tmp_path / "run.yaml")


def test_a_wrong_type(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  lr: fast\n")
    assert "train.lr must be a number, not 'fast'" in config_error(capsys, tmp_path / "run.yaml")


@pytest.mark.parametrize("value", [".nan", ".inf", "1e999", "1" + "0" * 400], ids=["nan", "inf", "1e999", "400-digit-int"])
def test_a_number_that_is_not_finite(capsys, tmp_path, value):
    (tmp_path / "run.yaml").write_text(f"train:\n  lr: {value}\n")
    assert "train.lr must be a number" in config_error(capsys, tmp_path / "run.yaml")


def test_an_empty_value_for_a_required_setting(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  epochs:\n")
    assert "train.epochs is empty" in config_error(capsys, tmp_path / "run.yaml")


def test_a_value_outside_the_choices(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("train:\n  amp: fp8\n")
    assert "train.amp is 'fp8'; it must be one of auto, bf16, fp16, off" in config_error(capsys, tmp_path / "run.yaml")


def test_resume_in_the_file(capsys, tmp_path):
    (tmp_path / "run.yaml").write_text("run:\n  resume: runs/exp\n")
    assert "a file cannot resume a run: use --resume runs/exp" in config_error(capsys, tmp_path / "run.yaml")


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
