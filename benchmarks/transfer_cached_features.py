"""Frozen backbone: training the head on cached features vs on images, same run otherwise.

    .venv/bin/python benchmarks/transfer_cached_features.py               # 100 per class, 96 px, 5 epochs
    .venv/bin/python benchmarks/transfer_cached_features.py --per-class 50 --epochs 3

Pretrained timm:efficientnet_lite0 (offline package weights), --freeze backbone, MNIST
grey -> 3 channels at 96 px without random augmentation (--pad 0), so the training view
is fixed and features can be cached. The same run with --no-cache-features pushes every
image through the frozen backbone every epoch. Reports seconds per training epoch (median
over epochs), the one-off caching cost, accuracy on t10k[:2000], and the speed-up.
"""
import argparse
import statistics
import time
from pathlib import Path

import visionfit
from transfer_common import MNIST, machine, markdown_table, mnist_splits

RECIPE = dict(channels=3, image_size=96, pad=0, freeze="backbone", pretrained=True, optimizer="sgd", lr=0.05,
              momentum=0.9, scheduler="cosine", batch_size=64, device="cpu", quiet=True)


def run(splits, cache: bool, args) -> dict:
    started = time.perf_counter()
    result = visionfit.fit("timm:efficientnet_lite0", splits, **RECIPE, cache_features=cache, epochs=args.epochs,
                           max_per_class=args.per_class, seed=args.seed, project=args.project,
                           name=f"cached_{'on' if cache else 'off'}")
    epoch_seconds = [row["seconds"] for row in result.history]
    return {"cache": cache, "epoch_s": statistics.median(epoch_seconds), "train_s": sum(epoch_seconds),
            "wall_s": time.perf_counter() - started, "val": result.best_score, "test": result.test["acc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", default="runs/bench_transfer")
    args = parser.parse_args()
    splits = mnist_splits(args.data)
    plain, cached = run(splits, False, args), run(splits, True, args)

    rows = [[("cached features" if r["cache"] else "images through the frozen backbone"), f"{r['epoch_s']:.3f}",
             f"{r['train_s']:.1f}", f"{r['wall_s']:.0f}", f"{r['val']:.2%}", f"{r['test']:.2%}"]
            for r in (plain, cached)]
    print(f"Frozen pretrained timm:efficientnet_lite0 backbone, MNIST {args.per_class}/class "
          f"({args.per_class * 10} train images), 96 px, {args.epochs} epochs; {machine()}\n")
    print(markdown_table(["head trained on", "s / train epoch (median)", "train s (all epochs)",
                          "wall s (incl. caching, val, test)", "best val acc", "test acc (t10k[:2000])"], rows))
    print(f"\nper-epoch speed-up: {plain['epoch_s'] / cached['epoch_s']:.0f}x")


if __name__ == "__main__":
    main()
