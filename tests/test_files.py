"""files: atomic writes (mode, cleanup, failures as one clear error) and the output-vs-input checks."""
import errno
import os
import shutil
import stat
from collections import namedtuple

import pytest
import torch

import visionfit
from visionfit.checkpoints import save_model_file, save_resume_state
from visionfit.errors import ConfigError, OutputError
from visionfit.files import (atomic_path, check_outputs, refuse_inside, refuse_overwriting, require_writable_folder,
                             write_text_atomic)

DiskUsage = namedtuple("DiskUsage", "total used free")


def only_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask():
    """Set the process umask for one test; the previous one comes back afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def write_text(folder) -> str:
    write_text_atomic(folder / "summary.json", "text")
    return "summary.json"


def write_model(folder) -> str:
    model = visionfit.create_model("mlp", num_classes=2, in_channels=1)
    save_model_file(folder / "best.safetensors", model, {"architecture": "mlp"})
    return "best.safetensors"


def write_checkpoint(folder) -> str:
    save_resume_state(folder, {"epoch": 0, "model": {"w": torch.zeros(2)}}, keep_previous=False)
    return "last.ckpt"


@pytest.mark.parametrize("writer", [write_text, write_model, write_checkpoint])
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, writer, mask, mode):
    umask(mask)
    name = writer(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode
    assert only_files(tmp_path) == [name]


def test_the_new_bytes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    calls, fsync, replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", os.fstat(fd).st_size)), fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", os.path.basename(b))), replace(a, b)))
    write_text_atomic(tmp_path / "summary.json", "{}")
    assert calls == [("fsync", 2), ("replace", "summary.json")]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "best.safetensors"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert only_files(tmp_path) == ["best.safetensors"]


def test_no_space_left_is_one_clear_error_and_the_previous_file_is_intact(tmp_path):
    target = tmp_path / "exp" / "last.ckpt"
    target.parent.mkdir()
    target.write_text("epoch 1")
    with pytest.raises(OutputError) as error:
        with atomic_path(target) as tmp:
            tmp.write_text("epoch 2, half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(error.value) == (f"no space left on device while writing {target}; free space in {target.parent} "
                                f"or choose another output folder; the previous last.ckpt is intact")
    assert target.read_text() == "epoch 1" and only_files(target.parent) == ["last.ckpt"]


def test_a_new_file_that_cannot_be_written_says_nothing_was_written(tmp_path):
    with pytest.raises(OutputError, match=r"^disk quota exceeded while writing .*new\.csv; free space .*; nothing was written$"):
        with atomic_path(tmp_path / "new.csv"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    assert only_files(tmp_path) == []


def test_the_disk_error_inside_a_libraries_own_exception_is_found(tmp_path, monkeypatch):
    # safetensors (Rust) puts "(os error N)" in its message; torch's zip writer says only
    # "unexpected pos", with the OSError as its context or nothing at all.
    with pytest.raises(OutputError, match="^read-only file system while writing .*; make .* writable"):
        with atomic_path(tmp_path / "m.safetensors"):
            raise RuntimeError("Error while serializing: I/O error: Read-only file system (os error 30)")
    with pytest.raises(OutputError, match="^no space left on device"):
        with atomic_path(tmp_path / "last.ckpt"):
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 726")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: DiskUsage(1 << 30, 1 << 30, 0))
    with pytest.raises(OutputError, match="^no space left on device"):
        with atomic_path(tmp_path / "last.ckpt"):
            raise RuntimeError("unexpected pos 832 vs 726")


def test_an_error_that_is_not_about_the_disk_stays_itself(tmp_path):
    with pytest.raises(ValueError, match="a bug"):
        with atomic_path(tmp_path / "out"):
            raise ValueError("a bug")


def test_a_folder_under_a_file_is_an_output_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError) as error:
        write_text_atomic(tmp_path / "file" / "sub" / "x.txt", "text")
    assert str(error.value) == (f"not a directory while writing {tmp_path / 'file' / 'sub' / 'x.txt'}; "
                                "choose another output path; nothing was written")


@pytest.fixture
def model(tmp_path):
    (tmp_path / "runs" / "exp").mkdir(parents=True)
    path = tmp_path / "runs" / "exp" / "best.safetensors"
    path.write_bytes(b"weights")
    return path


def test_an_output_that_is_the_model_under_another_spelling_is_refused(model, tmp_path):
    (tmp_path / "link.safetensors").symlink_to(model)
    os.link(model, tmp_path / "hard.safetensors")
    protected = [("the model file itself", model)]
    for spelling in (model, tmp_path / "link.safetensors", tmp_path / "runs" / "x" / ".." / "exp" / "best.safetensors",
                     tmp_path / "hard.safetensors"):
        with pytest.raises(ConfigError, match=r"^-o .* is the model file itself.*; choose another -o path$"):
            refuse_overwriting({"-o": spelling}, protected)
    refuse_overwriting({"-o": tmp_path / "predictions.csv"}, protected)
    refuse_overwriting({"-o": tmp_path / "runs" / "exp" / "other.csv"}, protected)


def test_the_message_shows_the_protected_path_only_when_spelled_differently(model, tmp_path):
    with pytest.raises(ConfigError) as same:
        refuse_overwriting({"-o": model}, [("the model file itself", model)])
    assert str(same.value) == f"-o {model} is the model file itself; choose another -o path"
    (tmp_path / "link").symlink_to(model)
    with pytest.raises(ConfigError) as other:
        refuse_overwriting({"-o": tmp_path / "link"}, [("the model file itself", model)])
    assert str(other.value) == f"-o {tmp_path / 'link'} is the model file itself ({model}); choose another -o path"


def test_two_outputs_that_are_one_file_are_refused_even_before_it_exists(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match="--onnx .* and --torchscript .* are the same file"):
        refuse_overwriting({"--onnx": tmp_path / "m.x", "--torchscript": tmp_path / "out" / ".." / "m.x"})
    refuse_overwriting({"--onnx": tmp_path / "m.onnx", "--torchscript": tmp_path / "m.pt", "--other": None})


def test_check_outputs_refuses_a_folder_and_a_place_under_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="^-o .* is a folder; give the path of a file"):
        check_outputs({"-o": tmp_path})
    with pytest.raises(ConfigError, match=r"^-o .*file/sub/out\.csv: .*file is a file, so no folder can be made under it"):
        check_outputs({"-o": tmp_path / "file" / "sub" / "out.csv"})
    check_outputs({"-o": tmp_path / "new" / "deeper" / "out.csv"})
    assert only_files(tmp_path) == ["file"]  # checking makes nothing


def test_require_writable_folder_refuses_a_file(tmp_path):
    (tmp_path / "runs").write_text("")
    with pytest.raises(ConfigError, match=r"^--project .*runs is a file; give a folder$"):
        require_writable_folder("--project", tmp_path / "runs")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere; needs a non-root POSIX user")
def test_require_writable_folder_refuses_a_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write in .*locked \\(permission denied\\)"):
            require_writable_folder("--project", locked / "runs")
    finally:
        locked.chmod(0o700)


def test_refuse_inside_catches_the_folder_itself_and_what_lies_under_it(tmp_path):
    data = tmp_path / "imgs"
    (data / "cat").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(data)
    folders = [("the data folder", data), ("a dataset name", "mnist"), ("in-memory data", None)]
    for inside in (data, data / "cat", data / "runs", tmp_path / "alias" / "runs"):
        with pytest.raises(ConfigError, match="^--project .* is inside the data folder .*imgs: .* read as data"):
            refuse_inside(("--project", inside), folders)
    refuse_inside(("--project", tmp_path / "imgs2"), folders)  # a shared prefix is not inside
    refuse_inside(("--project", tmp_path / "runs"), folders)
