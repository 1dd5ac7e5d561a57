"""Inference at model speed: `visionfit.predict` / `evaluate` on 2,000 small PNGs, against
decoding the PNGs alone plus the model's own no_grad time (issue #12, item 5).

    PYTHONPATH=src python benchmarks/predict_speed.py                  # prints a markdown table
    PYTHONPATH=src python benchmarks/predict_speed.py --repeats 5 --profile

The PNGs are 28 x 28 grey MNIST test digits: the full MNIST at ../shared/datasets/mnist
beside the repository when present ($VISIONFIT_MNIST names another folder), else the 2,000
real test digits of visionfit's bundled sample. The model is a lenet_relu trained for one
quick epoch on the bundled sample. Timed, best of --repeats (the least disturbed by other work):
  (a) decoding alone: PIL open + convert("L") + np.asarray, one thread, every file;
  (b) the model's no_grad time on the preprocessed, normalised tensors, batches of --batch-size;
  (c) visionfit.predict on a flat folder of the PNGs, end to end, after one untimed call that
      pays the imports and first-call costs (the model file is read again by every call);
  (d) visionfit.evaluate on the same PNGs in class folders, plots included, and the time until
      its numbers are available (its `on_numbers` hook; where there is none, its return).
Target: (c) takes at most twice (a) + (b), i.e. predict's throughput >= 0.5x theirs combined.
"""
import argparse
import cProfile
import inspect
import os
import platform
import pstats
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import visionfit
from visionfit.data.embedded import load_embedded
from visionfit.data.idx import idx_files, read_idx
from visionfit.infer.runner import load_classifier

TARGET_RATIO = 0.5  # predict's throughput against decoding + model, combined
MNIST_BESIDE_REPO = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="PNGs to write and read")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass, in (b), (c) and (d)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each measurement; the best counts")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions of one predict call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        digits, labels, source = mnist_digits(args.images)
        flat, tree = write_pngs(work, digits, labels)
        model = train_model(work)
        seconds = measure(model, flat, tree, work, args.batch_size, args.repeats)
        print(report(seconds, len(digits), source, args))
        if args.profile:
            profile_predict(model, flat, args.batch_size)


def mnist_digits(count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first `count` MNIST test digits (uint8 N x 28 x 28) and labels, and where they came from."""
    folder = Path(os.environ.get("VISIONFIT_MNIST") or MNIST_BESIDE_REPO)
    files = idx_files(folder) if folder.is_dir() else {}
    if ("t10k", "images") in files and ("t10k", "labels") in files:
        images, labels = read_idx(files[("t10k", "images")]), read_idx(files[("t10k", "labels")])
        return images[:count], labels[:count], "MNIST t10k"
    test = load_embedded().val
    if count > len(test):
        raise SystemExit(f"the bundled sample has {len(test):,} test digits; ask for at most that many, "
                         "or set VISIONFIT_MNIST to the full MNIST")
    return test.images[:count], test.labels[:count], "MNIST test digits of visionfit's bundled sample"


def write_pngs(work: Path, digits: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    """flat/<i>.png (for predict) and tree/<digit>/<i>.png (labelled, for evaluate)."""
    flat, tree = work / "flat", work / "tree"
    flat.mkdir()
    for i, (pixels, label) in enumerate(zip(digits, labels)):
        Image.fromarray(pixels).save(flat / f"{i:05d}.png")
        (tree / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(tree / str(label) / f"{i:05d}.png")
    return flat, tree


def train_model(work: Path) -> Path:
    """A lenet_relu model file: one quick epoch on part of the bundled sample (not timed)."""
    result = visionfit.fit("lenet_relu", None, epochs=1, max_per_class=100, quiet=True, project=str(work / "runs"))
    return result.best_model


def measure(model: Path, flat: Path, tree: Path, work: Path, batch_size: int, repeats: int) -> dict[str, float]:
    paths = sorted(flat.glob("*.png"))
    x = preprocessed(model, paths)
    visionfit.predict(model, flat, batch_size=batch_size, quiet=True)  # imports and first-call costs: not timed
    first_eval = time_evaluate(model, tree, work / "eval0", batch_size)
    evaluations = [time_evaluate(model, tree, work / f"eval{i + 1}", batch_size) for i in range(repeats)]
    return {
        "decode": best_of(lambda: decode_all(paths), repeats),
        "model": best_of(lambda: run_model(model, x, batch_size), repeats),
        "predict": best_of(lambda: visionfit.predict(model, flat, batch_size=batch_size, quiet=True), repeats),
        "evaluate": min(total for total, _ in evaluations),
        "evaluate_numbers": min(numbers for _, numbers in evaluations),
        "evaluate_first": first_eval[0],
    }


def decode_all(paths: list[Path]) -> list[np.ndarray]:
    """(a): what any reader of these files must do, on one thread."""
    return [np.asarray(Image.open(path).convert("L")) for path in paths]


def preprocessed(model: Path, paths: list[Path]) -> torch.Tensor:
    """The model's input for every file, float N x C x H x W, normalised as its preset says (not timed)."""
    classifier = load_classifier(model, "cpu")
    spec = classifier.preset.preprocess
    pixels = [spec.apply(image[..., None]).transpose(2, 0, 1) for image in decode_all(paths)]
    return classifier.preset.normalize(torch.from_numpy(np.stack(pixels)).float())


def run_model(model: Path, x: torch.Tensor, batch_size: int) -> None:
    """(b): the model alone, batch by batch, under no_grad (the model file read outside the timing)."""
    network = _loaded(model)
    with torch.no_grad():
        for batch in x.split(batch_size):
            network(batch)


_networks: dict[Path, torch.nn.Module] = {}


def _loaded(model: Path) -> torch.nn.Module:
    if model not in _networks:
        _networks[model] = load_classifier(model, "cpu").model
    return _networks[model]


def time_evaluate(model: Path, tree: Path, out: Path, batch_size: int) -> tuple[float, float]:
    """(d): (seconds to the end, seconds until the numbers are there) of one evaluate with plots."""
    start, numbers_at = time.perf_counter(), []
    hook = {"on_numbers": lambda report: numbers_at.append(time.perf_counter())}
    takes_hook = "on_numbers" in inspect.signature(visionfit.evaluate).parameters
    visionfit.evaluate(model, tree, out=out, batch_size=batch_size, quiet=True, **(hook if takes_hook else {}))
    end = time.perf_counter()
    return end - start, (numbers_at[0] if numbers_at else end) - start


def best_of(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def profile_predict(model: Path, flat: Path, batch_size: int) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(visionfit.predict, model, flat, batch_size=batch_size, quiet=True)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def report(seconds: dict[str, float], count: int, source: str, args) -> str:
    combined = seconds["decode"] + seconds["model"]
    ratio = combined / seconds["predict"]
    rows = [("(a) decode alone (PIL, one thread)", seconds["decode"]),
            (f"(b) model no_grad, batch {args.batch_size}", seconds["model"]),
            ("(a) + (b)", combined),
            ("(c) visionfit.predict (second call on)", seconds["predict"]),
            ("(d) visionfit.evaluate with plots", seconds["evaluate"]),
            ("(d) evaluate: until its numbers are there", seconds["evaluate_numbers"]),
            ("(d) evaluate, first call (imports, matplotlib)", seconds["evaluate_first"])]
    lines = [f"{count:,} PNGs of 28 x 28 ({source}), lenet_relu, best of {args.repeats}; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, {date.today()}", "",
             "| what | seconds | images/s |", "|---|---:|---:|"]
    lines += [f"| {label} | {s:.3f} | {count / s:,.0f} |" for label, s in rows]
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    lines += ["", f"predict's throughput = {ratio:.2f}x that of (a) + (b) combined ({verdict} the {TARGET_RATIO}x target)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
