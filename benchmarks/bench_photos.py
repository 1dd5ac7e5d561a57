"""Photo folders: visionfit (decode once into a presized store, crops batched) vs the seeds' ImageFolder loop and a bare loop.

    python benchmarks/bench_photos.py                 # 400 JPEGs in the hymenoptera layout, 3 epochs
    python benchmarks/bench_photos.py --size 96 --epochs 5
    python benchmarks/bench_photos.py --model mobilenet_v3_small --size 128

The folder is made from scikit-image's sample photos (random crops, 300-500 px JPEGs, two
classes), like the seeds' ants/bees data. Both sides train --model (resnet18) from scratch at
--size px with random resized crops and flips, SGD lr 0.01, batch 32, DataLoader workers=1
(visionfit's presized store needs none: its crops run on whole batches), and report training
images/s of the best epoch. The tutorial side is the seeds' 004 note:
datasets.ImageFolder + transforms.Compose + DataLoader, decoding every JPEG every epoch.
The bare side is the least anyone can write: the photos decoded once at --size (shorter side,
centre crop) into one normalised float tensor, a randperm per epoch, no augmentation, the same
model, batch and SGD: issue 12's "bare loop over resident tensors".
"""
import argparse
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

import visionfit

PHOTOS = {"ants": ["chelsea", "astronaut", "coffee"], "bees": ["rocket", "cat", "immunohistochemistry"]}


def make_folder(root: Path, per_class: int, seed: int = 0) -> Path:
    """root/train/<class>/*.jpg and root/val/<class>/*.jpg, random crops of real photos."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("val", per_class // 4)):
        for name, sources in PHOTOS.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                photo = getattr(skimage.data, sources[i % len(sources)])()
                h, w = photo.shape[:2]
                ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
                y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
                Image.fromarray(photo[y:y + ch, x:x + cw]).convert("RGB").save(root / split / name / f"{i}.jpg")
    return root


def tutorial_run(root: Path, size: int, epochs: int, device: str = "cpu", workers: int = 1,
                 model_name: str = "resnet18") -> float:
    """The seeds' loop: ImageFolder decodes and transforms every image every epoch."""
    torch.manual_seed(0)
    transform = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406],
                                                                                [0.229, 0.224, 0.225])])
    loader = DataLoader(datasets.ImageFolder(root / "train", transform), batch_size=32, shuffle=True, num_workers=workers)
    model = visionfit.create_model(model_name, num_classes=2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    best = 0.0
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            optimizer.step()
            seen += len(y)
            _ = loss.item()
        best = max(best, seen / (time.perf_counter() - start))
    return best


def bare_run(root: Path, size: int, epochs: int, device: str = "cpu", model_name: str = "resnet18") -> float:
    """Resident normalised tensors, no augmentation, forward/backward/step: the model's own speed."""
    torch.manual_seed(0)
    eval_view = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
                                    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    photos = datasets.ImageFolder(root / "train", eval_view)
    x = torch.stack([image for image, _ in photos]).to(device)
    y = torch.tensor(photos.targets).to(device)
    model = visionfit.create_model(model_name, num_classes=2).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    best = 0.0
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for index in torch.randperm(len(y), device=device).split(32):
            loss = nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _ = loss.item()
        best = max(best, len(y) / (time.perf_counter() - start))
    return best


def visionfit_run(root: Path, size: int, epochs: int, project: str, device: str = "cpu", workers: int = 1,
                  model_name: str = "resnet18") -> float:
    result = visionfit.fit(model_name, str(root), image_size=size, epochs=epochs, lr=0.01, batch_size=32,
                           scheduler="none", workers=workers, quiet=True, project=project, device=device)
    return max(row["images_per_s"] for row in result.history)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a visionfit model name, both sides")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers, both sides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(Path(tmp) / "photos", args.per_class)
        ours = visionfit_run(root, args.size, args.epochs, str(Path(tmp) / "runs"), args.device, args.workers, args.model)
        theirs = tutorial_run(root, args.size, args.epochs, args.device, args.workers, args.model)
        bare = bare_run(root, args.size, args.epochs, args.device, args.model)
    print(f"device: {args.device} ({platform.machine()}, {torch.get_num_threads()} threads), date: {date.today()}, "
          f"torch {torch.__version__}; {args.model} at {args.size} px, {2 * args.per_class} training JPEGs, "
          f"{args.epochs} epochs, batch 32, {args.workers} loader workers")
    print("| loop | train images/s (best epoch) |")
    print("|---|---|")
    print(f"| tutorial (ImageFolder, decode every epoch) | {theirs:,.1f} |")
    print(f"| visionfit (decode once, presized store, batched crops) | {ours:,.1f} |")
    print(f"| bare loop (resident float tensors, no augmentation) | {bare:,.1f} |")
    print(f"| **visionfit / tutorial** | **{ours / theirs:.1f}x** |")
    print(f"| **visionfit / bare loop** | **{ours / bare:.2f}x** |")


if __name__ == "__main__":
    main()
