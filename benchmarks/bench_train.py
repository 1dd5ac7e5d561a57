"""visionfit's training loop vs the seeds' tutorial loop: same model, same data, same machine.

    python benchmarks/bench_train.py                     # real MNIST from ../shared, 2 epochs, seeds 0 1 2
    python benchmarks/bench_train.py --epochs 3 --device cuda

The tutorial side is d2l's train_ch6 as the seeds write it: a Dataset that turns each
image into a PIL image, ToTensor + Normalize per sample, a DataLoader, and a loop that
calls .item() for the loss and accuracy of every batch. Both train lenet_relu with SGD
(lr 0.05, momentum 0.9, batch 256, no augmentation) and evaluate on the 10k test set.
Prints a markdown table: images/s in training, seconds per epoch, test accuracy, ratio.
"""
import argparse
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import visionfit
from visionfit.data.idx import load_idx_folder

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
RECIPE = dict(lr=0.05, momentum=0.9, batch_size=256)


class TutorialMNIST(Dataset):
    """The seeds' custom Dataset: one PIL image per __getitem__, transformed per sample."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def tutorial_run(splits, epochs, device, workers, seed):
    """d2l's train_ch6 loop (per-batch .item(), evaluate_accuracy_gpu), timed per epoch."""
    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = DataLoader(TutorialMNIST(splits.train.images, splits.train.labels, transform),
                       batch_size=RECIPE["batch_size"], shuffle=True, num_workers=workers)
    test = DataLoader(TutorialMNIST(splits.val.images, splits.val.labels, transform),
                      batch_size=RECIPE["batch_size"], num_workers=workers)
    net = visionfit.create_model("lenet_relu", num_classes=10, in_channels=1).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"])
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        net.train()
        start = time.perf_counter()
        for X, y in train:
            X, y = X.to(device), y.to(device)
            optimizer.zero_grad()
            y_hat = net(X)
            loss = loss_fn(y_hat, y)
            loss.backward()
            optimizer.step()
            _ = (loss.item() * X.shape[0], (y_hat.argmax(1) == y).sum().item())  # d2l's Accumulator
        seconds.append(time.perf_counter() - start)
    net.eval()
    correct = 0
    with torch.no_grad():
        for X, y in test:
            correct += (net(X.to(device)).argmax(1) == y.to(device)).sum().item()
    return len(splits.train.labels) / min(seconds), min(seconds), correct / len(splits.val.labels)


def visionfit_run(splits, epochs, device, project, seed):
    result = visionfit.fit("lenet_relu", splits, epochs=epochs, scheduler="none", pad=0, optimizer="sgd",
                           device=device, quiet=True, project=project, seed=seed, **RECIPE)
    best_epoch = max(result.history, key=lambda row: row["images_per_s"])
    return best_epoch["images_per_s"], best_epoch["seconds"], result.history[-1]["val_acc"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=MNIST, help="folder of the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers for the tutorial loop")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--project", default=str(Path(tempfile.gettempdir()) / "visionfit-bench"))
    args = parser.parse_args()
    splits = load_idx_folder(args.mnist)
    ours = [visionfit_run(splits, args.epochs, args.device, args.project, seed) for seed in args.seeds]
    theirs = [tutorial_run(splits, args.epochs, args.device, args.workers, seed) for seed in args.seeds]
    print(f"device: {args.device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
          f"date: {date.today()}, torch {torch.__version__}, epochs: {args.epochs}, data: real MNIST 60k/10k, "
          f"seeds: {args.seeds} (mean ± std over seeds)")
    print("| loop | train images/s (best epoch) | s/epoch | test acc |")
    print("|---|---|---|---|")
    print(f"| tutorial (seeds' train_ch6, DataLoader workers={args.workers}) | {_spread(theirs, 0, ',.0f')} | "
          f"{_spread(theirs, 1, '.1f')} | {_spread(theirs, 2, '.2%')} |")
    print(f"| visionfit | {_spread(ours, 0, ',.0f')} | {_spread(ours, 1, '.1f')} | {_spread(ours, 2, '.2%')} |")
    ratio = statistics.mean(o[0] for o in ours) / statistics.mean(t[0] for t in theirs)
    print(f"| **ratio (images/s)** | **{ratio:.1f}x** | | |")


def _spread(runs, column, spec) -> str:
    values = [run[column] for run in runs]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.mean(values), spec)} ± {format(spread, spec)}"


if __name__ == "__main__":
    main()
