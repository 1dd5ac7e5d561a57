"""The files an inference command reads, which its outputs must never replace.

    check_outputs({"-o": out}, protected_inputs(model, "test.csv", samples))

predict, eval and export each pass this list to files.check_outputs before any work, so
`predict MODEL imgs/ -o MODEL` or `export MODEL --onnx runs/exp/last.ckpt` is refused.
"""
from pathlib import Path

from ..data.samples import Samples
from ..train.run_dir import run_files
from .runner import read_samples


def protected_inputs(model, data=None, samples: Samples | None = None) -> list[tuple[str, Path]]:
    """(description, path) of the model file, its run's files, the data file, and every image read.

    model: a model file or a module (a module has no file to protect). data: what the command
    reads (a CSV, a folder, an image, ...); `samples` are its samples when already read, else a
    local file or folder is read here for its image list.
    """
    protected = []
    if isinstance(data, Samples):
        samples = data
    if isinstance(model, (str, Path)):
        protected += [("the model file itself", Path(model)), *run_files(model)]
    if isinstance(data, (str, Path)) and Path(data).expanduser().is_file():
        protected.append(("the input file", Path(data).expanduser()))
    if samples is None and isinstance(data, (str, Path)) and Path(data).expanduser().exists():
        samples = read_samples(data)
    if samples is not None and samples.paths is not None:
        protected += [("an input image", path) for path in samples.paths]
    return protected
