"""int8 against float: torchvision resnet18 at 64 px on real MNIST digits (as RGB), exported with
`export --quantize int8`; file size, batch-1 latency and validation accuracy of both files.

    .venv/bin/python benchmarks/quantize_int8.py                       # 200 digits per class, 2 epochs
    .venv/bin/python benchmarks/quantize_int8.py --per-class 1000 --epochs 3

The digits are written as a real-image folder first (train/ from MNIST train, val/ from
t10k, PNG files per class), and the run trains on that folder, so its config.yaml records it
and the int8 export calibrates on 128 of its training images, as `visionfit export` does by
default. Accuracy: the val/ images through onnxruntime, float and int8 files alike.
Latency: onnxruntime CPU, batch 1, median of 30 runs after 5. Prints a markdown table.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

import visionfit
from transfer_common import MNIST, machine, markdown_table
from visionfit.data.idx import load_idx_folder


def write_digit_folder(mnist: Path, root: Path, per_class: int, val_per_class: int) -> Path:
    """root/train/<digit>/*.png and root/val/<digit>/*.png: the first images of each digit."""
    digits = load_idx_folder(mnist)
    for split, samples, count in (("train", digits.train, per_class), ("val", digits.val, val_per_class)):
        for label, name in enumerate(digits.class_names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(samples.labels == label)[:count]:
                Image.fromarray(samples.images[i]).save(folder / f"{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--project", default="runs/bench_int8")
    args = parser.parse_args()
    folder = write_digit_folder(args.data, Path(args.project) / "mnist_png", args.per_class, args.val_per_class)
    started = time.perf_counter()
    run = visionfit.fit("resnet18", str(folder), channels=3, image_size=64, epochs=args.epochs, optimizer="adam", lr=1e-3, batch_size=64, device="cpu", quiet=True,
                        project=args.project)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    result = visionfit.export_int8(run.best_model, run.run_dir / "model.int8.onnx", check=True)
    exported = time.perf_counter() - started
    rows = [["float32", f"{result.float_bytes / 1e6:.2f}", f"{result.float_ms:.2f}", f"{result.float_accuracy:.2%}"],
            ["int8 (QDQ, per-channel)", f"{result.int8_bytes / 1e6:.2f}", f"{result.int8_ms:.2f}",
             f"{result.int8_accuracy:.2%}"]]
    print(f"resnet18, 64 px RGB, real MNIST PNGs ({args.per_class}/class, {args.epochs} epochs, {trained:.0f} s training; "
          f"best val_acc {run.best_score:.2%}); int8 export + measurement {exported:.0f} s; "
          f"onnxruntime {onnxruntime.__version__}; {machine()}\n")
    print(markdown_table(["ONNX file", "size MB", "latency ms (batch 1)",
                          f"accuracy ({result.accuracy_images:,} val/ images)"], rows))
    print("\n" + "\n".join(parity.format() for parity in result.checks))


if __name__ == "__main__":
    main()
