"""Two processes writing one run folder: the second is refused with the holder's pid, and
a holder that dies (even by kill -9) leaves the folder free for the next writer."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import visionfit
from visionfit.errors import OutputError
from visionfit.train.run_dir import RunLock, create_numbered_dir

HOLDER = textwrap.dedent("""
    import sys, time
    from visionfit.train.run_dir import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    """Start another process that holds the lock of tmp_path/runs/exp; returns (run folder, process)."""
    run = create_numbered_dir(tmp_path / "runs", "exp")
    env = {**os.environ, "PYTHONPATH": str(Path(visionfit.__file__).parents[1])}
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout.readline().strip() == "locked"
        yield run, process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 and flock semantics are POSIX")
def test_a_second_writer_is_refused_and_a_killed_one_frees_the_folder(holder):
    run, process = holder
    with pytest.raises(OutputError) as error:
        with RunLock(run):
            pass
    assert str(error.value) == (f"{run} is being written by another visionfit process (pid {process.pid}); "
                                "wait for it or choose another --name")
    process.kill()  # SIGKILL: no cleanup code runs; the kernel releases the lock
    process.wait()
    with RunLock(run):
        assert (run / ".lock").read_text().strip() == str(os.getpid())


def test_runs_started_at_once_get_their_own_folders(tmp_path):
    script = "import sys; from pathlib import Path; from visionfit.train.run_dir import create_numbered_dir; " \
             "print(create_numbered_dir(Path(sys.argv[1]), 'exp').name)"
    env = {**os.environ, "PYTHONPATH": str(Path(visionfit.__file__).parents[1])}
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "runs")], stdout=subprocess.PIPE,
                                  text=True, env=env) for _ in range(4)]
    names = sorted(process.communicate()[0].strip() for process in processes)
    assert names == ["exp", "exp2", "exp3", "exp4"]
