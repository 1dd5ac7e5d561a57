"""Writing files safely: atomically, with the usual mode, never over an input.

    with atomic_path("runs/exp/last.ckpt") as tmp:    # a writer fills tmp; it becomes the file at once
        torch.save(state, tmp)
    write_text_atomic("runs/exp/summary.json", text)
    check_outputs({"-o": out}, [("the model file itself", model_path)])   # before any work

A write that fails (a full disk, a read-only mount, no permission) raises OutputError
naming the file and what to do, and leaves the previous file at that path as it was.
"""
import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, OutputError, VisionfitError

Pathish = str | os.PathLike
# A writer that fails while the disk has less free than this ran out of space: torch's zip
# writer reports ENOSPC only as "unexpected pos N vs M". 1 MiB is more than one write's slack.
FULL_DISK_BYTES = 1 << 20
# Rust's std::io::Error (safetensors' writer) ends its message with "(os error N)".
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def atomic_path(path: Pathish):
    """Yields a temporary path in the same folder; renames it onto `path` on success.

    A kill at any moment leaves either the old file or the new one, never half of one; a
    failed write removes the temporary file. The file gets the mode any program's new
    file gets (0o666 less the umask), not tempfile's private 0o600.
    """
    path = Path(path)
    existed = path.exists()
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, mode = _new_temporary(path)
    try:
        yield tmp
        os.chmod(tmp, mode)  # a writer may swap in its own private file (safetensors renames one over tmp)
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except Exception as error:
        code = None if isinstance(error, VisionfitError) else _failed_write_errno(error, path.parent)
        if code is None:
            raise
        raise OutputError(_message(code, path, existed)) from error
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Pathish, text: str) -> None:
    """Write a small UTF-8 text file (a config, a summary) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def writing(path: Pathish):
    """Turns an OSError raised inside (making a folder, a file) into an OutputError naming `path`."""
    path = Path(path)
    existed = path.exists()
    try:
        yield
    except OSError as error:
        raise OutputError(_message(error.errno, path, existed, str(error))) from error


def _new_temporary(path: Path) -> tuple[Path, int]:
    """An empty file beside `path`, and the mode it got.

    It is made with mode 0o666 and the kernel applies the umask (and any default ACL of the
    folder), as for any other program's new file. Reading the umask instead would mean
    setting it for a moment, which races with other threads.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name[:100]}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:  # another writer drew the same name: draw again
            continue
        try:
            return tmp, stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)


def _flush_to_disk(path: Path) -> None:
    """fsync: the new file's bytes reach the disk before the rename makes it the file, so a power
    cut cannot leave an empty file under the old name, and a network disk reports a full disk now."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _failed_write_errno(error: BaseException, folder: Path) -> int | None:
    """The OS error behind a writer's exception, or None when the write did not fail on the disk.

    Writers wrap it differently: Python raises OSError, safetensors a SafetensorError whose
    message carries "(os error N)", torch a RuntimeError with the OSError as its context.
    """
    cause = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:  # without one it is a library's own complaint
            return cause.errno
        match = RUST_OS_ERROR.search(str(cause))
        if match:
            return int(match.group(1))
        cause = cause.__cause__ or cause.__context__
    if _free_bytes(folder) < FULL_DISK_BYTES:
        return errno.ENOSPC
    return None


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return FULL_DISK_BYTES  # cannot tell: not evidence of a full disk


def _message(code: int | None, path: Path, existed: bool, detail: str = "") -> str:
    reason = os.strerror(code) if code else detail
    reason = reason[:1].lower() + reason[1:]
    folder = path.parent
    if code in NO_SPACE:
        advice = f"free space in {folder} or choose another output folder"
    elif code in NOT_WRITABLE:
        advice = f"make {folder} writable or choose another output folder"
    else:
        advice = "choose another output path"
    kept = f"the previous {path.name} is intact" if existed else "nothing was written"
    return f"{reason} while writing {path}; {advice}; {kept}"


def check_outputs(outputs: Mapping[str, Pathish | None] | Iterable[tuple[str, Pathish | None]],
                  protected: Iterable[tuple[str, Pathish]] = ()) -> None:
    """Refuse, before any work, outputs that are folders, cannot be written, or would replace an input.

    outputs: flag -> file to write (None: not written). protected: (description, path) of
    every file the command reads, e.g. ("the model file itself", "runs/exp/best.safetensors").
    """
    pairs, folders_checked = _pairs(outputs), set()
    for flag, path in pairs:
        if path.is_dir():
            raise ConfigError(f"{flag} {path} is a folder; give the path of a file to write")
        if path.parent not in folders_checked:
            require_writable_folder(flag, path.parent, given=path)
            folders_checked.add(path.parent)
    refuse_overwriting(pairs, protected)


def refuse_overwriting(outputs: Mapping[str, Pathish | None] | Iterable[tuple[str, Pathish | None]],
                       protected: Iterable[tuple[str, Pathish]] = ()) -> None:
    """Raise ConfigError when an output is an input (or another output) under any spelling.

    Symlinks and `..` are resolved; an existing output is compared by identity (os.stat),
    which also catches hard links and case-insensitive file systems.
    """
    pairs = _pairs(outputs)
    for i, (flag, path) in enumerate(pairs):
        for other_flag, other in pairs[i + 1:]:
            if _same_file(path, other):
                raise ConfigError(f"{flag} {path} and {other_flag} {other} are the same file; give each its own path")
    existing = [(flag, path, identity) for flag, path in pairs if (identity := _identity(path)) is not None]
    if not existing:
        return  # an output that does not exist yet cannot replace anything
    for label, source in protected:
        identity = _identity(source)
        for flag, path, output_identity in existing:
            if identity is not None and identity == output_identity:
                spelled = "" if os.path.normpath(path) == os.path.normpath(source) else f" ({source})"
                raise ConfigError(f"{flag} {path} is {label}{spelled}; choose another {flag} path")


def refuse_inside(output: tuple[str, Pathish], folders: Iterable[tuple[str, Pathish | None]]) -> None:
    """Raise ConfigError when the output folder is one of `folders` or lies inside one.

    What for: files written into a data folder become data (a run folder inside the class
    folders becomes a class next time; eval's PNGs become images of a class).
    folders: (description, path); entries that are not existing folders are ignored.
    """
    flag, folder = output
    real = os.path.realpath(folder)
    for label, data in folders:
        if not isinstance(data, (str, os.PathLike)) or not os.path.isdir(data):
            continue
        data_real = os.path.realpath(data)
        if os.path.commonpath([real, data_real]) == data_real:
            raise ConfigError(f"{flag} {folder} is inside {label} {data}: what visionfit writes there would be "
                              f"read as data next time; choose a folder outside it")


def require_writable_folder(flag: str, folder: Pathish, given: Pathish | None = None) -> None:
    """Raise ConfigError unless `folder` exists or can be made, and files can be written in it.

    given: what the user passed to `flag`, when it is a file to write in `folder`.
    Writability is tried, not guessed: a temporary file is made and removed in the nearest
    folder that exists (permissions, ACLs, read-only mounts and root all answer truthfully).
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if given is None and existing == folder and not folder.is_dir():
        raise ConfigError(f"{flag} {folder} is a file; give a folder")
    if not existing.is_dir():
        raise ConfigError(f"{flag} {given or folder}: {existing} is a file, so no folder can be made under it; "
                          f"choose another path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ConfigError(f"{flag}: cannot write in {existing} ({reason[:1].lower() + reason[1:]}); "
                          f"choose a folder you can write") from error


def _pairs(outputs) -> list[tuple[str, Path]]:
    items = outputs.items() if isinstance(outputs, Mapping) else outputs
    return [(flag, Path(path)) for flag, path in items if path is not None]


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _identity(path: Pathish) -> tuple[int, int] | None:
    """(device, inode) of the file `path` names, or would name once its folders exist: writing
    runs/new/../exp/best.safetensors makes runs/new, and then replaces runs/exp/best.safetensors."""
    for spelling in (path, os.path.realpath(path)):
        try:
            info = os.stat(spelling)
        except (OSError, ValueError):  # missing, or a name the OS cannot take
            continue
        return info.st_dev, info.st_ino
    return None
