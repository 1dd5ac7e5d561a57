"""Make src/visionfit/assets/mnist_sample.npz, the bundled default dataset.

    python scripts/make_embedded_sample.py --mnist ../shared/datasets/mnist

Takes the same number of images of every digit (seeded, kept in file order) from
the real MNIST train and t10k IDX files, and refuses to write more than 3 MB.
"""
import argparse
from pathlib import Path

import numpy as np

from visionfit.data.idx import read_idx

MAX_BYTES = 3 * 1024 * 1024
OUT = Path(__file__).resolve().parents[1] / "src" / "visionfit" / "assets" / "mnist_sample.npz"


def balanced_rows(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` row indices of each label, picked at random, returned in file order."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == label), per_class, replace=False) for label in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def split_arrays(folder: Path, prefix: str, per_class: int, seed: int) -> dict[str, np.ndarray]:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    rows = balanced_rows(labels, per_class, seed)
    split = "train" if prefix == "train" else "test"
    return {
        f"{split}_images": images[rows],
        f"{split}_labels": labels[rows].astype(np.uint8),
        # uint16 holds every row of a 60000-image file, at a third of int64's size.
        f"{split}_rows": rows.astype(np.uint16),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, required=True, help="the MNIST .gz IDX folder, e.g. ../shared/datasets/mnist")
    parser.add_argument("--train-per-class", type=int, default=1200)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    arrays = split_arrays(args.mnist, "train", args.train_per_class, args.seed)
    arrays |= split_arrays(args.mnist, "t10k", args.test_per_class, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    size_bytes = args.out.stat().st_size
    counts = f"{len(arrays['train_labels'])} train, {len(arrays['test_labels'])} test"
    print(f"wrote {args.out}: {counts}, {size_bytes / 1e6:.2f} MB")
    if size_bytes > MAX_BYTES:
        args.out.unlink()
        raise SystemExit(f"{size_bytes} bytes is over the {MAX_BYTES}-byte budget; lower --train-per-class")


if __name__ == "__main__":
    main()
