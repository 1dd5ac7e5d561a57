"""The decoded-store cache on disk: how much sooner a second run on the same photos starts.

    PYTHONPATH=src python benchmarks/disk_cache.py                  # 2,000 JPEGs: 1,600 train + 400 val
    PYTHONPATH=src python benchmarks/disk_cache.py --per-class 100  # a quick look

The folders come from bench_photos.make_folder (random crops of scikit-image's photos, 300-500
px JPEGs); the cache is a fresh temporary folder ($VISIONFIT_CACHE). Three measurements, each a
first run (decode, then write the entry) and a second run (the entry is read instead):
1. the store alone: every JPEG decoded into a presized uniform uint8 store (shorter side to
   --presize, center crop: issue #12's store) through cached_store, and build_store alone;
2. visionfit.fit(--model, epochs=1) on that folder: seconds from the call to the end of the
   first training step (the run stops there; every store is built before it). Photos of mixed
   sizes are stored as presized squares, so their training store is cached as well as
   validation's eval store (before the presized store, it was ragged and not cached);
3. the same on a folder whose JPEGs share one size (every crop resized to 400 x 400), whose
   training store is uniform, so it is cached too: what every photo run gets once training
   stores are presized. Against it, the same fit on 40 such images: what a start costs that
   does not depend on the number of images (model, summary, the first step itself).
"""
import argparse
import os
import platform
import tempfile
import time
from datetime import date
from functools import partial
from pathlib import Path

import torch
from PIL import Image

import visionfit
import visionfit.data.prepare  # noqa: F401  (imported by any run; its first import is not the cache's cost)
from bench_photos import make_folder
from visionfit.data.disk_cache import DiskCache, cache_folder, cached_store
from visionfit.data.preprocess import Preprocess
from visionfit.data.samples import Samples
from visionfit.data.scan import with_scan
from visionfit.data.store import build_store
from visionfit.train.callbacks import ProgressPrinter

SQUARE_SIDE = 400


class FirstStep(Exception):
    """Raised at the end of the first training step: what follows is not what is measured."""


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def store_seconds(root: Path, presize: int, workers: int) -> dict[str, float]:
    """Seconds to scan every JPEG under root (every run does, cache or not), and to build their
    presized store: decode only, decode + write the entry, and read the entry."""
    paths = sorted(root.rglob("*.jpg"))
    scan, samples = timed(lambda: with_scan(Samples(labels=[0] * len(paths), paths=paths)))
    presized = Preprocess(presize, 3, "shorter", presize, "bilinear", (0.5,) * 3, (0.25,) * 3).apply
    build = partial(build_store, samples, 3, workers=workers, prepare=presized)
    cache = DiskCache(cache_folder() / "store-only", cap_bytes=20 * 10**9)
    spec = {"bench": presize}
    decode, _ = timed(build)
    first, built = timed(lambda: cached_store(samples, spec, build, cache))
    second, hit = timed(lambda: cached_store(samples, spec, build, cache))
    assert torch.equal(built.images, hit.images)
    return {"images": len(samples), "scan": scan, "decode": decode, "first": first, "second": second,
            "bytes": built.images.numel()}


def seconds_to_first_step(root: Path, model: str, size: int, project: Path, workers: int) -> float:
    """visionfit.fit on root until its first training step ends."""
    def stop(self, trainer, step, loss):
        raise FirstStep

    original, ProgressPrinter.on_batch_end = ProgressPrinter.on_batch_end, stop
    start = time.perf_counter()
    try:
        visionfit.fit(model, str(root), image_size=size, epochs=1, batch_size=32, quiet=True,
                      project=str(project), workers=workers)
    except FirstStep:
        return time.perf_counter() - start
    finally:
        ProgressPrinter.on_batch_end = original
    raise RuntimeError("fit ended without a training step")


def squared(root: Path, target: Path) -> Path:
    """A copy of root's folders with every JPEG resized to SQUARE_SIDE x SQUARE_SIDE."""
    for path in root.rglob("*.jpg"):
        out = target / path.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).resize((SQUARE_SIDE, SQUARE_SIDE)).save(out)
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=800, help="training JPEGs per class (val: a quarter)")
    parser.add_argument("--presize", type=int, default=74, help="the store's side (image_size x 1.15)")
    parser.add_argument("--model", default="resnet18", help="fit's model")
    parser.add_argument("--size", type=int, default=64, help="fit's image_size")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads and loader workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VISIONFIT_CACHE"] = str(Path(tmp) / "cache")
        photos = make_folder(Path(tmp) / "photos", args.per_class)
        square = squared(photos, Path(tmp) / "square")
        few = squared(make_folder(Path(tmp) / "few", 20, seed=1), Path(tmp) / "few-square")
        store = store_seconds(photos, args.presize, args.workers)
        fits = {name: [seconds_to_first_step(root, args.model, args.size, Path(tmp) / f"runs-{name}-{run}",
                                             args.workers) for run in (1, 2)]
                for name, root in (("mixed", photos), ("square", square), ("few", few))}
    print(report(store, fits, args))


def report(store: dict, fits: dict, args) -> str:
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), {torch.get_num_threads()} torch threads; "
        f"date: {date.today()}; torch {torch.__version__}; {store['images']:,} JPEGs of 300-500 px "
        f"({args.per_class * 2:,} train + {args.per_class // 4 * 2:,} val), {args.workers} decoding threads",
        "",
        f"| store of {store['images']:,} JPEGs at {args.presize} px ({store['bytes'] / 1e6:.0f} MB uint8) | seconds |",
        "|---|---|",
        f"| scan: headers + content hash (every run, before any store) | {store['scan']:.2f} |",
        f"| decode only (build_store, no cache) | {store['decode']:.2f} |",
        f"| first run: decode + write the entry | {store['first']:.2f} |",
        f"| second run: entry read (memmap) | {store['second']:.3f} |",
        f"| **speed-up** | **{store['decode'] / store['second']:,.0f}x** |",
        "",
        f"| visionfit.fit({args.model}, image_size={args.size}, epochs=1): seconds to the end of the first step "
        "| first run | second run |",
        "|---|---|---|",
        f"| photos of mixed sizes (presized: train and val stores cached) | {fits['mixed'][0]:.1f} "
        f"| {fits['mixed'][1]:.1f} |",
        f"| photos all {SQUARE_SIDE} x {SQUARE_SIDE} (train and val stores cached) | {fits['square'][0]:.1f} "
        f"| {fits['square'][1]:.1f} |",
        f"| 40 + 10 such photos: the start that does not depend on the data | {fits['few'][0]:.1f} "
        f"| {fits['few'][1]:.1f} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
