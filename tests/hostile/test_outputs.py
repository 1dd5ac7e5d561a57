"""Outputs that would destroy an input, and output places that cannot work.

Each case is refused before any work with one line naming the flag and the file, and the
file it would have replaced is byte for byte what it was.
"""
import os
import shutil
from pathlib import Path

import pytest

import visionfit
from visionfit.data.samples import DatasetSplits, Samples

from ..conftest import pattern_images
from ..infer.conftest import save_png
from .conftest import cli_error

CLASSES = ["left", "middle", "right"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """runs/exp (a trained run), imgs/<class>/<i>.png and labels.csv (image,label for those images)."""
    root = tmp_path_factory.mktemp("workspace")
    images, labels = pattern_images(24, seed=0)
    val_images, val_labels = pattern_images(12, seed=1)
    splits = DatasetSplits("bars", CLASSES, Samples(labels=labels, images=images),
                           Samples(labels=val_labels, images=val_images))
    visionfit.fit("lenet_relu", splits, project=str(root / "runs"), epochs=1, quiet=True, image_size=16, batch_size=16)
    lines = ["image,label"]
    for i, (pixels, label) in enumerate(zip(images[:9], labels[:9])):
        save_png(root / "imgs" / CLASSES[label] / f"{i}.png", pixels)
        lines.append(f"imgs/{CLASSES[label]}/{i}.png,{CLASSES[label]}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def ws(workspace, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the workspace as the working folder, so a test can never spoil another's."""
    copy = tmp_path / "ws"
    shutil.copytree(workspace, copy, symlinks=True)
    monkeypatch.chdir(copy)
    return copy


def unchanged(path: Path, before: bytes) -> bool:
    return path.read_bytes() == before


MODEL = Path("runs/exp/best.safetensors")


def test_predict_output_is_the_model(ws, capsys):
    before = MODEL.read_bytes()
    line = cli_error(capsys, "predict", MODEL, "imgs", "-o", MODEL)
    assert line == f"visionfit: error: -o {MODEL} is the model file itself; choose another -o path"
    assert unchanged(MODEL, before)


def test_predict_output_is_the_input_csv(ws, capsys):
    before = Path("labels.csv").read_bytes()
    line = cli_error(capsys, "predict", MODEL, "labels.csv", "-o", "labels.csv")
    assert line == "visionfit: error: -o labels.csv is the input file; choose another -o path"
    assert unchanged(Path("labels.csv"), before)


def test_predict_output_is_an_input_image(ws, capsys):
    image = Path("imgs/left/0.png")
    before = image.read_bytes()
    line = cli_error(capsys, "predict", MODEL, "imgs", "-o", image)
    assert line == f"visionfit: error: -o {image} is an input image; choose another -o path"
    assert unchanged(image, before)


def test_predict_output_is_a_symlink_to_the_model(ws, capsys):
    Path("model_link.safetensors").symlink_to(MODEL.resolve())
    line = cli_error(capsys, "predict", "model_link.safetensors", "imgs", "-o", "model_link.safetensors")
    assert line.endswith("-o model_link.safetensors is the model file itself; choose another -o path")
    line = cli_error(capsys, "predict", MODEL, "imgs", "-o", "model_link.safetensors")
    assert f"-o model_link.safetensors is the model file itself ({MODEL})" in line
    assert Path("model_link.safetensors").is_symlink()


def test_predict_output_is_the_model_through_dot_dot(ws, monkeypatch, capsys):
    monkeypatch.chdir("imgs")
    before = (ws / MODEL).read_bytes()
    line = cli_error(capsys, "predict", "../runs/exp/best.safetensors", ".",
                     "-o", "../runs/not_yet_made/../exp/best.safetensors")  # mkdir would make not_yet_made first
    assert line == ("visionfit: error: -o ../runs/not_yet_made/../exp/best.safetensors is the model file itself; "
                    "choose another -o path")
    assert unchanged(ws / MODEL, before) and not (ws / "runs" / "not_yet_made").exists()


def test_predict_output_is_a_file_of_the_models_run(ws, capsys):
    before = Path("runs/exp/last.ckpt").read_bytes()
    line = cli_error(capsys, "predict", MODEL, "imgs", "-o", "runs/exp/last.ckpt")
    assert line.endswith("-o runs/exp/last.ckpt is last.ckpt of the model's run folder; choose another -o path")
    assert unchanged(Path("runs/exp/last.ckpt"), before)


def test_predict_output_is_a_folder(ws, capsys):
    line = cli_error(capsys, "predict", MODEL, "labels.csv", "-o", "imgs")
    assert line == "visionfit: error: -o imgs is a folder; give the path of a file to write"


def test_predict_output_under_a_file(ws, capsys):
    line = cli_error(capsys, "predict", MODEL, "imgs", "-o", "labels.csv/predictions.csv")
    assert line == ("visionfit: error: -o labels.csv/predictions.csv: labels.csv is a file, so no folder can be made "
                    "under it; choose another path")


def test_export_onnx_is_the_model(ws, capsys):
    before = MODEL.read_bytes()
    line = cli_error(capsys, "export", MODEL, "--onnx", MODEL)
    assert line == f"visionfit: error: --onnx {MODEL} is the model file itself; choose another --onnx path"
    assert unchanged(MODEL, before)


def test_export_onnx_and_torchscript_are_one_file(ws, capsys):
    line = cli_error(capsys, "export", MODEL, "--onnx", "model.bin", "--torchscript", "./model.bin")
    assert line == ("visionfit: error: --onnx model.bin and --torchscript model.bin are the same file; "
                    "give each its own path")
    assert not Path("model.bin").exists()


def test_export_onnx_is_the_runs_resume_checkpoint(ws, capsys):
    before = Path("runs/exp/last.ckpt").read_bytes()
    line = cli_error(capsys, "export", MODEL, "--onnx", "runs/exp/last.ckpt")
    assert line.endswith("--onnx runs/exp/last.ckpt is last.ckpt of the model's run folder; choose another --onnx path")
    assert unchanged(Path("runs/exp/last.ckpt"), before)


def test_export_torchscript_is_the_check_data(ws, capsys):
    before = Path("labels.csv").read_bytes()
    line = cli_error(capsys, "export", MODEL, "--torchscript", "labels.csv", "--check", "--check-data", "labels.csv")
    assert line.endswith("--torchscript labels.csv is the input file; choose another --torchscript path")
    line = cli_error(capsys, "export", MODEL, "--torchscript", "imgs/middle/1.png", "--check", "--check-data", "imgs")
    assert line.endswith("--torchscript imgs/middle/1.png is an input image; choose another --torchscript path")
    assert unchanged(Path("labels.csv"), before)


def test_eval_report_would_replace_the_data_csv(ws, capsys):
    Path("report").mkdir()
    shutil.copy("labels.csv", "report/per_class.csv")
    before = Path("report/per_class.csv").read_bytes()
    line = cli_error(capsys, "eval", MODEL, "--data", "report/per_class.csv", "--images", ".", "--out", "report")
    assert line == "visionfit: error: --out report/per_class.csv is the input file; choose another --out path"
    assert unchanged(Path("report/per_class.csv"), before)


def test_eval_report_inside_the_data_folder(ws, capsys):
    line = cli_error(capsys, "eval", MODEL, "--data", "imgs", "--out", "imgs/left")
    assert line.startswith("visionfit: error: --out imgs/left is inside the --data folder imgs: what visionfit writes")
    assert sorted(p.name for p in Path("imgs/left").iterdir()) == ["0.png", "3.png", "6.png"]  # no PNG of ours


def test_eval_report_folder_is_the_model_file(ws, capsys):
    before = MODEL.read_bytes()
    line = cli_error(capsys, "eval", MODEL, "--data", "imgs", "--out", MODEL)
    assert line == f"visionfit: error: --out {MODEL} is a file; give a folder"
    assert unchanged(MODEL, before)


def test_train_project_is_a_file(ws, capsys):
    line = cli_error(capsys, "train", "--data", "no_such_folder", "--project", "labels.csv")
    assert line == "visionfit: error: --project labels.csv is a file; give a folder"  # refused before the data is read


def test_train_project_under_a_file(ws, capsys):
    line = cli_error(capsys, "train", "--data", "imgs", "--project", "labels.csv/runs")
    assert line == ("visionfit: error: --project labels.csv/runs: labels.csv is a file, so no folder can be made "
                    "under it; choose another path")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere; needs a non-root POSIX user")
def test_train_project_not_writable(ws, capsys):
    Path("locked").mkdir(mode=0o500)
    try:
        line = cli_error(capsys, "train", "--data", "imgs", "--project", "locked/runs")
    finally:
        Path("locked").chmod(0o700)
    assert line == "visionfit: error: --project: cannot write in locked (permission denied); choose a folder you can write"


def test_train_run_folder_inside_the_data_folder(ws, capsys):
    line = cli_error(capsys, "train", "--data", "imgs", "--project", "imgs")
    assert line.startswith("visionfit: error: --project imgs is inside the data folder imgs: what visionfit writes "
                           "there would be read as data next time")
    assert sorted(p.name for p in Path("imgs").iterdir()) == CLASSES


def test_train_default_project_inside_the_data_folder(ws, monkeypatch, capsys):
    monkeypatch.chdir("imgs")
    line = cli_error(capsys, "train", "--data", ".")  # runs/ would appear as a fourth class
    assert line.startswith("visionfit: error: --project runs is inside the data folder .:")
    assert sorted(p.name for p in Path(".").iterdir()) == CLASSES
