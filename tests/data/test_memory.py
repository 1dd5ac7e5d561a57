"""The RAM check before decoding: the estimate is the stores' real size; a run that would not fit
decodes from disk each epoch instead, or, with --cache ram (or data in RAM anyway), stops with
one line before any image is decoded."""
import numpy as np
import pytest

from visionfit.cli import main
from visionfit.config import DataConfig
from visionfit.data import memory
from visionfit.data import store as store_module
from visionfit.data.plan import plan_input
from visionfit.data.prepare import prepare_data
from visionfit.data.samples import DatasetSplits, Samples
from visionfit.data.scan import with_scan
from visionfit.errors import DataError


def store_bytes(store) -> int:
    images = store.images if store.uniform else list(store.images)
    return int(images.numel()) if store.uniform else sum(int(image.numel()) for image in images)


@pytest.fixture
def odd_photos(tmp_path, png):
    """Six RGB photos of different sizes and aspect ratios (two classes), some smaller than the
    storage side, some larger, one portrait."""
    rng = np.random.default_rng(0)
    sizes = [(90, 120), (150, 100), (70, 70), (200, 260), (81, 95), (300, 120)]
    paths = [png(tmp_path / f"{i % 2}" / f"{i}.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
             for i, (h, w) in enumerate(sizes)]
    return with_scan(Samples(labels=[i % 2 for i in range(len(paths))], paths=paths))


@pytest.mark.parametrize("options, storage", [
    ({}, {"presize": 74, "store_side": None}),  # round(64 x 1.15): one 6 x 3 x 74 x 74 tensor
    ({"presize": 0}, {"presize": None, "store_side": 91}),  # whole: 64 / 0.875 = 73, x 1.25 room for crops
    ({"augment": "none", "presize": 100}, {"presize": None, "store_side": None}),  # the eval view, 64 x 64
])
def test_the_estimate_is_what_the_stores_take(odd_photos, options, storage):
    splits = DatasetSplits("photos", ["0", "1"], odd_photos, val=odd_photos.subset([0, 1, 2]))
    config = DataConfig(image_size=64, workers=1, **options)
    plan = plan_input(config, odd_photos, natural_size=64)
    assert not plan.small and {"presize": plan.presize, "store_side": plan.store_side} == storage
    prepared = prepare_data(config, splits, plan)
    actual = store_bytes(prepared.train) + store_bytes(prepared.val)
    assert memory.estimate_store_bytes(splits, plan, cache="ram") == actual
    assert memory.estimate_store_bytes(splits, plan, cache="none") == 0  # files decode from disk each time


def test_array_data_is_counted_at_its_own_size_and_the_eval_size():
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    samples = Samples(labels=np.arange(10) % 2, images=images)
    splits = DatasetSplits("digits", ["a", "b"], samples, val=samples.subset([0, 1, 2, 3]))
    plan = plan_input(DataConfig(image_size=32), samples, natural_size=32)
    expected = 10 * 28 * 28 + 4 * 32 * 32  # training at the stored 28 x 28, validation at the eval 32 x 32
    assert memory.estimate_store_bytes(splits, plan, cache="ram") == expected
    assert memory.estimate_store_bytes(splits, plan, cache="none") == expected  # arrays stay in RAM either way


def test_available_memory_is_read_from_the_system():
    available = memory.available_memory_bytes()
    assert available is None or available > 2**20


def test_a_store_that_does_not_fit_is_decoded_from_disk_instead_and_said(odd_photos, monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 100_000)
    monkeypatch.setattr(store_module, "_file_store", lambda *args: pytest.fail("decoded into RAM despite the budget"))
    splits = DatasetSplits("photos", ["0", "1"], odd_photos)
    plan = plan_input(DataConfig(image_size=64), odd_photos, natural_size=64)
    needed = memory.estimate_store_bytes(splits, plan, cache="ram")
    assert needed == 6 * 3 * 74 * 74 > 0.75 * 100_000
    prepared = prepare_data(DataConfig(image_size=64), splits, plan)
    assert isinstance(prepared.train.images, store_module.LazyImages)  # the per-image path, as --cache none
    assert prepared.notes == (f"images decoded from disk each epoch, per image (as --cache none): kept in RAM they "
                              f"would need about {needed / 2**20:.1f} MiB and 0.1 MiB is available; a smaller "
                              f"--presize or --image-size would fit",)
    image = prepared.train.images[3]  # decoded on access exactly as the RAM store keeps it: the presized square
    assert image.shape == (3, 74, 74)


def test_cache_ram_insists_and_stops_before_decoding(odd_photos, monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 100_000)
    monkeypatch.setattr(store_module, "_file_store", lambda *args: pytest.fail("decoded despite the refusal"))
    splits = DatasetSplits("photos", ["0", "1"], odd_photos)
    plan = plan_input(DataConfig(image_size=64), odd_photos, natural_size=64)
    needed = memory.estimate_store_bytes(splits, plan, cache="ram")
    with pytest.raises(DataError) as error:
        prepare_data(DataConfig(image_size=64, cache="ram"), splits, plan)
    assert str(error.value) == (f"the decoded images need about {needed / 2**20:.1f} MiB of RAM (uint8, as stored "
                                f"for training and validation), but only 0.1 MiB is available; use --cache none to "
                                f"decode from disk each epoch, or a smaller --image-size")
    prepare_data(DataConfig(image_size=64, cache="none"), splits, plan)  # nothing to keep: no refusal


def test_the_headroom_keeps_a_quarter_free(monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 4 * 2**30)
    memory.require_store_memory(3 * 2**30)
    with pytest.raises(DataError, match="need about 3.1 GiB of RAM .* only 4.0 GiB is available"):
        memory.require_store_memory(3 * 2**30 + 2**27)


def test_the_cli_refuses_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**20)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--project", str(tmp_path), "--epochs", "1"])  # the bundled sample: 14,000 digits
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1
    assert lines[0].startswith("visionfit: error: the decoded images need about 10.5 MiB of RAM")
    assert "only 1.0 MiB is available; use --cache none" in lines[0]


def test_every_torchrun_process_on_the_machine_counts(monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 4 * 2**30)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(DataError, match=r"need about 4.0 GiB \(4 processes x 1.0 GiB\) of RAM"):
        memory.require_store_memory(2**30)
