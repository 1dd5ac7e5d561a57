"""`torchrun --max-restarts N`: a restarted worker group continues the run its first attempt began.

torchrun restarts every worker when one dies, with the same command line. Rank 0 of the first
attempt marks its run folder with a key that is the same for every attempt of one torchrun
invocation (its run id and the agent's pid, the workers' parent) and differs between
invocations; rank 0 of a restarted group finds the folder by that key and resumes it from
last.ckpt, or starts over in it when no epoch had finished.
"""
import os
from pathlib import Path

from ..files import write_text_atomic

ATTEMPT_FILE = ".torchrun"


def attempt_key() -> str | None:
    """This torchrun invocation's key, or None when torchrun did not start this process."""
    if "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        return None
    return f"{os.environ.get('TORCHELASTIC_RUN_ID', 'none')}/{os.getppid()}"


def is_restart() -> bool:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def mark_attempt(run_dir: Path, key: str) -> None:
    write_text_atomic(run_dir / ATTEMPT_FILE, key)


def earlier_attempt(project: Path, key: str) -> Path | None:
    """The run folder under `project` that an earlier attempt of this invocation marked, if any."""
    if not project.is_dir():
        return None
    for folder in sorted(project.iterdir()):
        marker = folder / ATTEMPT_FILE
        if marker.is_file() and marker.read_text(encoding="utf-8") == key:
            return folder
    return None
