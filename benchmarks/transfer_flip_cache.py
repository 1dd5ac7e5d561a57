"""Frozen backbone with a random flip: the head on cached features of both orientations vs on images.

    .venv/bin/python benchmarks/transfer_flip_cache.py                    # 40 photos per class, 5 epochs
    .venv/bin/python benchmarks/transfer_flip_cache.py --per-class 80 --epochs 10

Pretrained timm:efficientnet_lite0 (offline package weights), --freeze backbone, on real
photos (scikit-image's, cut by tests/photos.py write_odd_photos) stored at 64 x 64 so the
small-image recipe applies: with --pad 0 --flip, a horizontal flip is the only random
operation. Before: every image goes through the frozen backbone every epoch
(--no-cache-features, what visionfit did with any random augmentation). After: the features
of each image and of its mirror are cached once and each epoch picks one per image; the
caching time counts in epoch 1. Reports images/s per epoch (metrics.csv's), seconds,
and the best validation accuracy of both.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import visionfit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.photos import write_odd_photos  # noqa: E402
from transfer_common import machine, markdown_table  # noqa: E402

SIDE = 64  # stored side: at most SMALL_IMAGE_SIDE, so the small-image recipe (no random resized crop) applies
RECIPE = dict(pretrained=True, freeze="backbone", pad=0, flip=True, optimizer="sgd", lr=0.05, momentum=0.9,
              scheduler="cosine", batch_size=32, device="cpu", quiet=True)


def photo_folder(root: Path, per_class: int, seed: int) -> Path:
    """write_odd_photos' class folders, every photo squashed to SIDE x SIDE PNG."""
    odd = write_odd_photos(root / "odd", per_class=per_class, seed=seed)
    for path in sorted(odd.rglob("*.*")):
        target = root / "photos" / path.parent.name / (path.stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR).save(target)
    return root / "photos"


def run(data: Path, cache: bool, args, project: Path) -> dict:
    started = time.perf_counter()
    result = visionfit.fit("timm:efficientnet_lite0", str(data), **RECIPE, cache_features=cache, epochs=args.epochs,
                           seed=args.seed, project=str(project), name=f"flip_cache_{'on' if cache else 'off'}")
    rates = [row["images_per_s"] for row in result.history]
    return {"cache": cache, "rates": rates, "train_s": sum(row["seconds"] for row in result.history),
            "wall_s": time.perf_counter() - started, "val": result.best_score, "images": result.train_images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = photo_folder(Path(folder), args.per_class, args.seed)
        plain, cached = run(data, False, args, Path(folder) / "runs"), run(data, True, args, Path(folder) / "runs")
    rows = [[("cached features, both orientations" if r["cache"] else "images through the frozen backbone"),
             f"{r['rates'][0]:,.0f}", f"{np.median(r['rates'][1:]):,.0f}" if len(r["rates"]) > 1 else "-",
             f"{r['train_s']:.1f}", f"{r['wall_s']:.0f}", f"{r['val']:.2%}"] for r in (plain, cached)]
    print(f"Frozen pretrained timm:efficientnet_lite0, {args.per_class} photos per class (2 classes, "
          f"{plain['images']} train images, {SIDE} px stored, 224 px input), --pad 0 --flip, {args.epochs} epochs; "
          f"{machine()}\n")
    print(markdown_table(["head trained on", "images/s epoch 1 (incl. caching)", "images/s later epochs (median)",
                          "train s (all epochs)", "wall s", "best val acc"], rows))


if __name__ == "__main__":
    main()
