"""Decoding a JPEG folder into the presized training store: Pillow threads vs nvjpeg.

    python benchmarks/decode_store.py --device cuda --per-class 1000

The folder is bench_photos.make_folder's (random crops of scikit-image photos, 300-500 px
JPEGs). Both sides make the same 258 x 258 store (presize for 224); nvjpeg's pixels differ
from Pillow's by a few levels (another resampler), which the last column reports.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from visionfit.data.folders import load_class_folders
from visionfit.data.gpu_decode import gpu_store
from visionfit.data.preprocess import Preprocess
from visionfit.data.scan import with_scan
from visionfit.data.store import build_store

sys.path.insert(0, str(Path(__file__).parent))
from bench_photos import make_folder  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--presize", type=int, default=258)
    args = parser.parse_args()
    workers = min(8, os.cpu_count() or 1)
    spec = Preprocess(args.presize, 3, "shorter", args.presize, "bilinear", (0.0,) * 3, (1.0,) * 3)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(Path(tmp) / "photos", args.per_class)
        samples = with_scan(load_class_folders(root / "train")[1])
        start = time.perf_counter()
        pillow = build_store(samples, 3, workers=workers, prepare=spec.apply)
        pillow_s = time.perf_counter() - start
        gpu_store(samples, spec, torch.device(args.device), workers)  # warm-up: nvjpeg's handles, CUDA context
        start = time.perf_counter()
        nvjpeg = gpu_store(samples, spec, torch.device(args.device), workers)
        nvjpeg_s = time.perf_counter() - start
    difference = (nvjpeg.images.float() - pillow.images.float()).abs().mean().item()
    print(f"{len(samples):,} JPEGs -> {args.presize} px store, {workers} Pillow threads, device {args.device}")
    print("| decoder | seconds | images/s | mean abs difference vs Pillow (levels) |\n|---|---|---|---|")
    print(f"| Pillow, {workers} threads | {pillow_s:.2f} | {len(samples) / pillow_s:,.0f} | - |")
    print(f"| nvjpeg (torchvision decode_jpeg on {args.device}) | {nvjpeg_s:.2f} | {len(samples) / nvjpeg_s:,.0f} | "
          f"{difference:.2f} |")


if __name__ == "__main__":
    main()
