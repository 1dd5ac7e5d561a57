"""visionfit's training step vs a bare PyTorch loop: what the trainer costs beyond the model's own work.

    python benchmarks/bare_loop.py                              # real MNIST from ../shared, CPU, 2 epochs
    python benchmarks/bare_loop.py --device cuda --repeats 3
    python benchmarks/bare_loop.py --count-ops                  # also: aten ops and syncing ops per step
    python benchmarks/bare_loop.py --recipe default --bare-optimizer fused   # the issue's target reading

Both sides train lenet_relu on the 60k MNIST training images (or --train-images N of them) with SGD (lr 0.05, momentum 0.9,
batch 256, no augmentation) on the same device. The bare loop is the least a person can
write: the images already normalised as one float tensor on the device, a randperm per
epoch, forward, cross-entropy, zero_grad, backward, step, with torch's default SGD. visionfit
is `visionfit.fit("lenet_relu", mnist, pad=0, ...)`: uint8 images sliced on the device,
normalised per batch, the loss watched for nan, accuracy and macro-F1 tallied. With
--recipe default visionfit keeps its own augmentation (pad-and-crop, batched) and schedule
while the bare loop still does neither: the issue's "default recipe" reading. With
--bare-optimizer fused the bare loop uses torch's fused SGD, as visionfit does, so that the
ratio measures the loop and not the optimizer kernel; with --bare-channels-last it runs model
and batches in channels_last, the format visionfit times faster for lenet_relu on a CPU. Both report
training images/s of their best epoch (validation not timed); the runs alternate, so load
from other jobs on the machine falls on both alike. Prints a markdown table and the ratio.

--count-ops profiles one short epoch of each (torch.profiler, CPU) at two lengths and prints
the difference per step: every aten op the step dispatches, and those that make the host wait
for a GPU (.item(), bool/float of a tensor, .tolist(), nonzero, CUDA's bincount).
"""
import argparse
import collections
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import visionfit
from visionfit.data.idx import load_idx_folder
from visionfit.data.samples import DatasetSplits
from visionfit.train import trainer as trainer_module

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
RECIPE = dict(lr=0.05, momentum=0.9, batch_size=256)
MEAN, STD = 0.1307, 0.3081
# aten ops that read a value back to the host (on a GPU: wait for every queued kernel).
HOST_READS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::bincount", "aten::is_nonzero",
              "aten::masked_select", "aten::_unique2")
COUNT_STEPS = (10, 30)  # the two epoch lengths whose difference gives ops per step


def bare_loop(images: torch.Tensor, labels: torch.Tensor, epochs: int, device: torch.device, seed: int,
              fused: bool = False, channels_last: bool = False) -> float:
    """Best epoch's training images/s of the plainest loop over resident normalised tensors."""
    torch.manual_seed(seed)
    x = ((images.float() / 255 - MEAN) / STD).unsqueeze(1).to(device)
    y = labels.to(device)
    net = visionfit.create_model("lenet_relu", num_classes=10, in_channels=1).to(device)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                                fused=True if fused else None)
    best = 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        bare_epoch(net, optimizer, x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, len(y) / (time.perf_counter() - start))
    return best


def bare_epoch(net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    net.train()
    order = torch.randperm(len(y), device=x.device)
    for start in range(0, len(y), RECIPE["batch_size"]):
        index = order[start : start + RECIPE["batch_size"]]
        loss = nn.functional.cross_entropy(net(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def visionfit_run(splits: DatasetSplits, epochs: int, device: str, seed: int, recipe: str = "pad0") -> float:
    """Best epoch's training images/s of visionfit.fit (recipe "default": its own augmentation and schedule)."""
    plain = dict(scheduler="none", pad=0) if recipe == "pad0" else {}
    result = visionfit.fit("lenet_relu", splits, epochs=epochs, optimizer="sgd", device=device, quiet=True,
                           project=tempfile.mkdtemp(), seed=seed, **plain, **RECIPE)
    return max(row["images_per_s"] for row in result.history)


def aten_counts(run) -> collections.Counter:
    """How many times each aten op is dispatched while `run()` runs (on the CPU)."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run()
    return collections.Counter(event.name for event in profiler.events() if event.name.startswith("aten::"))


def per_step(count_epoch) -> dict[str, float]:
    """Ops per step: the difference between epochs of the two COUNT_STEPS lengths, per extra step."""
    short, long = (count_epoch(steps) for steps in COUNT_STEPS)
    extra = COUNT_STEPS[1] - COUNT_STEPS[0]
    return {name: (long[name] - short[name]) / extra for name in long | short if long[name] != short[name]}


def visionfit_epoch_counts(splits: DatasetSplits, steps: int) -> collections.Counter:
    """aten ops of Trainer.train_one_epoch alone, in a one-epoch fit of `steps` steps."""
    counts = collections.Counter()
    original = trainer_module.Trainer.train_one_epoch

    def counted(trainer):
        result = {}
        counts.update(aten_counts(lambda: result.update(original(trainer))))
        return result

    trainer_module.Trainer.train_one_epoch = counted
    try:
        subset = splits.train.subset(np.arange(steps * RECIPE["batch_size"]))
        visionfit_run(DatasetSplits(splits.name, splits.class_names, subset, splits.val.subset(np.arange(256))),
                      1, "cpu", 0)
    finally:
        trainer_module.Trainer.train_one_epoch = original
    return counts


def bare_epoch_counts(images: torch.Tensor, labels: torch.Tensor, steps: int) -> collections.Counter:
    count = steps * RECIPE["batch_size"]
    x = ((images[:count].float() / 255 - MEAN) / STD).unsqueeze(1)
    net = visionfit.create_model("lenet_relu", num_classes=10, in_channels=1)
    optimizer = torch.optim.SGD(net.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"])
    return aten_counts(lambda: bare_epoch(net, optimizer, x, labels[:count]))


def print_op_counts(splits: DatasetSplits, images: torch.Tensor, labels: torch.Tensor) -> None:
    ours = per_step(lambda steps: visionfit_epoch_counts(splits, steps))
    bare = per_step(lambda steps: bare_epoch_counts(images, labels, steps))
    print(f"\naten ops per training step (torch.profiler, CPU; difference of {COUNT_STEPS} step epochs)")
    print("| loop | aten ops / step | host reads / step |")
    print("|---|---|---|")
    for name, counts in (("bare loop", bare), ("visionfit", ours)):
        reads = sum(counts.get(op, 0) for op in HOST_READS)
        print(f"| {name} | {sum(counts.values()):.0f} | {reads:g} |")
    extra = sorted(((ours.get(op, 0) - bare.get(op, 0), op) for op in ours | bare), reverse=True)
    print("visionfit's extra ops per step: " + ", ".join(f"{op[6:]} {n:+g}" for n, op in extra if n))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=MNIST, help="folder of the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--train-images", type=int, default=None, help="the first N training images only")
    parser.add_argument("--count-ops", action="store_true")
    parser.add_argument("--recipe", choices=("pad0", "default"), default="pad0",
                        help="visionfit's side: no augmentation or schedule (pad0), or its default recipe")
    parser.add_argument("--bare-optimizer", choices=("default", "fused"), default="default",
                        help="the bare loop's SGD: torch's default implementation or fused=True")
    parser.add_argument("--bare-channels-last", action="store_true", help="the bare loop in channels_last")
    args = parser.parse_args()
    splits = load_idx_folder(args.mnist)
    if args.train_images:
        splits.train = splits.train.subset(np.arange(args.train_images))
    images, labels = torch.from_numpy(splits.train.images), torch.from_numpy(splits.train.labels)
    ours, bare = [], []
    for seed in range(args.repeats):
        ours.append(visionfit_run(splits, args.epochs, args.device, seed, args.recipe))
        bare.append(bare_loop(images, labels, args.epochs, torch.device(args.device), seed,
                              fused=args.bare_optimizer == "fused", channels_last=args.bare_channels_last))
    print(f"device: {args.device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads), "
          f"date: {date.today()}, torch {torch.__version__}, lenet_relu, batch 256, real MNIST ({len(labels):,} training), "
          f"{args.epochs} epochs, best epoch of each run, {args.repeats} runs each (mean ± std); "
          f"visionfit recipe: {args.recipe}, bare loop SGD: {args.bare_optimizer}"
          f"{' in channels_last' if args.bare_channels_last else ''}")
    print("| loop | train images/s | ms per step |")
    print("|---|---|---|")
    for name, runs in (("bare loop (resident float tensors)", bare), ("visionfit.fit", ours)):
        spread = statistics.stdev(runs) if len(runs) > 1 else 0.0
        ms = [1000 * RECIPE["batch_size"] / run for run in runs]
        print(f"| {name} | {statistics.mean(runs):,.0f} ± {spread:,.0f} | {statistics.mean(ms):.2f} |")
    print(f"| **visionfit / bare loop** | **{statistics.mean(ours) / statistics.mean(bare):.2f}x** | |")
    if args.count_ops:
        print_op_counts(splits, images, labels)


if __name__ == "__main__":
    main()
