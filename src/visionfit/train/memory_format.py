"""On a CPU, the memory format a model trains faster in: timed once, remembered per machine.

    choice = cpu_memory_format(net, (batch, channels, size, size), steps, remember_in=cache_folder())
    net = net.to(memory_format=torch.channels_last) if choice.channels_last else net
    choice.note          # for the run summary: "faster on this CPU: 28 vs 39 ms a pass of 256, timed now"
    cpu_memory_format(model, shape, batches, remember_in, training=False)     # inference: forward passes only

oneDNN runs a convolution in NCHW or in NHWC (channels_last), and which is faster depends on
the model and its input with no rule of thumb. A training step on a 2-core Xeon in
channels_last: lenet_relu at 28 px 25% faster, mobilenet_v3_small at 128 px 22%, efficientnet_b0
at 96 px 21%, torchvision's resnet18 at 224 px 7%; lenet_bn 30% slower, resnet18 at 64 px 2%
slower. So a CPU run that leaves --channels-last unset, and is long enough for the difference
to matter, times forward+backward passes of copies of its model in both formats, alternating,
and takes channels_last only when it is clearly faster. The verdict is kept in the cache
folder under a key of the CPU, torch, the threads, the model's layers and the input shape: the
same run on the same machine then chooses the same way (its numbers do not hinge on timing
noise) and times nothing the second time.
"""
import copy
import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_path

log = logging.getLogger(__name__)

VERDICTS = "memory-formats.json"
VERDICTS_BYTES = 1 << 20  # read no bigger file: a few hundred verdicts take 50 KB
VERDICTS_KEPT = 500  # the oldest go past this many
MIN_RUN_S = 10.0  # shorter runs (by the first passes' estimate) stay in NCHW: little to gain
MARGIN = 0.9  # channels_last must take at most 90% of NCHW's time; within noise NCHW stays
PROBE_SHARE = 0.02  # the timed passes take about 2% of the run they speed up, where the batch allows
MAX_PROBE_SHARE = 0.05  # a run whose smallest probe would cost more is not timed
FIRST_IMAGES = 8  # the first passes' batch: NCHW's warm-up and the run's estimate
TIMED_ROUNDS = 2  # alternating NCHW / channels_last passes; the fastest of each counts


@dataclass(frozen=True)
class MemoryFormatChoice:
    channels_last: bool
    note: str | None = None  # why, for the run summary; None: not timed (a short run)


def cpu_memory_format(net: nn.Module, shape: tuple[int, int, int, int], steps: int,
                      remember_in: Path | None = None, training: bool = True) -> MemoryFormatChoice:
    """Whether `net` trains (training=False: infers) faster in channels_last on this CPU, for
    batches of `shape` (N, C, H, W) over `steps` steps. `remember_in`: the folder whose verdicts
    file keeps the answer between runs (None: time every run). The model itself is not touched,
    nor torch's random streams (the passes run on copies, inside fork_rng)."""
    if not any(isinstance(module, nn.Conv2d) for module in net.modules()):
        return MemoryFormatChoice(False)  # no convolution (an MLP, most ViTs): the format changes nothing
    key = _verdict_key(net, shape, training)
    remembered = _recall(remember_in, key)
    if remembered is not None:
        return _choice(remembered, "timed on an earlier run")
    try:
        with torch.random.fork_rng(devices=[]):
            timings = _time_formats(net, shape, steps, training)
    except (RuntimeError, MemoryError) as error:  # a copy too big, a model the probe cannot drive: train as it is
        log.info("memory format not timed (%s): NCHW", error)
        timings = None
    if timings is None:
        return MemoryFormatChoice(False)
    if remember_in is not None:
        _remember(remember_in, key, timings)
    return _choice(timings, "timed now")


def _time_formats(net: nn.Module, shape, steps: int, training: bool) -> dict | None:
    """{'nchw_ms', 'channels_last_ms', 'images'}: the fastest pass of each format, or None when
    the run is too short to be worth timing."""
    batch = shape[0]
    nchw = copy.deepcopy(net).train(training)
    first = min(batch, FIRST_IMAGES)
    _pass_seconds(nchw, _images(first, shape, False), training)  # warm up: oneDNN builds its kernels on the first pass
    seconds_per_image = _pass_seconds(nchw, _images(first, shape, False), training) / first
    run_s = seconds_per_image * batch * steps
    passes = 2 * TIMED_ROUNDS + 2  # timed, and the warm-up of each format at the probe's batch
    if run_s < MIN_RUN_S or passes * first * seconds_per_image > MAX_PROBE_SHARE * run_s:
        return None
    images = max(first, min(batch, int(PROBE_SHARE * run_s / (passes * seconds_per_image))))
    channels_last = copy.deepcopy(net).train(training).to(memory_format=torch.channels_last)
    inputs = {False: _images(images, shape, False), True: _images(images, shape, True)}
    models = {False: nchw, True: channels_last}
    _pass_seconds(channels_last, inputs[True], training)  # warm up
    if images != first:
        _pass_seconds(nchw, inputs[False], training)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(TIMED_ROUNDS):
        for fmt in (False, True):
            best[fmt] = min(best[fmt], _pass_seconds(models[fmt], inputs[fmt], training))
    return {"nchw_ms": 1000 * best[False], "channels_last_ms": 1000 * best[True], "images": images}


def _images(count: int, shape, channels_last: bool) -> torch.Tensor:
    """Random inputs (convolutions take as long on any values), from a generator of their own."""
    x = torch.randn(count, *shape[1:], generator=torch.Generator().manual_seed(0))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _pass_seconds(model: nn.Module, x: torch.Tensor, training: bool = True) -> float:
    """One forward and backward pass, as a training step makes them (the loss's own cost aside);
    not training: one forward pass without autograd, as inference makes it."""
    start = time.perf_counter()
    if not training:
        with torch.inference_mode():
            model(x)
        return time.perf_counter() - start
    out = model(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.requires_grad:
        out.float().sum().backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def _choice(timings: dict, when: str) -> MemoryFormatChoice:
    nchw, channels_last = timings["nchw_ms"], timings["channels_last_ms"]
    faster = channels_last <= MARGIN * nchw
    verdict = "faster" if faster else "not clearly faster"
    return MemoryFormatChoice(faster, f"{verdict} on this CPU: {channels_last:.0f} vs {nchw:.0f} ms a pass of "
                                      f"{timings['images']}, {when}")


def _verdict_key(net: nn.Module, shape, training: bool) -> str:
    """What the timing depends on: the CPU, torch and its threads, the layers (frozen ones
    included), the input, and training or inference."""
    layers = repr(net) + repr([parameter.requires_grad for parameter in net.parameters()])
    facts = [_cpu_name(), torch.__version__, torch.get_num_threads(), list(shape),
             hashlib.sha256(layers.encode()).hexdigest(), "training" if training else "inference"]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read_verdicts(folder: Path) -> dict:
    """The verdicts file as data: a dict of well-formed verdicts; anything else reads as none."""
    path = folder / VERDICTS
    try:
        if path.stat().st_size > VERDICTS_BYTES:
            raise ValueError(f"over {VERDICTS_BYTES} bytes")
        verdicts = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(verdicts, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as why:
        log.info("ignoring the memory-format verdicts in %s (%s)", path, why)
        return {}
    return {key: value for key, value in verdicts.items() if _well_formed(value)}


def _well_formed(value) -> bool:
    def positive(number):
        return type(number) in (int, float) and 0 < number < 1e9
    return (isinstance(value, dict) and positive(value.get("nchw_ms")) and positive(value.get("channels_last_ms"))
            and type(value.get("images")) is int and 0 < value["images"] < 1e9)


def _recall(folder: Path | None, key: str) -> dict | None:
    return None if folder is None else _read_verdicts(folder).get(key)


def _remember(folder: Path, key: str, timings: dict) -> None:
    verdicts = _read_verdicts(folder)
    verdicts.pop(key, None)
    verdicts[key] = timings
    kept = dict(list(verdicts.items())[-VERDICTS_KEPT:])
    try:
        with atomic_path(folder / VERDICTS) as temporary:
            Path(temporary).write_text(json.dumps(kept), encoding="utf-8")
    except Exception as error:  # an unwritable cache folder costs the next run a timing, nothing more
        log.info("could not keep the memory-format verdict in %s (%s)", folder, error)
