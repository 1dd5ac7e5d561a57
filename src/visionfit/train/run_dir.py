"""The run directory: its numbered name, the config.yaml written first, summary.json last.

    runs/exp, runs/exp2, ...   (or runs/<name>, <name>2, ... with --name)
"""
import json
import sys
from pathlib import Path

from ..checkpoints import write_text_atomic
from .distributed import Distributed


def create_run_dir(project: Path, name: str | None, dist: Distributed) -> Path:
    """Make the next free run directory on rank 0 and tell every rank its path."""
    path = None
    if dist.is_main:
        path = next_run_dir(project, name)
        path.mkdir(parents=True, exist_ok=True)
    return Path(dist.broadcast_object(str(path) if path else None))


def next_run_dir(project: Path, name: str | None) -> Path:
    """runs/exp, runs/exp2, runs/exp3, ... (or runs/<name>, name2, ... when named)."""
    base = name or "exp"
    candidate, n = project / base, 1
    while candidate.exists():
        n += 1
        candidate = project / f"{base}{n}"
    return candidate


def write_summary(run_dir: Path, summary: dict) -> None:
    """summary.json, and the few lines a person reads at the end of a run."""
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    history_has_val = "val_acc" in summary["best_metrics"]
    kind = "val_acc" if history_has_val else "train acc"
    print(f"best {kind} {summary['best_score']:.2%} at epoch {summary['best_epoch']}", file=sys.stderr)
    if summary["test"] is not None:
        print(f"test acc {summary['test']['acc']:.2%} (best model, {run_dir / 'best.safetensors'})", file=sys.stderr)
    if summary["skipped_images"]:
        print(f"skipped {len(summary['skipped_images'])} unreadable images (listed in summary.json)", file=sys.stderr)
    print(f"results in {run_dir}", file=sys.stderr)
