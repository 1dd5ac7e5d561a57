"""The run directory: where it may go, its numbered name, its lock, and summary.json last.

    check_project("runs", data_folders=["digits/"])   # before any data work
    run_dir = create_run_dir(Path("runs"), None, dist)  # runs/exp, runs/exp2, ... (or runs/<name>, <name>2, ...)
    with RunLock(run_dir):                              # one writer at a time, a resume included
        ...

A run directory holds RUN_FILES (see README): inference outputs must never replace them.
"""
import errno
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OutputError
from ..files import refuse_inside, require_writable_folder, write_text_atomic, writing

if TYPE_CHECKING:  # torch is not needed to name, make or lock a folder
    from .distributed import Distributed

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

MODEL_CARD = "MODEL_CARD.md"
RUN_FILES = ("config.yaml", "metrics.csv", "last.ckpt", "previous.ckpt", "best.safetensors", "last.safetensors",
             "summary.json", "curves.png", "weights_report.txt", "weights_report.json", MODEL_CARD, "lr_find.png",
             "lr_find.csv")
RUN_MARKERS = ("config.yaml", "last.ckpt")  # a folder with one of these beside a model file is a run directory
LOCK_FILE = ".lock"
PID_WIDTH = 20
# Windows locks are mandatory byte ranges: lock a byte past the pid, so another process can still read the pid.
WINDOWS_LOCK_OFFSET = 64


def check_project(project: str | Path, data_folders=()) -> None:
    """Refuse, before any data work, a --project that is a file, cannot be made or written,
    or lies inside one of `data_folders` (--data, --val-data; values that are not folders are ignored)."""
    require_writable_folder("--project", project)
    refuse_inside(("--project", project), [("the data folder", folder) for folder in data_folders])


def create_run_dir(project: Path, name: str | None, dist: "Distributed") -> Path:
    """Make the next free run directory on rank 0 and tell every rank its path.

    The folder is claimed by mkdir itself, so two processes starting at once never share one.
    """
    path = create_numbered_dir(project, name or "exp") if dist.is_main else None
    return Path(dist.broadcast_object(str(path) if path else None))


def create_numbered_dir(parent: Path, base: str) -> Path:
    """Make and return parent/base, else base2, base3, ...: the first that no one has made."""
    with writing(parent):
        parent.mkdir(parents=True, exist_ok=True)
        for candidate in _numbered(parent, base):
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:  # an earlier run's, or one made this instant by another process
                continue


def _numbered(parent: Path, base: str):
    yield parent / base
    n = 2
    while True:
        yield parent / f"{base}{n}"
        n += 1


def run_files(model_file: str | Path) -> list[tuple[str, Path]]:
    """(description, path) of the files of the run a model file belongs to; none outside a run directory."""
    folder = Path(model_file).parent
    if not any((folder / marker).is_file() for marker in RUN_MARKERS):
        return []
    return [(f"{name} of the model's run folder", folder / name) for name in RUN_FILES]


class RunLock:
    """Exclusive, non-blocking lock of a run directory, held while a run or a resume writes it.

    The kernel drops the lock when the process ends, however it ends (crash, kill -9), so a
    dead run never blocks a resume. The holder's pid is in the lock file, for the message.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        with writing(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                locked = _try_lock(fd)
                if locked:  # fixed width: the file is never truncated, so no shorter old pid shows through
                    os.write(fd, f"{os.getpid():<{PID_WIDTH}}".encode())
            except OSError:
                os.close(fd)
                raise
        if not locked:
            holder = os.read(fd, PID_WIDTH).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputError(f"{self.run_dir} is being written by another visionfit process (pid {holder}); "
                              f"wait for it or choose another --name")
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        _unlock(self.fd)  # the file stays: removing it would race a process that just opened it
        os.close(self.fd)
        self.fd = None


def _try_lock(fd: int) -> bool:
    """Take the lock if it is free; False when another process holds it."""
    if sys.platform != "win32":
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EDEADLOCK):
            raise
        return False
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)


def write_summary(run_dir: Path, summary: dict) -> None:
    """summary.json: what the run reached (train/report.py prints the lines a person reads)."""
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
