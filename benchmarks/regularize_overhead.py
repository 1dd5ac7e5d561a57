"""What MixUp/CutMix and the EMA of the weights add to one training step, measured in isolation.

    python benchmarks/regularize_overhead.py                    # lenet_relu and resnet18_d2l, batch 128, 28 px
    python benchmarks/regularize_overhead.py --models lenet_relu --batch-size 256 --repeats 50

Per model: the median milliseconds of a plain step (forward, cross-entropy, backward, SGD step),
of mixing the batch (train/mixing.py BatchMixer, MixUp 0.2 + CutMix 1.0), and of one EMA update
(train/ema.py WeightAverage). The three are timed in turn within each repeat, so a machine
shared with other jobs slows them alike; the ratios are what to read.
"""
import argparse
import platform
import statistics
import time
from datetime import date

import torch

from visionfit.models import create_model
from visionfit.train.ema import WeightAverage
from visionfit.train.mixing import BatchMixer


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(name: str, batch_size: int, side: int, repeats: int) -> dict:
    torch.manual_seed(0)
    net = create_model(name, num_classes=10, in_channels=1, input_size=side)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    mixer = BatchMixer(0.2, 1.0, prob=1.0, num_classes=10)
    ema = WeightAverage(net, 0.999)
    x = torch.randn(batch_size, 1, side, side)
    y = torch.randint(0, 10, (batch_size,))
    times = {"step": [], "mix": [], "ema": []}
    for repeat in range(repeats + 3):  # three warm-up rounds
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stepped = time.perf_counter()
        mixer(x.clone(), y)
        mixed = time.perf_counter()
        ema.update()
        averaged = time.perf_counter()
        if repeat >= 3:
            times["step"].append(stepped - started)
            times["mix"].append(mixed - stepped)  # includes the clone, as the loader's fresh batch would not
            times["ema"].append(averaged - mixed)
    return {key: median_ms(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet_relu", "resnet18_d2l"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--side", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"{date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.side} px")
    print("| model | step (ms) | mix (ms) | EMA update (ms) | mix / step | EMA / step |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        ms = measure(name, args.batch_size, args.side, args.repeats)
        print(f"| {name} | {ms['step']:.1f} | {ms['mix']:.2f} | {ms['ema']:.2f} | {ms['mix'] / ms['step']:.1%} "
              f"| {ms['ema'] / ms['step']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
