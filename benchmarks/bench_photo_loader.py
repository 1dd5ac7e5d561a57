"""The training loader alone on photos (no model): images/s of BatchLoader over bench_photos' JPEGs.

    python benchmarks/bench_photo_loader.py                          # 64 px, --augment light, CPU
    python benchmarks/bench_photo_loader.py --size 224 --augment none --device cuda

It isolates the data path that issue #12 item 2 changed: decoding once into a presized
(or eval-view) store, then random resized crops and flips on whole batches, against the
per-image DataLoader path. Reports the decode time and the best of --epochs epochs.
"""
import argparse
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from visionfit.config import Config
from visionfit.data.loader import BatchLoader
from visionfit.data.plan import plan_input
from visionfit.data.prepare import prepare_data, resolve_splits

sys.path.insert(0, str(Path(__file__).parent))
from bench_photos import make_folder  # noqa: E402  (the same folder as the training benchmark)


def loader_images_per_s(root: Path, size: int, augment: str, device: str, epochs: int, workers: int):
    """(seconds to decode the stores, best epoch's training images/s, the training store's shape or 'ragged')."""
    config = Config.from_options(data=str(root), image_size=size, workers=workers, augment=augment, quiet=True)
    splits = resolve_splits(config.data, 0)
    started = time.perf_counter()
    prepared = prepare_data(config.data, splits, plan_input(config.data, splits.train, size))
    decode_s = time.perf_counter() - started
    loader = BatchLoader(prepared.train, prepared.preset, 32, train=True, device=torch.device(device), workers=workers)
    best = 0.0
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        started, seen = time.perf_counter(), 0
        for x, y in loader:
            seen += len(y)
        if x.is_cuda:
            torch.cuda.synchronize()
        best = max(best, seen / (time.perf_counter() - started))
    loader.close()
    store = tuple(prepared.train.images.shape) if prepared.train.uniform else "ragged"
    return decode_s, best, store


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--augment", default="light", choices=["none", "light"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(Path(tmp) / "photos", args.per_class)
        decode_s, best, store = loader_images_per_s(root, args.size, args.augment, args.device, args.epochs, args.workers)
    print(f"device: {args.device} ({platform.machine()}, {torch.get_num_threads()} threads), date: {date.today()}, "
          f"torch {torch.__version__}; {2 * args.per_class} training JPEGs at {args.size} px, --augment {args.augment}, "
          f"batch 32, {args.workers} loader workers")
    print(f"training store {store}: decoded in {decode_s:.1f} s; loader {best:,.0f} images/s (best epoch)")


if __name__ == "__main__":
    main()
