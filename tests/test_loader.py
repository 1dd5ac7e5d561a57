import dataclasses

import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from visionfit.data.loader import BatchLoader, EpochOrder, epoch_seed
from visionfit.data.store import ImageStore
from visionfit.train.features import FeatureLoader
from .conftest import make_preset

CPU = torch.device("cpu")


def numbered_store(n=20, side=8, ragged=False):
    """Image i is filled with the value i, so a batch tells which samples it holds."""
    images = [torch.full((1, side + (i % 3 if ragged else 0), side), i, dtype=torch.uint8) for i in range(n)]
    return ImageStore(images if ragged else torch.stack(images), torch.arange(n), [str(i) for i in range(n)])


def preset(**overrides):
    values = dict(size=8, channels=1, mean=(0.0,), std=(1 / 255,), small=True, flip=False, pad=0)
    return make_preset(**{**values, **overrides})


def ids(loader):
    """Sample ids per batch, read back from the pixels (std 1/255 undoes the scaling)."""
    return [x[:, 0, 0, 0].round().long().tolist() for x, _ in loader]


def test_training_epoch_visits_every_sample_once_in_a_seeded_order():
    loader = BatchLoader(numbered_store(), preset(), batch_size=6, train=True, device=CPU, seed=1)
    first = sum(ids(loader), [])
    again = sum(ids(loader), [])
    loader.set_epoch(1)
    next_epoch = sum(ids(loader), [])
    assert sorted(first) == list(range(20)) and len(loader) == 4
    assert first == again and first != next_epoch


def test_labels_travel_with_their_images():
    loader = BatchLoader(numbered_store(), preset(), batch_size=7, train=True, device=CPU)
    for x, y in loader:
        assert torch.equal(x[:, 0, 0, 0].round().long(), y)


def test_evaluation_keeps_source_order():
    loader = BatchLoader(numbered_store(), preset(), batch_size=8, train=False, device=CPU)
    assert sum(ids(loader), []) == list(range(20))


def test_shards_of_two_processes_make_up_the_single_process_batches():
    single = BatchLoader(numbered_store(), preset(), batch_size=8, train=True, device=CPU, seed=3)
    ranks = [BatchLoader(numbered_store(), preset(), batch_size=4, train=True, device=CPU, seed=3, rank=r,
                         world_size=2) for r in range(2)]
    for whole, part0, part1 in zip(ids(single), ids(ranks[0]), ids(ranks[1])):
        assert sorted(whole) == sorted(part0 + part1)


def test_ragged_store_goes_through_per_sample_transforms_independent_of_worker_count():
    store = numbered_store(n=10, ragged=True)
    flipping = preset(flip=True, pad=1)
    results = []
    for workers in (0, 2):
        loader = BatchLoader(store, flipping, batch_size=4, train=True, device=CPU, seed=5, workers=workers)
        results.append([x for x, _ in loader])
    assert all(x.shape[1:] == (1, 8, 8) for x in results[0])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_eval_ready_stores_are_not_preprocessed_twice():
    photos = [torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8) for _ in range(3)]
    ready = ImageStore(torch.stack(photos), torch.arange(3), ["a", "b", "c"], eval_ready=True)
    lazy_ready = ImageStore(photos, torch.arange(3), ["a", "b", "c"], eval_ready=True)  # a ragged (lazy) store
    photo_preset = make_preset(size=16, channels=3, mean=(0.0,) * 3, std=(1 / 255,) * 3, small=False)
    for store in (ready, lazy_ready):
        (x, _), = list(BatchLoader(store, photo_preset, batch_size=3, train=False, device=CPU))
        assert torch.allclose(x, torch.stack(photos).float(), atol=1e-3)  # a second resize would blur them


def test_evaluating_a_training_store_applies_the_eval_preprocessing():
    photos = [torch.randint(0, 256, (3, 40 + i, 50), dtype=torch.uint8) for i in range(3)]
    photo_preset = make_preset(size=16, channels=3, mean=(0.0,) * 3, std=(1 / 255,) * 3, small=False)
    (x, _), = list(BatchLoader(ImageStore(photos, torch.arange(3), ["a", "b", "c"]), photo_preset, batch_size=3,
                               train=False, device=CPU))
    expected = torch.stack([photo_preset.eval_transform()(image) for image in photos]).float()
    assert torch.allclose(x, expected, atol=1e-3)


def test_persistent_workers_follow_the_epoch():
    store = numbered_store(n=10, ragged=True)
    loader = BatchLoader(store, preset(flip=True, pad=1), batch_size=5, train=True, device=CPU, seed=2, workers=2)
    first = [x for x, _ in loader]
    again = [x for x, _ in loader]
    loader.set_epoch(1)
    later = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, later))


def test_dropping_a_loader_stops_its_worker_processes_at_once():
    import multiprocessing

    loader = BatchLoader(numbered_store(n=10, ragged=True), preset(), batch_size=5, train=True, device=CPU, workers=2)
    list(loader)
    assert len(multiprocessing.active_children()) == 2
    del loader  # no reference cycle: freed now, and close() stops the workers (not the 5 s GC path)
    assert multiprocessing.active_children() == []


def skewed_labels():
    """90 of class 0, 9 of class 1, 1 of class 2."""
    return torch.tensor([0] * 90 + [1] * 9 + [2])


def test_balanced_sampler_draws_every_class_equally_often():
    labels = skewed_labels()
    order = EpochOrder(100, 10, train=True, seed=0, sampler="balanced", labels=labels)
    drawn = []
    for epoch in range(30):
        order.set_epoch(epoch)
        epoch_draw = order.indices()
        assert len(epoch_draw) == 100 and len(order) == 10  # an epoch is as long as the data
        drawn.append(epoch_draw)
    frequencies = torch.bincount(labels[torch.cat(drawn)], minlength=3) / 3000
    assert frequencies.tolist() == pytest.approx([1 / 3] * 3, abs=0.03)  # shuffling gives 0.9, 0.09, 0.01


def test_balanced_sampler_is_torchs_weighted_random_sampler_seeded_per_epoch():
    labels = skewed_labels()
    order = EpochOrder(100, 10, train=True, seed=4, sampler="balanced", labels=labels)
    order.set_epoch(3)
    generator = torch.Generator().manual_seed(epoch_seed(4, 3))
    reference = list(WeightedRandomSampler(1 / torch.bincount(labels)[labels].double(), 100, generator=generator))
    assert order.indices().tolist() == reference
    assert order.indices().tolist() == reference  # the same (seed, epoch), the same draw
    order.set_epoch(4)
    assert order.indices().tolist() != reference


def test_balanced_shards_split_the_single_process_draw_as_shuffle_does():
    labels = torch.tensor([0] * 80 + [1] * 21)  # 101 samples: two shards of 51, one index padded
    single = EpochOrder(101, 8, train=True, seed=2, sampler="balanced", labels=labels)
    ranks = [EpochOrder(101, 8, train=True, seed=2, rank=r, world_size=2, sampler="balanced", labels=labels)
             for r in range(2)]
    whole = single.indices()
    padded = torch.cat([whole, whole[:1]])
    assert [len(r.indices()) for r in ranks] == [51, 51]
    assert torch.equal(ranks[0].indices(), padded[0::2]) and torch.equal(ranks[1].indices(), padded[1::2])


def test_evaluation_ignores_the_sampler():
    order = EpochOrder(100, 10, train=False, sampler="balanced", labels=skewed_labels())
    assert order.indices().tolist() == list(range(100))


def test_batch_loader_and_feature_loader_draw_balanced_batches():
    labels = skewed_labels()
    store = ImageStore(torch.zeros(100, 1, 8, 8, dtype=torch.uint8), labels, [str(i) for i in range(100)])
    images = BatchLoader(store, preset(), batch_size=50, train=True, device=CPU, sampler="balanced")
    features = FeatureLoader(torch.zeros(100, 3), labels, batch_size=50, train=True, sampler="balanced")
    for loader in (images, features):
        seen = torch.cat([y for _, y in loader])
        assert len(seen) == 100 and torch.bincount(seen, minlength=3).min() >= 15  # shuffle: one of class 2


def colour_preset(strength, erasing=0.0, **geometry):
    """3-channel pixels back as 0..255 (mean 0, std 1/255), colour jitter `strength`, erasing p."""
    values = dict(size=8, channels=3, mean=(0.0,) * 3, std=(1 / 255,) * 3, small=True)
    return dataclasses.replace(make_preset(**{**values, **geometry}), color_jitter=strength, erasing=erasing)


def colour_store(n=12, side=8):
    images = torch.randint(40, 216, (n, 3, side, side), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return ImageStore(images, torch.arange(n) % 3, [str(i) for i in range(n)])


def device_colour_loader(preset, seed=4, batch_size=5):
    """The CUDA path (per-image colour ops on the device batch) taken on the CPU through its seam."""
    return BatchLoader(colour_store(), preset, batch_size=batch_size, train=True, device=CPU, seed=seed,
                       colour_on_device=True)


def test_colour_ops_on_the_device_keep_the_batch_batched_whole_pixels_and_shapes():
    loader = device_colour_loader(colour_preset(0.4, erasing=0.5, flip=True, pad=1))
    assert loader.batched
    assert not BatchLoader(colour_store(), colour_preset(0.4), batch_size=5, train=True, device=CPU,
                           colour_on_device=False).batched
    batches = list(loader)
    assert [tuple(x.shape) for x, _ in batches] == [(5, 3, 8, 8), (5, 3, 8, 8), (2, 3, 8, 8)]
    x = torch.cat([x for x, _ in batches])
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 255
    assert torch.allclose(x, x.round(), atol=1e-3)  # uint8 through the colour ops, as in the workers


def test_device_colour_draws_repeat_within_an_epoch_change_with_the_next_and_leave_torchs_rng_alone():
    loader = device_colour_loader(colour_preset(0.4))  # colour only: what differs is the colour draws

    def in_store_order():
        rng_before = torch.get_rng_state()
        x = torch.cat([x for x, _ in loader])
        assert torch.equal(torch.get_rng_state(), rng_before)
        ordered = torch.empty_like(x)
        ordered[loader.indices()] = x
        return ordered

    first = in_store_order()
    torch.rand(7)  # the model draws from torch's generator between epochs (dropout, ...)
    assert torch.equal(in_store_order(), first)
    loader.set_epoch(1)
    assert not torch.equal(in_store_order(), first)


def test_colour_jitter_really_runs_on_the_device_path():
    store = colour_store()
    plain, jittered = (device_colour_loader(colour_preset(strength), batch_size=12) for strength in (0.0, 1.0))
    (x_plain, _), = list(plain)
    (x_jittered, _), = list(jittered)
    assert torch.allclose(x_plain, store.images[plain.indices()].float(), atol=1e-3)  # strength 0: no op, no geometry
    brightness = x_jittered.mean(dim=(1, 2, 3)) / x_plain.mean(dim=(1, 2, 3))
    assert (brightness - 1).abs().gt(0.05).float().mean() > 0.8 and brightness.std() > 0.1


def test_erasing_follows_the_colour_ops_as_in_train_transform():
    """Erasing draws after the colour ops on the device generator, so p 1 and p 0 see the same jittered
    images; the erased boxes hold exactly the fill (0 here): had the colour ops run after, they would not."""
    (kept, _), = list(device_colour_loader(colour_preset(1.0, erasing=0.0, pad=1), batch_size=12))
    (erased, _), = list(device_colour_loader(colour_preset(1.0, erasing=1.0, pad=1), batch_size=12))
    changed = erased != kept
    assert changed.flatten(1).any(1).float().mean() > 0.8
    assert torch.all(erased[changed] == 0)
