"""A folder in the seeds' hymenoptera layout, made of real MNIST digits (3s and 8s as the two classes).

    .venv/bin/python benchmarks/transfer_digits_folder.py digits_hymenoptera/

Writes train/{three,eight}/*.png (122 + 122 = 244 images, as many as hymenoptera's train)
from MNIST train and val/{three,eight}/*.png (77 + 76 = 153, as hymenoptera's val) from t10k,
each picked with a fixed seed. Used by examples/transfer_learning.md.
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from transfer_common import MNIST
from visionfit.data.idx import load_idx_folder

CLASSES = {"three": 3, "eight": 8}
COUNTS = {"train": (122, 122), "val": (77, 76)}


def write_split(out: Path, split: str, samples, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for (name, digit), count in zip(CLASSES.items(), COUNTS[split]):
        rows = rng.choice(np.flatnonzero(samples.labels == digit), size=count, replace=False)
        folder = out / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            Image.fromarray(samples.images[row]).save(folder / f"{row}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=MNIST)
    args = parser.parse_args()
    mnist = load_idx_folder(args.data)
    write_split(args.out, "train", mnist.train, seed=0)
    write_split(args.out, "val", mnist.val, seed=1)
    print(f"wrote {sum(1 for _ in args.out.rglob('*.png'))} images to {args.out}")


if __name__ == "__main__":
    main()
