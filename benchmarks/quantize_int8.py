"""int8 against float: torchvision resnet18 at 64 px on real MNIST (as RGB), exported with
`export --quantize int8`; file size, batch-1 latency and validation accuracy of both files.

    .venv/bin/python benchmarks/quantize_int8.py                       # 300 digits per class, 2 epochs
    .venv/bin/python benchmarks/quantize_int8.py --per-class 1000 --epochs 3

The run trains on a seeded slice of MNIST train from the IDX folder itself (so its config.yaml
records that folder), and the int8 export calibrates on 128 of those training images, as
`visionfit export` does by default. Accuracy: 2,000 seeded t10k digits (the run's validation
split) through onnxruntime, float and int8 files alike. Latency: onnxruntime CPU, batch 1,
median of 30 runs after 5. Prints a markdown table.
"""
import argparse
import time
from pathlib import Path

import onnxruntime

import visionfit
from transfer_common import MNIST, machine, markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--project", default="runs/bench_int8")
    args = parser.parse_args()
    started = time.perf_counter()
    run = visionfit.fit("resnet18", str(args.data), channels=3, image_size=64, max_per_class=args.per_class,
                        epochs=args.epochs, optimizer="adam", lr=1e-3, batch_size=64, device="cpu", quiet=True,
                        project=args.project)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    result = visionfit.export_int8(run.best_model, run.run_dir / "model.int8.onnx", check=True)
    exported = time.perf_counter() - started
    rows = [["float32", f"{result.float_bytes / 1e6:.2f}", f"{result.float_ms:.2f}", f"{result.float_accuracy:.2%}"],
            ["int8 (QDQ, per-channel)", f"{result.int8_bytes / 1e6:.2f}", f"{result.int8_ms:.2f}",
             f"{result.int8_accuracy:.2%}"]]
    print(f"resnet18, 64 px RGB, real MNIST ({args.per_class}/class, {args.epochs} epochs, {trained:.0f} s training; "
          f"best val_acc {run.best_score:.2%}); int8 export + measurement {exported:.0f} s; "
          f"onnxruntime {onnxruntime.__version__}; {machine()}\n")
    print(markdown_table(["ONNX file", "size MB", "latency ms (batch 1)",
                          f"accuracy ({result.accuracy_images:,} t10k images)"], rows))
    print("\n" + "\n".join(parity.format() for parity in result.checks))


if __name__ == "__main__":
    main()
