"""Multi-label MNIST: two real digits side by side, tagged with the set of digits they show.

    .venv/bin/python benchmarks/multilabel_mnist.py                        # 4,000 train, 1,000 test, seeds 0 1 2
    .venv/bin/python benchmarks/multilabel_mnist.py --train 2000 --epochs 3 --seeds 0

Builds the set as the files a user would have: 56 x 28 PNGs of two MNIST digits (train
digits for train.csv, t10k digits for test.csv, pairs drawn with a fixed seed) and CSVs with
an image,tags header ("3 7", or "4" when both digits are 4s). `visionfit train` reads the tags
column as multi-label, holds out 20% of train.csv for validation (stratified by each image's
rarest tag), picks each class's threshold and the best epoch (mAP) there. The test CSV is then
predicted (tags against the truth: exact-match ratio) and evaluated (mAP, micro/macro F1 and
per-class precision/recall at the model file's thresholds). Prints a markdown table.
"""
import argparse
import csv
import time
from pathlib import Path

import numpy as np
from PIL import Image

import visionfit
from transfer_common import MNIST, machine, markdown_table, spread
from visionfit.data.idx import idx_files, read_idx

RECIPE = dict(optimizer="adam", scheduler="cosine", device="cpu", quiet=True)


def write_pairs(folder: Path, images: np.ndarray, labels: np.ndarray, count: int, name: str, seed: int) -> Path:
    """`count` side-by-side pairs of `images` as PNGs in folder/name/, and folder/name.csv (image,tags)."""
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, len(images), size=(count, 2))
    (folder / name).mkdir(parents=True, exist_ok=True)
    rows = [["image", "tags"]]
    for i, (left, right) in enumerate(pairs):
        Image.fromarray(np.hstack([images[left], images[right]])).save(folder / name / f"{i}.png")
        rows.append([f"{name}/{i}.png", " ".join(str(d) for d in sorted({int(labels[left]), int(labels[right])}))])
    with open(folder / f"{name}.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    return folder / f"{name}.csv"


def build(mnist: Path, out: Path, train: int, test: int) -> tuple[Path, Path]:
    files = idx_files(mnist)
    train_csv = write_pairs(out, read_idx(files[("train", "images")]), read_idx(files[("train", "labels")]),
                            train, "train", seed=0)
    test_csv = write_pairs(out, read_idx(files[("t10k", "images")]), read_idx(files[("t10k", "labels")]),
                           test, "test", seed=1)
    return train_csv, test_csv


def run(model: str, train_csv: Path, test_csv: Path, seed: int, args) -> dict:
    started = time.perf_counter()
    result = visionfit.fit(model, str(train_csv), epochs=args.epochs, seed=seed, project=args.project, lr=args.lr,
                           batch_size=args.batch_size, image_size=args.image_size,
                           name=f"multilabel_{model}_{args.image_size}px_b{args.batch_size}_s{seed}", **RECIPE)
    seconds = time.perf_counter() - started
    rows = visionfit.predict(result.best_model, str(test_csv), out=result.run_dir / "test_tags.csv", device="cpu")
    report = visionfit.evaluate(result.best_model, str(test_csv), device="cpu")
    best = result.history[result.best_epoch - 1]
    return {"model": model, "seed": seed, "val_map": best["val_map"], "map": report.map,
            "micro_f1": report.micro_f1, "macro_f1": report.macro_f1,
            "exact": float(np.mean([row["label"] == row["true"] for row in rows])),
            "recall_min": min(r["recall"] for r in report.per_class),
            "precision_min": min(r["precision"] for r in report.per_class), "seconds": seconds,
            "run_dir": result.run_dir}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST, help="folder of the MNIST IDX files")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_multilabel_data"), help="where the PNGs and CSVs go")
    parser.add_argument("--train", type=int, default=4000, help="training pairs (20%% become validation)")
    parser.add_argument("--test", type=int, default=1000, help="test pairs (t10k digits)")
    parser.add_argument("--models", nargs="+", default=["lenet_relu"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=56, help="56 keeps the digits' shape; 28 squashes each pair")
    parser.add_argument("--lr", type=float, default=0.002, help="Adam's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--project", default="runs/bench_multilabel")
    args = parser.parse_args()
    train_csv, test_csv = build(args.data, args.out, args.train, args.test)
    runs = [run(model, train_csv, test_csv, seed, args) for model in args.models for seed in args.seeds]

    keys = ("val_map", "map", "micro_f1", "macro_f1", "exact", "precision_min", "recall_min")
    rows = [[r["model"], r["seed"], *(f"{r[k]:.4f}" for k in keys), f"{r['seconds']:.0f}"] for r in runs]
    for model in args.models:
        mine = [r for r in runs if r["model"] == model]
        rows.append([f"**{model}** (n={len(mine)})", "", *(spread([r[k] for r in mine], decimals=4) for k in keys),
                     spread([r["seconds"] for r in mine], decimals=0)])
    print(f"Multi-label MNIST: {args.train:,} train pairs (20% held out for validation), {args.test:,} test pairs "
          f"of t10k digits, 56 x 28 px read at {args.image_size} x {args.image_size}, Adam lr {args.lr:g}, batch {args.batch_size}, cosine, "
          f"{args.epochs} epochs; {machine()}\n")
    print(markdown_table(["model", "seed", "val mAP (best epoch)", "test mAP", "test micro-F1", "test macro-F1",
                          "test exact match", "min class precision", "min class recall", "train s"], rows))


if __name__ == "__main__":
    main()
