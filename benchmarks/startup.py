"""How fast the CLI answers, against `python -c "import torch"`: best of 5, each a fresh process.

    PYTHONPATH=src python benchmarks/startup.py          # prints a markdown table
    PYTHONPATH=src python benchmarks/startup.py --runs 9

Building the parser imports no torch, so `visionfit --help` should sit far below `import torch`
(target: within 1.5x of it). `visionfit models` needs torchvision's and timm's name lists, and
a one-image `visionfit predict` needs torch, so those are measured against the same baseline.
The best of several runs is the least disturbed by other work on the machine.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

TARGET_RATIO = 1.5  # visionfit --help against import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per command; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        commands = timed_commands(Path(work))
        seconds = {label: best_of(argv, args.runs, cwd=work) for label, argv in commands.items()}
    print(report(seconds, args.runs))


def visionfit_command() -> list[str]:
    """The `visionfit` script beside this Python, else `python -m visionfit` (the same entry point)."""
    script = shutil.which("visionfit", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "visionfit"]


def timed_commands(work: Path) -> dict[str, list[str]]:
    visionfit = visionfit_command()
    model, digit = predict_inputs(work)
    return {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "visionfit --help": [*visionfit, "--help"],
        "visionfit train --help": [*visionfit, "train", "--help"],
        "visionfit models resnet": [*visionfit, "models", "resnet"],
        "visionfit predict (one image)": [*visionfit, "predict", str(model), str(digit), "-o", str(work / "p.csv")],
    }


def predict_inputs(work: Path) -> tuple[Path, Path]:
    """A small trained model file and one digit PNG to predict (made once, not timed)."""
    import visionfit
    from PIL import Image
    from visionfit.data.embedded import load_embedded

    result = visionfit.fit("lenet_relu", None, epochs=1, max_per_class=20, quiet=True, project=str(work / "runs"))
    digit = work / "digit.png"
    Image.fromarray(load_embedded().val.images[0]).save(digit)
    return result.best_model, digit


def best_of(argv: list[str], runs: int, cwd: str) -> float:
    """The fastest of `runs` wall-clock times of `argv` in a fresh process (output discarded)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def report(seconds: dict[str, float], runs: int) -> str:
    baseline = seconds['python -c "import torch"']
    lines = [f"Start-up, best of {runs} fresh processes; {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}, {date.today()}", "",
             "| command | seconds | / import torch |", "|---|---:|---:|"]
    lines += [f"| `{label}` | {s:.2f} | {s / baseline:.2f}x |" for label, s in seconds.items()]
    verdict = "met" if seconds["visionfit --help"] <= TARGET_RATIO * baseline else "MISSED"
    lines += ["", f"target `visionfit --help` within {TARGET_RATIO}x of `import torch`: {verdict}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
