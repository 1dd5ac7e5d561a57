"""What keeping freed memory (visionfit.cpu_memory) saves a CPU training step at photo size.

    PYTHONPATH=src python benchmarks/allocator.py                  # resnet18, 224 px, batch 32
    PYTHONPATH=src python benchmarks/allocator.py --size 128 --model mobilenet_v3_small

Each setting trains in a fresh process (mallopt must come before the big allocations):
glibc's defaults against keep_freed_memory(). Reported per step: minor page faults, user and
system CPU seconds, wall seconds, and the peak resident memory. Faults and system time are
what the setting changes; they barely depend on other work on the machine, wall time does.
"""
import argparse
import json
import platform
import subprocess
import sys
from datetime import date

STEP_SCRIPT = """
import json, resource, sys, time
import torch, torchvision
from visionfit.cpu_memory import keep_freed_memory
mode, model_name, size, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
kept = keep_freed_memory() if mode == "kept" else False
model = getattr(torchvision.models, model_name)(num_classes=10)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
def step():
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
for _ in range(2):  # warm-up: first allocations, the heap settling
    step()
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
print(json.dumps({"kept": kept, "faults": (after.ru_minflt - before.ru_minflt) / steps,
                  "user_s": (after.ru_utime - before.ru_utime) / steps, "sys_s": (after.ru_stime - before.ru_stime) / steps,
                  "wall_s": wall / steps, "peak_rss_gb": after.ru_maxrss / 2**20}))
"""


def measure(mode: str, args) -> dict:
    command = [sys.executable, "-c", STEP_SCRIPT, mode, args.model, str(args.size), str(args.batch), str(args.steps)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a torchvision model name")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    rows = {mode: measure(mode, args) for mode in ("default", "kept")}
    print(f"## Allocator: {args.model} at {args.size} px, batch {args.batch}, {args.steps} steps "
          f"({date.today()}, {platform.machine()}, torch threads default)\n")
    print("| glibc malloc | minor faults/step | user s/step | sys s/step | wall s/step | peak RSS GB |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, row in rows.items():
        print(f"| {mode} | {row['faults']:,.0f} | {row['user_s']:.2f} | {row['sys_s']:.2f} | {row['wall_s']:.2f} | "
              f"{row['peak_rss_gb']:.2f} |")
    print(f"\nfaults {rows['default']['faults'] / max(rows['kept']['faults'], 1):.0f}x fewer, system time "
          f"{rows['default']['sys_s'] / max(rows['kept']['sys_s'], 1e-3):.1f}x less")


if __name__ == "__main__":
    main()
