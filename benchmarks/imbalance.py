"""Imbalanced MNIST: plain training vs --class-weights vs --sampler balanced.

    .venv/bin/python benchmarks/imbalance.py                       # classes 0-4 at 5%, 5 epochs, seeds 0 1 2
    .venv/bin/python benchmarks/imbalance.py --data PATH --seeds 0 --epochs 3
    .venv/bin/python benchmarks/imbalance.py --ways plain "class weights auto" --lr 0.02

The training set is MNIST train with classes 0-4 cut to --keep of their images (a seeded
choice, the same for every run); 20% of it, stratified and seeded, is held out as the
(equally imbalanced) validation split. Every run trains the default model (lenet_relu) with
the default recipe for --epochs, keeps the epoch with the best validation macro-F1
(--monitor macro_f1, the same for all three), and is tested on the full, balanced t10k
(10,000 digits). The three runs differ only in --class-weights / --sampler. Prints a
markdown table: test macro-F1, balanced accuracy and accuracy, per seed and mean ± std.
"""
import argparse
import time
from pathlib import Path

import numpy as np

import visionfit
from transfer_common import MNIST, machine, markdown_table, spread
from visionfit.data.idx import load_idx_folder
from visionfit.data.samples import DatasetSplits
from visionfit.data.validation import settle_validation

WAYS = {"plain": {}, "class weights auto": {"class_weights": "auto"},
        "class weights effective": {"class_weights": "effective"}, "sampler balanced": {"sampler": "balanced"}}
MINORITY = range(5)
VAL_FRACTION = 0.2


def imbalanced_splits(folder: Path, keep: float, seed: int) -> DatasetSplits:
    """MNIST train with the MINORITY classes cut to `keep` of their images, a stratified 20% of
    that as validation, and the full t10k as test."""
    mnist = load_idx_folder(folder)
    rng = np.random.default_rng(seed)
    labels = mnist.train.labels
    kept = [np.flatnonzero(labels == c) for c in range(len(mnist.class_names))]
    kept = [rng.choice(idx, round(keep * len(idx)), replace=False) if c in MINORITY else idx
            for c, idx in enumerate(kept)]
    train = mnist.train.subset(np.sort(np.concatenate(kept)))
    splits = DatasetSplits("mnist_imbalanced", mnist.class_names, train, test=mnist.val)
    return settle_validation(splits, seed, fraction=VAL_FRACTION)


def run(splits: DatasetSplits, way: str, seed: int, args) -> dict:
    started = time.perf_counter()
    lr = {} if args.lr is None else {"lr": args.lr}
    result = visionfit.fit(None, splits, epochs=args.epochs, seed=seed, monitor="macro_f1", device="cpu", quiet=True,
                           project=args.project, name=f"{way.replace(' ', '_')}_s{seed}", **WAYS[way], **lr)
    return {"way": way, "seed": seed, "best_epoch": result.best_epoch, **result.test,
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST, help="a folder of the four MNIST IDX files")
    parser.add_argument("--keep", type=float, default=0.05, help="fraction of classes 0-4 kept")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=None, help="for every run; default: the recipe's (sgd 0.05)")
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--project", default="runs/bench_imbalance")
    args = parser.parse_args()
    splits = imbalanced_splits(args.data, args.keep, seed=0)
    counts = np.bincount(splits.train.labels, minlength=10)
    runs = [run(splits, way, seed, args) for seed in args.seeds for way in args.ways]

    rows = [[r["way"], r["seed"], r["best_epoch"], f"{r['macro_f1']:.4f}", f"{r['balanced_acc']:.2%}",
             f"{r['acc']:.2%}", f"{r['seconds']:.0f}"] for r in runs]
    for way in args.ways:
        mine = [r for r in runs if r["way"] == way]
        rows.append([f"**{way}** (n={len(mine)})", "", "", spread([r["macro_f1"] for r in mine], decimals=4),
                     spread([r["balanced_acc"] * 100 for r in mine], decimals=2) + " %",
                     spread([r["acc"] * 100 for r in mine], decimals=2) + " %",
                     spread([r["seconds"] for r in mine], decimals=0)])
    print(f"Imbalanced MNIST: classes 0-4 cut to {args.keep:.0%} (training images per class "
          f"{', '.join(map(str, counts))}; validation {len(splits.val)}, as imbalanced), lenet_relu, default recipe, "
          f"{args.epochs} epochs, lr {args.lr or 'default'}, best epoch by validation macro-F1; test = t10k (10,000, balanced); {machine()}\n")
    print(markdown_table(["run", "seed", "best epoch", "test macro-F1", "test balanced acc", "test acc", "wall s"],
                         rows))


if __name__ == "__main__":
    main()
