"""run_dir: numbered folders claimed atomically, --project checks, the run lock, a run's files."""
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from visionfit.errors import ConfigError, OutputError
from visionfit.train.distributed import Distributed
from visionfit.train.run_dir import RunLock, check_project, create_numbered_dir, create_run_dir, run_files


def test_run_directories_are_numbered_and_named(tmp_path):
    one = Distributed()
    assert [create_run_dir(tmp_path, None, one).name for _ in range(3)] == ["exp", "exp2", "exp3"]
    assert [create_run_dir(tmp_path, "bars", one).name for _ in range(2)] == ["bars", "bars2"]
    assert all(path.is_dir() for path in tmp_path.iterdir())


def test_a_name_taken_by_a_file_is_skipped(tmp_path):
    (tmp_path / "exp").write_text("not a run")
    assert create_numbered_dir(tmp_path, "exp") == tmp_path / "exp2"


def test_writers_starting_at_once_never_share_a_folder(tmp_path):
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda _: create_numbered_dir(tmp_path / "runs", "exp"), range(40)))
    assert len(set(made)) == 40
    assert {path.name for path in made} == {"exp", *(f"exp{n}" for n in range(2, 41))}


def test_a_project_under_a_file_is_an_output_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="while writing .*file/runs"):
        create_numbered_dir(tmp_path / "file" / "runs", "exp")


def test_check_project_refuses_files_and_data_folders_and_makes_nothing(tmp_path):
    (tmp_path / "runs.txt").write_text("")
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"^--project .*runs\.txt is a file; give a folder$"):
        check_project(tmp_path / "runs.txt")
    with pytest.raises(ConfigError, match="runs.txt is a file, so no folder can be made under it"):
        check_project(tmp_path / "runs.txt" / "runs")
    with pytest.raises(ConfigError, match="^--project .*imgs is inside the data folder .*imgs: .* read as data"):
        check_project(tmp_path / "imgs", data_folders=[tmp_path / "imgs"])
    with pytest.raises(ConfigError, match="inside the data folder"):
        check_project(str(tmp_path / "imgs" / "cat" / "runs"), data_folders=[None, str(tmp_path / "imgs")])
    check_project(tmp_path / "new" / "runs", data_folders=["mnist", None, tmp_path / "imgs"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "runs.txt"]


def test_a_second_writer_of_a_run_folder_is_refused_until_the_first_is_done(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(OutputError) as error:
            RunLock(tmp_path).__enter__()
        assert str(error.value) == (f"{tmp_path} is being written by another visionfit process (pid {os.getpid()}); "
                                    "wait for it or choose another --name")
    with RunLock(tmp_path):  # released on exit
        pass


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with RunLock(tmp_path):
            raise RuntimeError("the run crashed")
    with RunLock(tmp_path):
        pass


def test_a_model_in_a_run_folder_protects_the_runs_files(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "config.yaml").write_text("")
    names = [path.name for _, path in run_files(tmp_path / "exp" / "best.safetensors")]
    assert {"config.yaml", "metrics.csv", "last.ckpt", "previous.ckpt", "best.safetensors", "last.safetensors",
            "summary.json", "curves.png", "weights_report.txt", "weights_report.json", "MODEL_CARD.md", "lr_find.png",
            "lr_find.csv"} == set(names)
    assert run_files(tmp_path / "model.safetensors") == []
    assert run_files(Path("elsewhere") / "model.safetensors") == []
