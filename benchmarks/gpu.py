"""Issue #12's GPU targets in one run, for the rare lease of a GPU machine.

    python benchmarks/gpu.py --mnist ../shared/datasets/mnist            # on the GPU machine
    python benchmarks/gpu.py --mnist ../shared/datasets/mnist --quick    # a smoke run on CPU

Sections, each printed as markdown as soon as it is measured (a lease can end mid-run):
1. LeNet on real MNIST: visionfit vs the seeds' tutorial loop (bench_train.py's two loops).
2. Time to 99.0% test accuracy on real MNIST: the training seconds summed up to the first
   epoch whose accuracy on the 10k test set reaches 99.0%.
3. Throughput on synthetic uint8 data held in memory (the batched device path): a CIFAR-style
   ResNet-18 (3x3 stem, no max-pool) at 32 px, and torchvision's ResNet-50 at 224 px.
Accuracy on synthetic data means nothing; those rows report images/s only.
"""
import argparse
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

import visionfit
from visionfit.data.idx import load_idx_folder
from visionfit.data.samples import DatasetSplits, Samples

sys.path.insert(0, str(Path(__file__).parent))
import bench_train  # noqa: E402  (the two loops of the CPU benchmark, unchanged)


def cifar_resnet18(num_classes: int = 10) -> nn.Module:
    """ResNet-18 as CIFAR papers use it: a 3x3 stride-1 stem and no max-pool."""
    net = torchvision.models.resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return net


def synthetic(count: int, side: int, classes: int = 10, seed: int = 0) -> DatasetSplits:
    rng = np.random.default_rng(seed)

    def samples(n):
        return Samples(labels=rng.integers(0, classes, n), images=rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
                       origin=[f"synthetic[{i}]" for i in range(n)])
    return DatasetSplits(name=f"synthetic{side}", class_names=[str(c) for c in range(classes)],
                         train=samples(count), val=samples(max(count // 50, 64)))


def lenet_section(splits, device, epochs, workers, project):
    ours = bench_train.visionfit_run(splits, epochs, device, project, 0)
    theirs = bench_train.tutorial_run(splits, epochs, device, workers, 0)
    print("| loop | train images/s (best epoch) | s/epoch | test acc |\n|---|---|---|---|")
    print(f"| tutorial (train_ch6, {workers} workers) | {theirs[0]:,.0f} | {theirs[1]:.2f} | {theirs[2]:.2%} |")
    print(f"| visionfit | {ours[0]:,.0f} | {ours[1]:.2f} | {ours[2]:.2%} |")
    print(f"| **ratio** | **{ours[0] / theirs[0]:.1f}x** | | |", flush=True)


RACES = [  # (model, options): short runs whose epochs are each a fraction of a second on a GPU
    ("lenet_bn", dict(epochs=6, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, scheduler="onecycle")),
    ("lenet_relu", dict(epochs=8, batch_size=256, optimizer="sgd", lr=0.05, momentum=0.9, scheduler="onecycle")),
    ("resnet18_d2l", dict(epochs=4, batch_size=512, optimizer="sgd", lr=0.1, momentum=0.9, scheduler="onecycle")),
]


def race_section(splits, device, project, races):
    print("| model | recipe | epochs | test acc per epoch | training s to 99.0% |\n|---|---|---|---|---|")
    for model, options in races:
        result = visionfit.fit(model, splits, device=device, quiet=True, project=project, seed=0, **options)
        accs = [row["val_acc"] for row in result.history]
        seconds = np.cumsum([row["seconds"] for row in result.history])
        reached = next((f"{s:.2f}" for s, a in zip(seconds, accs) if a >= 0.99), "not reached")
        recipe = ", ".join(f"{k} {v}" for k, v in options.items() if k != "epochs")
        print(f"| {model} | {recipe} | {len(accs)} | {' '.join(f'{a:.2%}' for a in accs)} | {reached} |", flush=True)


def throughput_section(device, project, rows):
    """rows: (label, model factory, stored side, images, batch, options); options may set
    image_size and augment (default: the stored side, no augmentation)."""
    print("| model | stored px | batch | options | images/s (best epoch) | s/epoch |\n|---|---|---|---|---|---|")
    for label, make, side, count, batch, options in rows:
        settings = {"image_size": side, "augment": "none", **options}
        result = visionfit.fit(make(), synthetic(count, side), batch_size=batch, epochs=2, device=device, quiet=True,
                               project=project, **settings)
        best = max(result.history, key=lambda row: row["images_per_s"])
        print(f"| {label} | {side} | {batch} | {options or 'defaults'} | {best['images_per_s']:,.0f} | "
              f"{best['seconds']:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="folder of the real MNIST IDX files")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the tutorial loop")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs, measure nothing")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (CIFAR-style resnet18)")
    args = parser.parse_args()
    splits = load_idx_folder(Path(args.mnist))
    scale = 1 if not args.quick else 0
    if args.quick:
        splits = DatasetSplits(splits.name, splits.class_names, _head(splits.train, 2000), _head(splits.val, 500))
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.machine()
    print(f"device: {args.device} ({gpu}), date: {date.today()}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}\n", flush=True)
    with tempfile.TemporaryDirectory() as project:
        started = time.perf_counter()
        print("### LeNet (lenet_relu) on real MNIST, 3 epochs, batch 256, SGD 0.05\n")
        lenet_section(splits, args.device, 3 if scale else 1, args.workers, project)
        print("\n### Time to 99.0% on real MNIST (test set of 10k)\n")
        race_section(splits, args.device, project, RACES if scale else [(m, {**o, "epochs": 1}) for m, o in RACES])
        print("\n### Throughput, synthetic uint8 data in memory (bf16 autocast, channels_last: visionfit's CUDA defaults)\n")
        resnet50 = lambda: torchvision.models.resnet50(num_classes=10)  # noqa: E731
        rows = [("CIFAR-style resnet18", cifar_resnet18, 32, 50_000 if scale else 256, 512, {}),
                ("torchvision resnet50", resnet50, 224, 10_240 if scale else 32, 256 if scale else 16, {}),
                ("torchvision resnet50, presized store: random resized crop + flip on the device", resnet50, 258,
                 10_240 if scale else 32, 256 if scale else 16, {"image_size": 224, "augment": "light"})]
        if args.compile:
            rows += [(label, make, side, count, batch, {**options, "compile": True})
                     for label, make, side, count, batch, options in rows[:1]]
        throughput_section(args.device, project, rows)
        print(f"\nwall time of this script: {time.perf_counter() - started:.0f} s")


def _head(samples: Samples, n: int) -> Samples:
    return Samples(labels=samples.labels[:n], images=samples.images[:n], origin=samples.origin[:n])


if __name__ == "__main__":
    main()
