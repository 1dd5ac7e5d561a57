"""Batches for the trainer: uint8 images in, normalised float batches on the device out.

Two paths, one preset:
  - equal-size stores (MNIST, CIFAR, presized photos, eval views) live as one uint8 tensor;
    batches are sliced from it, moved to the device and augmented there as a whole
    (airbench's data-on-device design);
  - stores of differently sized or lazily decoded images, and training with an op that only
    runs per image (TrivialAugment, RandAugment, colour jitter) off a CUDA device, go through a
    DataLoader whose workers run the preset's per-sample torchvision v2 transforms. On a CUDA
    device those ops run image by image on the batch there instead (colour_on_device).
Shuffling and augmentation are seeded by (seed, epoch), so a resumed run sees the same
batches an uninterrupted one would have.
"""
import logging
import math
import weakref

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .. import devices
from ..errors import DataError
from .augment import per_image
from .store import ImageStore
from .transforms import Preset, normalize

log = logging.getLogger(__name__)


def colour_on_device_by_default(device: torch.device, workers: int) -> bool:
    """Whether per-image colour ops run on the device batch rather than in `workers` DataLoader
    workers: on a GPU, yes (nothing else keeps it busy). On a CPU, yes when workers would leave
    the model a single core (devices.main_process_threads), or when there are none: on 2 cores
    the batch path trained 3.2x faster (lenet_relu, MNIST) and 1.35x (mobilenet_v3_small, photos
    at 128 px) at --augment medium. With more cores to spare the workers run them in parallel
    to the model, which the batch path would do in series."""
    if torch.device(device).type == "cuda" or workers == 0:
        return True
    return devices.usable_cores() - workers <= 1


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A distinct, reproducible seed for each (run seed, epoch, process)."""
    return (seed * 1_000_003 + epoch * 1_009 + rank) % (2**63)


class EpochOrder:
    """Which samples, in which order, each process sees per epoch, and in how many batches.

    train=True shuffles with a (seed, epoch) generator; with world_size > 1 each process
    gets its own shard (DistributedSampler's padding rule: every shard has the same length).
    sampler="balanced" (train only) draws the epoch instead: as many draws as samples, with
    replacement, each class equally likely (torch's WeightedRandomSampler with weights
    1 / class count), from the same (seed, epoch) generator and sharded the same way.
    Shared by BatchLoader (images) and the cached-features loader.
    """

    def __init__(self, size: int, batch_size: int, train: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 sampler: str = "shuffle", labels: torch.Tensor | None = None):
        self.size, self.batch_size, self.train, self.seed = size, batch_size, train, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.sampler = sampler
        self.draw_weights = balanced_draw_weights(labels) if train and sampler == "balanced" else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.shard_size / self.batch_size)

    @property
    def shard_size(self) -> int:
        if self.world_size == 1:
            return self.size
        return math.ceil(self.size / self.world_size)

    def indices(self) -> torch.Tensor:
        """This process's sample order for the current epoch."""
        n = self.size
        if self.train:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            if self.draw_weights is not None:
                # What WeightedRandomSampler does; like it, limited to 2**24 samples (torch.multinomial's).
                order = torch.multinomial(self.draw_weights, n, replacement=True, generator=generator)
            else:
                order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            total = self.shard_size * self.world_size
            order = torch.cat([order, order[: total - n]])  # pad so every shard is equal
            order = order[self.rank :: self.world_size]
        return order


def balanced_draw_weights(labels: torch.Tensor | None) -> torch.Tensor:
    """Per-sample draw weight 1 / (its class's count): every class present is drawn equally often."""
    if labels is None:
        raise ValueError("sampler='balanced' needs the training labels")
    labels = torch.as_tensor(labels, dtype=torch.long)
    counts = torch.bincount(labels).double()
    return 1 / counts[labels]


class BatchLoader(EpochOrder):
    """Iterates (x float32 N x C x size x size, y int64 N) on `device` for one store.

    train=True shuffles (or, with sampler="balanced", draws class-balanced) and augments;
    train=False keeps order and applies the eval pipeline. Order and sharding come from EpochOrder.
    colour_on_device: run the preset's per-image ops (TrivialAugment, RandAugment, colour jitter)
    on the batch on the device, so that an equal-size store stays batched; None: as
    colour_on_device_by_default decides for the device and the workers.
    """

    def __init__(
        self,
        store: ImageStore,
        preset: Preset,
        batch_size: int,
        train: bool,
        device: torch.device,
        seed: int = 0,
        workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        sampler: str = "shuffle",
        colour_on_device: bool | None = None,
    ):
        super().__init__(len(store), batch_size, train, seed, rank, world_size, sampler, store.labels)
        if train and preset.train_starts_from_eval_view and not store.eval_ready:
            raise ValueError("a preset that trains from the eval view needs a store of eval views (prepare.py "
                             "builds the training store so): training batches get no per-image eval transform")
        self.store, self.preset, self.device = store, preset, device
        self.workers, self.channels_last = workers, channels_last
        self._ragged_loader = None
        self._eval_transform = preset.eval_transform()
        if colour_on_device is None:
            colour_on_device = colour_on_device_by_default(device, workers)
        self._colour = preset.colour_transform() if train and colour_on_device else None
        # On the device once: made per batch, they would be two blocking host-to-device copies a step.
        self._mean_std = [torch.tensor(values, dtype=torch.float32, device=device) for values in (preset.mean, preset.std)]
        if store.uniform:
            # Small equal-size sets go to the device once; big ones are sliced on the host.
            on_device = device.type == "cuda" and store.images.numel() < 4 * 2**30
            self.images = store.images.to(device) if on_device else store.images
            self.labels = store.labels.to(self.images.device)

    def __iter__(self):
        if self.batched:
            yield from self._iter_uniform()
        else:
            yield from self._iter_ragged()

    @property
    def batched(self) -> bool:
        """Whether batches are sliced and augmented on the device (equal-size images, and no
        augmentation that only runs per image unless it runs there too); otherwise DataLoader
        workers run the per-sample transforms."""
        per_image_in_workers = self.train and self.preset.per_sample_ops and self._colour is None
        return self.store.uniform and not per_image_in_workers

    def _iter_uniform(self):
        seed = epoch_seed(self.seed, self.epoch, self.rank)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        # The per-image ops draw on the CPU: one seed a batch from a CPU twin (no device read-back).
        colour_seeds = torch.Generator().manual_seed(seed)
        order = self.indices().to(self.images.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.images[index]
            if not self.train and not self.store.eval_ready:
                # Only the eval view of a store kept for augmentation (the features of a frozen backbone
                # cached from presized photos or small images): once per image, not once per epoch.
                # Validation stores, and the training store of a run from the eval view, hold it already.
                x = torch.stack([self._eval_transform(image) for image in x.cpu()])
            x = x.to(self.device, non_blocking=True)
            y = self.labels[index].to(self.device, non_blocking=True)
            if self.train and self._colour is not None:
                x = self._augment_with_colour(x, generator, int(torch.randint(2**62, (), generator=colour_seeds)))
            elif self.train:
                x = self.preset.augment_batch(x, generator)
            yield self._finish(x, y)

    def _augment_with_colour(self, x_uint8: torch.Tensor, generator: torch.Generator, seed: int) -> torch.Tensor:
        """train_transform's order on the device batch: crop, flip, rotation (batched), the colour
        ops (per image, on uint8 as in the workers), erasing (batched)."""
        x = self.preset.geometry_batch(x_uint8, generator)
        x = per_image(x.round().clamp(0, 255).to(torch.uint8), self._colour, seed)
        return self.preset.erase_batch(x.float(), generator)

    def _iter_ragged(self):
        if self._ragged_loader is None:
            self._ragged_loader = self._make_ragged_loader()
        for x, y, failed in self._ragged_loader:
            self._record_skipped(failed)
            if len(y):
                yield self._finish(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))

    def _make_ragged_loader(self) -> DataLoader:
        """One DataLoader for the whole run: its workers stay up between epochs (persistent
        workers matter where processes are spawned, not forked: macOS, Windows); the sampler,
        which runs in this process, hands them each epoch's order and seeds."""
        if self.train:
            transform = self.preset.train_transform()
        else:  # a lazy eval store decodes through the eval preprocessing already: not twice
            transform = None if self.store.eval_ready else self._eval_transform
        return DataLoader(
            _TransformedImages(self.store, transform),
            batch_size=self.batch_size,
            sampler=_EpochOrder(self),
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
            pin_memory=self.device.type == "cuda",
            collate_fn=_collate_readable,
        )

    def close(self) -> None:
        """Stop the persistent workers now: explicitly it takes milliseconds, where leaving
        them to garbage collection waits out torch's join timeouts (5 s a worker)."""
        iterator = getattr(getattr(self, "_ragged_loader", None), "_iterator", None)  # None if __init__ failed
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self._ragged_loader = None

    def __del__(self):
        self.close()

    def _record_skipped(self, failed: list[tuple[str, str]]) -> None:
        """Files that stopped decoding mid-run (with --cache none) are skipped and counted, once each."""
        known = {origin for origin, _ in self.store.skipped}
        for origin, reason in failed:
            if origin not in known:
                log.warning("skipping an image: %s", reason)
                self.store.skipped.append((origin, reason))

    def _finish(self, x_0_255: torch.Tensor, y: torch.Tensor):
        x = normalize(x_0_255, *self._mean_std)  # Preset.normalize, with the constants kept on the device
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


class _EpochOrder(Sampler):
    """Yields (store index, augmentation seed) for the loader's current epoch.

    The seed depends on (epoch seed, position), so augmentation does not depend on how
    many workers there are or which worker gets which item.
    """

    def __init__(self, loader: "BatchLoader"):
        # A weak reference: no cycle, so a dropped BatchLoader is freed (and its workers
        # stopped by close()) at once rather than by the cycle collector.
        self.loader = weakref.proxy(loader)

    def __len__(self) -> int:
        return self.loader.shard_size

    def __iter__(self):
        loader = self.loader
        seed = epoch_seed(loader.seed, loader.epoch, loader.rank)
        return iter([(index, seed + position) for position, index in enumerate(loader.indices().tolist())])


class _TransformedImages(Dataset):
    """Store images through a per-sample transform, indexed by (store index, seed)."""

    def __init__(self, store: ImageStore, transform):
        self.store, self.transform = store, transform

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index_and_seed: tuple[int, int]):
        """(image, label, None), or (None, None, (origin, reason)) for a file that cannot be read."""
        index, seed = index_and_seed
        torch.manual_seed(seed)
        try:
            image = self.store.images[index]
        except DataError as error:
            return None, None, (self.store.origin[index], str(error))
        return image if self.transform is None else self.transform(image), self.store.labels[index], None


def _collate_readable(items):
    """Stack the readable samples of a batch; pass the unreadable ones on for counting."""
    readable = [(x, y) for x, y, failed in items if failed is None]
    failed = [failed for _, _, failed in items if failed is not None]
    if not readable:
        return torch.empty(0), torch.empty(0, dtype=torch.int64), failed
    xs, ys = zip(*readable)
    return torch.stack(xs), torch.stack(ys), failed
