import torch

from visionfit.data.loader import BatchLoader
from visionfit.data.store import ImageStore
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
