"""Damaged resume checkpoints: a bad last.ckpt falls back to previous.ckpt with one line on
stderr and the run goes on; with no usable checkpoint left, one error line names both files.

A crafted last.ckpt that names a class in `vf_crafted` is refused by the weights-only loader
without importing it (the `crafted_module` fixture checks).
"""
import io
import re
import shutil
import zipfile

import pytest
import torch

from visionfit.checkpoints import load_resume_state
from visionfit.cli import main

from .conftest import cli_error

CRAFTED_PICKLE = b"\x80\x02cvf_crafted\nNet\n)\x81."  # protocol 2: vf_crafted.Net() -- importing it runs code


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-epoch run on the embedded sample: last.ckpt holds epoch 2, previous.ckpt epoch 1."""
    project = tmp_path_factory.mktemp("finished")
    main(["train", "--model", "mlp", "--max-per-class", "10", "--image-size", "16", "--batch-size", "16",
          "--epochs", "2", "--workers", "0", "--quiet", "--project", str(project)])
    return project / "exp"


@pytest.fixture
def run(finished_run, tmp_path, capsys):
    capsys.readouterr()  # the fixture's own training output
    copy = tmp_path / "runs" / "exp"
    shutil.copytree(finished_run, copy)
    return copy


def crafted(checkpoint: bytes) -> bytes:
    """The torch zip of `checkpoint` with its pickle swapped for one that builds a vf_crafted.Net."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(checkpoint)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            data = CRAFTED_PICKLE if entry.filename.endswith("/data.pkl") else source.read(entry)
            target.writestr(entry.filename, data)
    return out.getvalue()


def without_key(path, key: str) -> None:
    state = torch.load(path, weights_only=True)
    del state[key]
    torch.save(state, path)


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "zero_bytes": lambda p: p.write_bytes(b""),
    "text_file": lambda p: p.write_text("epoch: 2\nthis is not a checkpoint\n"),
    "missing_key": lambda p: without_key(p, "optimizer"),
    "pickled_custom_object": lambda p: p.write_bytes(crafted(p.read_bytes())),
    "gone": lambda p: p.unlink(),  # killed between the two renames of a save
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_last_ckpt_resumes_from_previous(capsys, crafted_module, run, damage):
    damage(run / "last.ckpt")
    main(["train", "--resume", str(run)])
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "previous.ckpt" in line]
    assert len(said) == 1 and "Traceback" not in err
    assert re.fullmatch(re.escape(str(run / "last.ckpt")) + r" is (unreadable \(.+\)|missing); "
                        r"resuming from previous\.ckpt \(epoch 1\)", said[0]), said[0]
    state = load_resume_state(run)
    assert state["epoch"] == 1 and [row["epoch"] for row in state["history"]] == [1, 2]


def test_a_crafted_last_ckpt_is_named_as_refused(capsys, crafted_module, run):
    DAMAGE["pickled_custom_object"](run / "last.ckpt")
    main(["train", "--resume", str(run)])
    assert "the weights-only loader refused it: Unsupported global: GLOBAL vf_crafted.Net" in capsys.readouterr().err


@pytest.mark.parametrize("last, previous", [
    ("truncated", "text_file"),
    ("zero_bytes", "gone"),
    ("pickled_custom_object", "pickled_custom_object"),
], ids=["truncated_and_text", "empty_and_no_previous", "both_crafted"])
def test_with_no_usable_checkpoint_one_line_names_both_files(capsys, crafted_module, run, last, previous):
    DAMAGE[last](run / "last.ckpt")
    DAMAGE[previous](run / "previous.ckpt")
    line = cli_error(capsys, "train", "--resume", run)
    assert line.startswith(f"visionfit: error: cannot resume {run}: {run / 'last.ckpt'} is ")
    assert f"and {run / 'previous.ckpt'} is " in line
    assert line.endswith(f"start a new run without --resume, or from these weights with --weights "
                         f"{run / 'last.safetensors'}")


def edited_record(run, edit) -> None:
    """Rewrite both checkpoints of `run` with their recorded settings changed by edit(record)."""
    for name in ("last.ckpt", "previous.ckpt"):
        state = torch.load(run / name, weights_only=True)
        edit(state["config"])
        torch.save(state, run / name)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["resolved"]["input"].update(store_shape=[100_000, 100_000]),
     r"recorded settings are incomplete or from another visionfit version .*image sides"),
    (lambda r: r["resolved"]["input"].update(pad=10 ** 9), r"pad 1000000000 and rotation 0.0 are out of range"),
    (lambda r: r["resolved"]["model"].update(architecture="vf_crafted:Net"),
     r"names its architecture 'vf_crafted:Net', code outside visionfit"),
    (lambda r: r["resolved"]["model"].update(args={"checkpoint_path": "/etc/passwd"}),
     r"checkpoint_path"),
    (lambda r: r["resolved"]["model"].update(in_channels=100_000_000), r"do not fit architecture|in_channels"),
    (lambda r: r["resolved"].pop("input"), r"recorded settings are incomplete"),
], ids=["huge-store-shape", "huge-pad", "code-architecture", "file-opening-argument", "huge-channels",
        "no-input-plan"])
def test_a_checkpoint_whose_record_was_edited_is_refused_before_any_work(run, capsys, crafted_module, edit, message):
    edited_record(run, edit)
    line = cli_error(capsys, "train", "--resume", run, "--epochs", "3")
    assert re.search(message, line), line
