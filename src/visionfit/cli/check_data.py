"""`visionfit check-data`: scan a dataset for what would spoil training, print a table, exit 1 on problems.

    visionfit check-data --data train.csv --images images/
    visionfit check-data --data hymenoptera/
"""
import argparse
import dataclasses
import sys

from ..config import DataConfig, TrainConfig

# The options of `visionfit train` that decide what the data is and how it is split, with their types.
DATA_OPTIONS = {"data": str, "images": str, "val_data": str, "val_split": float, "label_column": str,
                "image_column": str, "multi_label": bool, "download_dir": str, "seed": int}


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "check-data", help="find unreadable, duplicate, leaking and mislabelled data before training",
        description="Read the data as `visionfit train` would, decode every image, and list every problem: "
                    "unreadable or truncated files, decompression bombs, duplicates, images in both training "
                    "and validation, class counts and imbalance, tiny images, mixed modes and sizes, CSV rows "
                    "whose file is missing or whose label is empty. Exit code 1 when it finds a problem.",
    )
    help_of = {f.name: f.metadata["help"] for kind in (DataConfig, TrainConfig) for f in dataclasses.fields(kind)}
    for name, kind in DATA_OPTIONS.items():  # help as `visionfit train --help` gives it
        if kind is bool:
            parser.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction, help=help_of[name])
        else:
            parser.add_argument("--" + name.replace("_", "-"), type=kind, help=help_of[name])
    parser.add_argument("--workers", type=int, help="file reading threads (default: one per core, at most 8)")
    parser.set_defaults(command=run_check_data)


def run_check_data(args) -> None:
    from ..data.check import check_data

    options = {name: getattr(args, name) for name in (*DATA_OPTIONS, "workers") if getattr(args, name) is not None}
    report = check_data(**options)
    print(report.format())
    if report.problems:
        sys.exit(1)

