"""`--freeze backbone` as typed, no augmentation flag: cached features (now) vs random crops on images (before).

    .venv/bin/python benchmarks/transfer_frozen_default.py                      # 100 per class, 96 px, 5 epochs
    .venv/bin/python benchmarks/transfer_frozen_default.py --seeds 0 1 2 --epochs 3
    .venv/bin/python benchmarks/transfer_frozen_default.py --sides default --seeds 0 1   # one side only

Pretrained timm:efficientnet_lite0 (offline package weights), --freeze backbone and nothing
about augmentation, on real MNIST grey -> 3 channels at 96 px. Now a frozen backbone trains
without a random crop by default, so its features are computed once ("frozen backbone
default"). Before, the same command trained with the recipe's light augmentation (pad 12 +
random crop) through the whole frozen net every epoch: `--augment light` asks for exactly
that today. Reports training images/s over the whole run (caching counted, as metrics.csv
counts it in epoch 1, val features included, which the run on images computes every epoch
outside that count), the wall time of the whole run, best val accuracy (t10k[2000:2500]) and
test accuracy (t10k[:2000]), per seed and as mean ± std.
"""
import argparse
import statistics
import time
from pathlib import Path

import visionfit
from transfer_common import MNIST, machine, markdown_table, mnist_splits, spread

RECIPE = dict(channels=3, image_size=96, freeze="backbone", pretrained=True, optimizer="sgd", lr=0.05, momentum=0.9,
              scheduler="cosine", batch_size=64, device="cpu", quiet=True)
SIDES = {"augment light": {"augment": "light"}, "default": {}}  # the first is what the default did before


def run(splits, side: str, seed: int, args) -> dict:
    started = time.perf_counter()
    result = visionfit.fit("timm:efficientnet_lite0", splits, **RECIPE, **SIDES[side], epochs=args.epochs,
                           max_per_class=args.per_class, seed=seed, project=args.project,
                           name=f"{side.replace(' ', '_')}_{seed}")
    train_s = sum(row["seconds"] for row in result.history)  # caching included (CachingTime)
    return {"images_per_s": result.train_images * len(result.history) / train_s, "train_s": train_s,
            "wall_s": time.perf_counter() - started, "val": 100 * result.best_score,
            "test": 100 * result.test["acc"], "epoch_1": result.history[0]["images_per_s"],
            "later": statistics.median(row["images_per_s"] for row in result.history[1:]) if args.epochs > 1 else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sides", nargs="+", choices=list(SIDES), default=list(SIDES))
    parser.add_argument("--project", default="runs/bench_frozen_default")
    args = parser.parse_args()
    splits = mnist_splits(args.data)
    runs = {side: [run(splits, side, seed, args) for seed in args.seeds] for side in args.sides}

    columns = (("images_per_s", 0), ("epoch_1", 0), ("later", 0), ("train_s", 1), ("wall_s", 0), ("val", 2), ("test", 2))
    rows = [[f"`--freeze backbone{' --augment light' if SIDES[side] else ''}`",
             *(spread([r[key] for r in results], decimals) for key, decimals in columns)]
            for side, results in runs.items()]
    print(f"Frozen pretrained timm:efficientnet_lite0, MNIST {args.per_class}/class ({args.per_class * 10} train "
          f"images), 96 px, {args.epochs} epochs, seeds {' '.join(map(str, args.seeds))}; {machine()}\n")
    print(markdown_table(["command", "train images/s (whole run)", "images/s epoch 1 (incl. caching)",
                          "images/s later epochs (median)", "train s", "wall s (with val, test, loading)",
                          "best val acc %", "test acc %"], rows))
    if len(runs) == len(SIDES):
        before, after = (statistics.mean(r["images_per_s"] for r in runs[side]) for side in ("augment light", "default"))
        print(f"\nwhole-run training speed-up of the default: {after / before:.1f}x")


if __name__ == "__main__":
    main()
