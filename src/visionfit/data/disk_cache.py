"""Decoded stores kept on disk between runs, so a second run on the same files skips decoding.

    cache = disk_cache_for(config.data)                        # None with --no-disk-cache or --cache none
    store = cached_store(samples, spec, lambda: build_store(...), cache)

An entry is `<folder>/<key>/`: pixels.u8 (the N x C x H x W uint8 images, raw), labels.npy and
meta.json. The key is a sha256 of everything the pixels depend on: each file's absolute path,
size, mtime and (when the scan read it) content hash, the labels and origins, and `spec` (how
the files were turned into pixels). A hit maps pixels.u8 instead of decoding: the OS page cache
then serves a run that follows at once. Entries are written to a temporary folder and renamed
into place, so a killed run leaves nothing that a later run would use. The folder is
$VISIONFIT_CACHE, else the user cache folder; past `cap_bytes` the least recently used entries
go. Only file-backed, equal-size stores are kept: array samples are in RAM already.
"""
import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import PIL
import torch

from ..files import refuse_inside
from .samples import Samples
from .store import ImageStore
from .plan import MAX_STORED_SIDE

log = logging.getLogger(__name__)

CACHE_VARIABLE = "VISIONFIT_CACHE"
STORE_FORMAT = 1  # of an entry's files; part of the key, so a new layout never reads an old one
PIXELS, LABELS, META, STATS = "pixels.u8", "labels.npy", "meta.json", "stats.json"
STATS_BYTES = 4096  # two lists of at most 3 numbers
TEMPORARY_PREFIX = ".tmp-"
STALE_TEMPORARY_S = 3600  # a temporary folder this old belongs to a killed run (a write takes seconds)
GB = 10**9
META_BYTES, META_BYTES_PER_SAMPLE = 1 << 20, 1 << 12  # bounds on meta.json: a spec, and a reason per skipped file
NPY_HEADER_BYTES = 4096  # more than any .npy header numpy writes
_said_too_big: set[Path] = set()  # folders whose cap was already reported as too small, once per process


@dataclass(frozen=True)
class DiskCache:
    """Where decoded stores are kept, how many bytes they may take, and the data folders the
    cache must stay out of (what is written inside a data folder would be read as data)."""

    folder: Path
    cap_bytes: int
    data_folders: tuple = ()


def disk_cache_for(data_cfg) -> DiskCache | None:
    """The cache a run uses, or None: with --no-disk-cache, and with --cache none (images are
    then decoded from disk on purpose)."""
    if not data_cfg.disk_cache or data_cfg.cache == "none":
        return None
    folders = tuple(("the data folder", path) for path in (data_cfg.data, data_cfg.images, data_cfg.val_data)
                    if isinstance(path, (str, os.PathLike)))
    return DiskCache(cache_folder(), int(data_cfg.disk_cache_gb * GB), folders)


def cache_folder() -> Path:
    """$VISIONFIT_CACHE, else the platform's user cache folder (XDG_CACHE_HOME on Linux)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "visionfit" / "Cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "visionfit"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "visionfit"
    return base / "stores"


def cached_store(samples: Samples, spec: dict, build: Callable[[], ImageStore], cache: DiskCache | None) -> ImageStore:
    """The store `build` makes from `samples`, read from the disk cache when an entry matches.

    spec: plain JSON values saying how files become pixels (channels, sizes, preprocessing);
    a different spec is a different entry. A miss builds and, when the store is uniform,
    writes an entry; a write that fails is logged and the run goes on with the built store.
    """
    if cache is None or samples.paths is None or not len(samples):
        return build()
    refuse_inside((CACHE_VARIABLE, cache.folder), cache.data_folders)
    key = store_key(samples, spec)
    entry = cache.folder / key
    if (entry / META).is_file():
        store = _read_or_discard(entry, samples, spec)
        if store is not None:
            return store
    store = build()
    if store.uniform:
        _write_entry(cache, key, store, samples, spec)
    return store


def store_key(samples: Samples, spec: dict) -> str:
    """sha256 hex of what the decoded pixels depend on (see the module docstring)."""
    digest = hashlib.sha256()
    header = {"format": STORE_FORMAT, "pillow": PIL.__version__, "spec": spec, "count": len(samples),
              "labels_shape": list(samples.labels.shape)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(samples.labels, dtype=np.int64).tobytes())
    scan = samples.scan
    for row, (path, origin) in enumerate(zip(samples.paths, samples.origin)):
        # The content hash or fault the scan found (it read every byte already), and the file's
        # stamp: a touched, resized or rewritten file makes another key.
        found = "" if scan is None else (scan.keys[row].hex() if scan.keys[row] else repr(scan.faults[row]))
        digest.update(json.dumps([os.path.abspath(path), origin, _stamp(path), found]).encode())
    return digest.hexdigest()


def _stamp(path) -> list[int]:
    """[size in bytes, mtime in ns] of a file, [-1, -1] when it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except OSError:
        return [-1, -1]
    return [info.st_size, info.st_mtime_ns]


class _Unusable(Exception):
    """An entry that does not hold what its key promises: removed, and the store rebuilt."""


def _read_or_discard(entry: Path, samples: Samples, spec: dict) -> ImageStore | None:
    try:
        store = _read_entry(entry, samples, spec)
    except (_Unusable, OSError, ValueError, EOFError) as why:
        log.warning("the disk cache entry %s is unusable (%s): removed; decoding again", entry, why)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    try:
        os.utime(entry / META)  # recently used: eviction goes by this time
    except OSError:
        pass  # a read-only cache still serves hits
    log.info("decoded images read from the disk cache %s", entry)
    return store


def _read_entry(entry: Path, samples: Samples, spec: dict) -> ImageStore:
    """The store an entry holds, after checking every fact meta.json states (a file is data)."""
    _require_at_most(entry / META, META_BYTES + META_BYTES_PER_SAMPLE * len(samples))
    meta = json.loads((entry / META).read_text(encoding="utf-8"))
    shape, skipped = _checked_meta(meta, samples, spec)
    if (entry / PIXELS).stat().st_size != int(np.prod(shape)):
        raise _Unusable(f"{PIXELS} holds {(entry / PIXELS).stat().st_size} bytes, not {int(np.prod(shape))}")
    kept = np.setdiff1d(np.arange(len(samples)), [row for row, _ in skipped])
    expected = samples.labels[kept]
    _require_at_most(entry / LABELS, expected.nbytes + NPY_HEADER_BYTES)  # np.load allocates what its header says
    labels = np.load(entry / LABELS, allow_pickle=False)
    if labels.dtype != np.int64 or not np.array_equal(labels, expected):
        raise _Unusable("its labels are not the samples' labels")
    # Copy-on-write: pages come from the page cache, and an in-place write by any later code
    # changes this process's copy only (a read-only map would crash it; torch warns on one).
    pixels = np.memmap(entry / PIXELS, dtype=np.uint8, mode="c", shape=shape)
    return ImageStore(torch.from_numpy(pixels), torch.from_numpy(labels), [samples.origin[i] for i in kept],
                      [(samples.origin[row], reason) for row, reason in skipped], meta["eval_ready"],
                      from_disk_cache=True, cache_entry=entry)


def _require_at_most(path: Path, limit: int) -> None:
    if path.stat().st_size > limit:
        raise _Unusable(f"{path.name} is larger than its contents can be ({path.stat().st_size} bytes)")


def _checked_meta(meta, samples: Samples, spec: dict) -> tuple[tuple[int, ...], list[tuple[int, str]]]:
    """(N x C x H x W shape, [(row, reason) of each skipped sample]) from meta.json, or _Unusable."""

    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT or meta.get("dtype") != "uint8":
        raise _Unusable("meta.json is not a visionfit store description")
    if meta.get("spec") != json.loads(json.dumps(spec)) or meta.get("count") != len(samples):
        raise _Unusable("meta.json describes other images")
    shape, skipped = meta.get("shape"), meta.get("skipped")
    if not (isinstance(shape, list) and len(shape) == 4 and all(type(side) is int for side in shape)):
        raise _Unusable(f"shape {shape!r} is not four whole numbers")
    count, channels, height, width = shape
    if channels not in (1, 3) or not (1 <= height <= MAX_STORED_SIDE and 1 <= width <= MAX_STORED_SIDE):
        raise _Unusable(f"shape {shape} is not C x H x W images with 1 or 3 channels and sides up to {MAX_STORED_SIDE}")
    if not (isinstance(skipped, list) and all(_is_skip(item, len(samples)) for item in skipped)):
        raise _Unusable("its list of skipped images is malformed")
    rows = [row for row, _ in skipped]
    if rows != sorted(set(rows)) or count != len(samples) - len(rows) or count < 1:
        raise _Unusable(f"{count} images and {len(rows)} skipped do not make the {len(samples)} samples")
    if not isinstance(meta.get("eval_ready"), bool):
        raise _Unusable("eval_ready is not true or false")
    return tuple(shape), [(row, reason) for row, reason in skipped]


def _is_skip(item, count: int) -> bool:
    return (isinstance(item, list) and len(item) == 2 and type(item[0]) is int and 0 <= item[0] < count
            and isinstance(item[1], str))


def _write_entry(cache: DiskCache, key: str, store: ImageStore, samples: Samples, spec: dict) -> None:
    """Write `store` as the entry `key` (atomically), then evict down to the cap."""
    pixels = np.ascontiguousarray(store.images.numpy())
    if pixels.nbytes > cache.cap_bytes:
        if cache.folder not in _said_too_big:
            _said_too_big.add(cache.folder)
            log.warning("decoded images of %.1f GB are not kept in the disk cache: over --disk-cache-gb %.1f",
                        pixels.nbytes / GB, cache.cap_bytes / GB)
        return
    temporary = cache.folder / f"{TEMPORARY_PREFIX}{key[:16]}-{secrets.token_hex(4)}"
    try:
        temporary.mkdir(parents=True)
        _write_files(temporary, pixels, store, samples, spec)
        try:
            os.replace(temporary, cache.folder / key)
        except OSError:
            if not (cache.folder / key / META).is_file():
                raise
            # another run wrote the same entry first: same key, same pixels; keep theirs
        store.cache_entry = cache.folder / key
        _evict(cache, keep=key)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or error
        log.warning("could not keep the decoded images in the disk cache %s (%s); the run goes on without it",
                    cache.folder, reason)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _write_files(folder: Path, pixels: np.ndarray, store: ImageStore, samples: Samples, spec: dict) -> None:
    meta = {
        "format": STORE_FORMAT, "dtype": "uint8", "shape": list(pixels.shape), "count": len(samples),
        "skipped": [[row, reason] for row, (_, reason) in zip(_skipped_rows(samples, store), store.skipped)],
        "eval_ready": store.eval_ready, "spec": spec,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(folder / PIXELS, "wb") as file:
        pixels.tofile(file)
        _flush(file)
    with open(folder / LABELS, "wb") as file:
        np.save(file, store.labels.numpy(), allow_pickle=False)
        _flush(file)
    with open(folder / META, "w", encoding="utf-8") as file:  # last: an entry without it is never read
        json.dump(meta, file, indent=1)
        _flush(file)


def _skipped_rows(samples: Samples, store: ImageStore) -> list[int]:
    """The sample row of each skipped image (the store lists them in row order, by origin)."""
    rows, start = [], 0
    for origin, _ in store.skipped:
        start = samples.origin.index(origin, start) + 1
        rows.append(start - 1)
    kept = np.setdiff1d(np.arange(len(samples)), rows)
    if not np.array_equal(store.labels.numpy(), samples.labels[kept]):
        raise ValueError("the built store's labels are not its samples' labels")
    return rows


def _flush(file) -> None:
    """The bytes reach the disk before the rename publishes them: a power cut leaves no
    entry whose meta.json promises pixels that were never written."""
    file.flush()
    os.fsync(file.fileno())


def _evict(cache: DiskCache, keep: str) -> None:
    """Remove stale temporary folders, then the least recently used entries until the
    entries fit in the cap. Only folders this module names are touched."""
    entries, now = [], time.time()
    for path in cache.folder.iterdir():
        try:  # another run may be removing what this one lists
            if path.name.startswith(TEMPORARY_PREFIX) and now - path.stat().st_mtime > STALE_TEMPORARY_S:
                shutil.rmtree(path, ignore_errors=True)
            elif _is_key(path.name) and (path / META).is_file():
                entries.append(((path / META).stat().st_mtime, _folder_bytes(path), path))
        except FileNotFoundError:
            continue
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= cache.cap_bytes:
            break
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)  # a run still mapping it keeps its pages (POSIX)
            total -= size


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def recalled_stats(store: ImageStore) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The (mean, std) a run measured on this store's entry before (remember_stats), or None.
    Checked as data: a malformed stats.json is removed and the statistics measured again."""
    path = store.cache_entry / STATS if store.cache_entry is not None else None
    if path is None or not path.is_file():
        return None
    channels = store.images.shape[1]
    try:
        _require_at_most(path, STATS_BYTES)
        values = json.loads(path.read_text(encoding="utf-8"))
        mean, std = values["mean"], values["std"]
        if not all(isinstance(v, list) and len(v) == channels and all(_unit_number(x) for x in v) for v in (mean, std)):
            raise _Unusable(f"its mean and std are not {channels} numbers in [0, 1] each")
    except (_Unusable, OSError, ValueError, KeyError, TypeError) as why:
        log.warning("the disk cache's statistics %s are unusable (%s): removed; measuring again", path, why)
        path.unlink(missing_ok=True)
        return None
    return tuple(float(x) for x in mean), tuple(float(x) for x in std)


def remember_stats(store: ImageStore, mean, std) -> None:
    """Keep the statistics measured on a cached store beside its entry (atomically), so the next
    run on the same files skips that pass too. A store without an entry keeps nothing."""
    if store.cache_entry is None:
        return
    temporary = store.cache_entry / f"{TEMPORARY_PREFIX}{STATS}-{secrets.token_hex(4)}"
    try:
        temporary.write_text(json.dumps({"mean": list(mean), "std": list(std)}), encoding="utf-8")
        os.replace(temporary, store.cache_entry / STATS)
    except OSError as error:
        log.info("could not keep the statistics in the disk cache (%s)", error)
        temporary.unlink(missing_ok=True)


def _unit_number(value) -> bool:
    return type(value) in (int, float) and 0.0 <= value <= 1.0
