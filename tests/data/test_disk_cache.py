"""The decoded-store cache on disk: hits equal a fresh decode; any change to the files, labels or
spec decodes again; broken entries are rebuilt; the cap holds; nothing is kept when switched off."""
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionfit.config import Config
from visionfit.data import disk_cache, prepare
from visionfit.data.plan import plan_input
from visionfit.data.disk_cache import DiskCache, cache_folder, cached_store, disk_cache_for, store_key
from visionfit.data.prepare import eval_store
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.data.scan import with_scan
from visionfit.data.store import build_store, channel_stats
from visionfit.errors import ConfigError

from tests.conftest import make_preset

SPEC = {"train": {"channels": 3, "shape": [5, 6]}}
ENTRY_BYTES = 4 * 3 * 5 * 6  # pixels.u8 of the four-image store below


@pytest.fixture
def cache(tmp_path, monkeypatch) -> DiskCache:
    folder = tmp_path / "cache"
    monkeypatch.setenv("VISIONFIT_CACHE", str(folder))
    return DiskCache(cache_folder(), cap_bytes=10**6)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def photo_samples(folder: Path, count: int = 4, broken: bool = True) -> Samples:
    """`count` 5 x 6 RGB PNGs of distinct content, labelled 0, 1, 0, 1..., plus one file that is
    not an image (skipped by the store); scanned, as a run's samples are."""
    rng = np.random.default_rng(len(str(folder)))
    paths = [write_png(folder / f"{i}.png", rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)) for i in range(count)]
    if broken:
        (folder / "broken.png").write_bytes(b"not a png")
        paths.insert(1, folder / "broken.png")
    return with_scan(Samples(labels=[i % 2 for i in range(len(paths))], paths=paths))


class CountedBuild:
    """build_store for `samples`, counting how often the cache had to decode."""

    def __init__(self, samples: Samples):
        self.samples, self.calls = samples, 0

    def __call__(self):
        self.calls += 1
        return build_store(self.samples, channels=3, workers=1)


def entries(cache: DiskCache) -> list[Path]:
    return sorted(path for path in cache.folder.iterdir() if not path.name.startswith(".")) \
        if cache.folder.exists() else []


def test_a_hit_returns_the_decoded_pixels_labels_origin_and_skipped_files(tmp_path, cache):
    samples = photo_samples(tmp_path / "photos")
    build = CountedBuild(samples)
    first = cached_store(samples, SPEC, build, cache)
    again = cached_store(samples, SPEC, build, cache)
    assert build.calls == 1 and len(entries(cache)) == 1
    assert torch.equal(again.images, first.images) and again.images.shape == (4, 3, 5, 6)
    assert torch.equal(again.labels, first.labels) and again.labels.tolist() == [0, 0, 1, 0]  # row 1 skipped
    assert again.origin == first.origin and len(again.skipped) == 1
    assert again.skipped == first.skipped and again.skipped[0][0].endswith("broken.png")
    assert again.eval_ready is False
    assert (first.from_disk_cache, again.from_disk_cache) == (False, True)


def test_writing_into_a_hit_changes_neither_the_entry_nor_a_later_hit(tmp_path, cache):
    samples = photo_samples(tmp_path / "photos", broken=False)
    expected = cached_store(samples, SPEC, CountedBuild(samples), cache).images.clone()
    hit = cached_store(samples, SPEC, CountedBuild(samples), cache)
    hit.images[0] = 0  # copy-on-write: this process's pages only
    assert torch.equal(cached_store(samples, SPEC, CountedBuild(samples), cache).images, expected)


def touch(path: Path):
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def resize(path: Path):
    write_png(path, np.zeros((7, 6, 3), dtype=np.uint8))


def same_size_and_time(path: Path):
    """Other content, same byte count and mtime: only the scan's content hash tells."""
    info, content = path.stat(), bytearray(path.read_bytes())
    content[-20] ^= 0xFF  # inside the IEND-preceding data: still the same length
    path.write_bytes(bytes(content))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.mark.parametrize("change", [touch, resize, same_size_and_time])
def test_a_changed_file_decodes_again(tmp_path, cache, change):
    samples = photo_samples(tmp_path / "photos", broken=False)
    cached_store(samples, SPEC, CountedBuild(samples), cache)
    key_before = store_key(samples, SPEC)
    change(samples.paths[2])
    rescanned = with_scan(Samples(labels=samples.labels, paths=samples.paths))
    build = CountedBuild(rescanned)
    changed = cached_store(rescanned, SPEC, build, cache)
    assert build.calls == 1 and store_key(rescanned, SPEC) != key_before
    assert torch.equal(changed.images[2], build_store(rescanned, 3).images[2])
    # a 7 x 6 image among 5 x 6 ones makes a ragged store, which is never kept
    assert len(entries(cache)) == (1 if change is resize else 2)


def test_other_labels_or_spec_decode_again(tmp_path, cache):
    samples = photo_samples(tmp_path / "photos", broken=False)
    cached_store(samples, SPEC, CountedBuild(samples), cache)
    relabelled = Samples(labels=[1, 1, 0, 1], paths=samples.paths, scan=samples.scan)
    for other_samples, other_spec in ((relabelled, SPEC), (samples, {"train": {"channels": 3, "shape": [5, 7]}})):
        build = CountedBuild(other_samples)
        assert cached_store(other_samples, other_spec, build, cache).labels.tolist() == other_samples.labels.tolist()
        assert build.calls == 1
    assert len(entries(cache)) == 3


def break_meta(entry: Path):
    (entry / "meta.json").write_text("{not json", encoding="utf-8")


def meta_with(**fields):
    def change(entry: Path):
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        (entry / "meta.json").write_text(json.dumps({**meta, **fields}), encoding="utf-8")
    change.__name__ = f"meta_with_{'_'.join(fields)}"
    return change


def truncate_pixels(entry: Path):
    with open(entry / "pixels.u8", "r+b") as file:
        file.truncate(ENTRY_BYTES - 1)


def pickled_labels(entry: Path):
    np.save(entry / "labels.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)


def labels_claiming_a_terabyte(entry: Path):
    with open(entry / "labels.npy", "wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "<i8", "fortran_order": False, "shape": (2**37,)})
        file.write(b"\0" * 8 * 600)  # bigger than four labels, far smaller than what the header claims


def other_labels(entry: Path):
    np.save(entry / "labels.npy", np.array([1, 1, 1, 1], dtype=np.int64))


@pytest.mark.parametrize("corrupt", [
    break_meta, truncate_pixels, pickled_labels, labels_claiming_a_terabyte, other_labels, meta_with(shape=[4, 3, 5, 100_000]),
    meta_with(shape=[2, 3, 10, 6]), meta_with(shape="4x3x5x6"), meta_with(count=5), meta_with(eval_ready="yes"),
    meta_with(skipped=[[9, "gone"]]), meta_with(format=0), meta_with(spec={"train": {}})])
def test_a_broken_entry_is_removed_rebuilt_and_said_once(tmp_path, cache, caplog, corrupt):
    samples = photo_samples(tmp_path / "photos", broken=False)
    expected = cached_store(samples, SPEC, CountedBuild(samples), cache).images.clone()
    entry, = entries(cache)
    corrupt(entry)
    build = CountedBuild(samples)
    with caplog.at_level(logging.WARNING, logger=disk_cache.__name__):
        rebuilt = cached_store(samples, SPEC, build, cache)
    assert build.calls == 1 and torch.equal(rebuilt.images, expected)
    assert [record.getMessage() for record in caplog.records if "unusable" in record.getMessage()] != []
    assert len(caplog.records) == 1
    again = CountedBuild(samples)
    assert torch.equal(cached_store(samples, SPEC, again, cache).images, expected) and again.calls == 0


def test_the_least_recently_used_entries_go_past_the_cap_and_stale_temporaries_too(tmp_path, cache):
    a, b, c = (photo_samples(tmp_path / name, broken=False) for name in "abc")
    cached_store(a, SPEC, CountedBuild(a), cache)
    entry_bytes = sum(path.stat().st_size for path in entries(cache)[0].iterdir())
    small = DiskCache(cache.folder, cap_bytes=int(entry_bytes * 2.5))
    cached_store(b, SPEC, CountedBuild(b), small)
    for samples, seconds in ((a, 1000), (b, 2000)):  # b used after a
        os.utime(small.folder / store_key(samples, SPEC) / "meta.json", (seconds, seconds))
    stale = small.folder / ".tmp-0123456789abcdef-cafe"
    stale.mkdir()
    os.utime(stale, (1000, 1000))
    cached_store(a, SPEC, CountedBuild(a), small)  # a hit: now a is the most recent
    cached_store(c, SPEC, CountedBuild(c), small)
    kept = {path.name for path in entries(small)}
    assert kept == {store_key(a, SPEC), store_key(c, SPEC)} and not stale.exists()


def test_a_store_bigger_than_the_cap_is_not_kept_and_said_once(tmp_path, cache, caplog):
    tiny = DiskCache(cache.folder, cap_bytes=ENTRY_BYTES - 1)
    disk_cache._said_too_big.discard(tiny.folder)
    with caplog.at_level(logging.WARNING, logger=disk_cache.__name__):
        for name in "ab":
            samples = photo_samples(tmp_path / name, broken=False)
            cached_store(samples, SPEC, CountedBuild(samples), tiny)
    assert entries(tiny) == [] and len(caplog.records) == 1 and "--disk-cache-gb" in caplog.records[0].getMessage()


def test_array_samples_are_never_kept(cache):
    samples = Samples(labels=[0, 1], images=np.zeros((2, 5, 6, 3), dtype=np.uint8))
    calls = []
    store = cached_store(samples, SPEC, lambda: calls.append(1) or build_store(samples, 3), cache)
    assert len(store) == 2 and calls == [1] and entries(cache) == []


@pytest.mark.parametrize("options, kept", [({}, 1), ({"disk_cache": False}, 0), ({"cache": "none"}, 0)])
def test_the_eval_store_is_kept_unless_switched_off(tmp_path, cache, options, kept):
    samples = photo_samples(tmp_path / "photos", broken=False)
    preset = make_preset(4, 3, (0.5,) * 3, (0.25,) * 3, small=False)
    data_cfg = Config.from_options(**options).data
    first = eval_store(data_cfg, samples, preset, workers=1)
    again = eval_store(data_cfg, samples, preset, workers=1)
    assert len(entries(cache)) == kept
    assert torch.equal(torch.stack(list(again.images)), torch.stack(list(first.images)))
    assert again.eval_ready and tuple(again.images[0].shape) == (3, 4, 4)


def test_the_cap_flag_sets_the_cap_in_gb():
    assert disk_cache_for(Config.from_options(disk_cache_gb=0.5).data).cap_bytes == 500_000_000
    with pytest.raises(ConfigError, match="--disk-cache-gb"):
        Config.from_options(disk_cache_gb=0)


def test_the_folder_is_visionfit_cache_else_the_platforms_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONFIT_CACHE", str(tmp_path / "mine"))
    assert cache_folder() == tmp_path / "mine"
    monkeypatch.delenv("VISIONFIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    expected = {"linux": tmp_path / "xdg" / "visionfit" / "stores",
                "darwin": tmp_path / "home" / "Library" / "Caches" / "visionfit" / "stores",
                "win32": tmp_path / "local" / "visionfit" / "Cache" / "stores"}
    for platform, folder in expected.items():
        monkeypatch.setattr(sys, "platform", platform)
        assert cache_folder() == folder
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_folder() == tmp_path / "home" / ".cache" / "visionfit" / "stores"


def test_a_cache_inside_the_data_folder_is_refused(tmp_path, monkeypatch):
    samples = photo_samples(tmp_path / "photos", broken=False)
    monkeypatch.setenv("VISIONFIT_CACHE", str(tmp_path / "photos" / "cache"))
    inside = disk_cache_for(Config.from_options(data=str(tmp_path / "photos")).data)
    with pytest.raises(ConfigError, match="VISIONFIT_CACHE .* is inside the data folder"):
        cached_store(samples, SPEC, CountedBuild(samples), inside)


def test_a_second_prepare_data_decodes_nothing_even_with_other_augmentation(tmp_path, cache, monkeypatch):
    """The wiring: the training and validation stores of small images both come from the cache,
    and augmentation flags, which change no stored pixel, are not part of the key."""
    train, val = photo_samples(tmp_path / "train", broken=False), photo_samples(tmp_path / "val", broken=False)
    splits = DatasetSplits("photos", ["0", "1"], train, val=val)
    decoded = []
    monkeypatch.setattr(prepare, "build_store", lambda *args, **kw: decoded.append(1) or build_store(*args, **kw))
    stores = []
    for options in ({}, {"flip": True, "augment": "medium"}):
        data_cfg = Config.from_options(image_size=8, workers=1, **options).data
        stores.append(prepare.prepare_data(data_cfg, splits, plan_input(data_cfg, train, natural_size=8)))
    assert len(decoded) == 2 and len(entries(cache)) == 2
    first, again = stores
    assert torch.equal(again.train.images, first.train.images) and torch.equal(again.val.images, first.val.images)
    assert again.preset.preprocess == first.preset.preprocess  # statistics measured on the cached pixels


def test_a_second_prepare_data_recalls_the_training_statistics(tmp_path, cache, monkeypatch, caplog):
    train = photo_samples(tmp_path / "train", broken=False)
    splits = DatasetSplits("photos", ["0", "1"], train)
    measured = []
    monkeypatch.setattr(prepare, "channel_stats", lambda store: measured.append(1) or channel_stats(store))
    data_cfg = Config.from_options(image_size=8, workers=1).data
    plan = plan_input(data_cfg, train, natural_size=8)
    runs = [prepare.prepare_data(data_cfg, splits, plan) for _ in range(2)]
    assert len(measured) == 1 and runs[1].train.from_disk_cache
    assert runs[1].preset.preprocess == runs[0].preset.preprocess
    stats = runs[1].train.cache_entry / disk_cache.STATS
    stats.write_text('{"mean": [0.5, 7.0, 0.5], "std": [0.1, 0.1, 0.1]}')  # a file is data: 7 is no pixel mean
    again = prepare.prepare_data(data_cfg, splits, plan)
    assert len(measured) == 2 and again.preset.preprocess == runs[0].preset.preprocess
    assert "statistics" in caplog.text and "unusable" in caplog.text
    assert json.loads(stats.read_text())["mean"] != [0.5, 7.0, 0.5]  # measured and kept again
