"""Progress bars for the phases that take more than about a second, and where output goes.

    with progress.bar(total=len(paths), desc="decoding train", unit="img") as bar:
        bar.update(1)
    with progress.quiet(config.run.quiet):      # --quiet: no bars anywhere below
        fit(...)

Streams: results (the run summary, epoch lines, final results, eval's table, predict's
lines) go to stdout; bars, warnings and hints go to stderr, so `visionfit train > log.txt`
keeps the record and the terminal keeps the bars.

Bars are drawn only when stderr is a terminal (tqdm's `disable=None` rule). In a log file
tqdm's carriage-return redraws pile up into one long line per bar, so a redirected stderr
gets no bars at all; what a log needs instead is a line per finished phase, which the
phases print themselves ("cached ... in 3.1 s", the epoch lines).
"""
import contextlib
import os
import sys
from contextvars import ContextVar

from tqdm import tqdm

_QUIET = ContextVar("visionfit_quiet", default=False)


@contextlib.contextmanager
def quiet(enabled: bool = True):
    """No bars inside this block when `enabled` (--quiet, quiet=True); nested blocks may only add quiet."""
    token = _QUIET.set(_QUIET.get() or bool(enabled))
    try:
        yield
    finally:
        _QUIET.reset(token)


def is_quiet() -> bool:
    return _QUIET.get()


def bars_shown(stream=None) -> bool:
    """Whether a bar would be drawn on `stream` (default stderr): not quiet, a terminal, and
    not a torchrun worker other than rank 0 (they share the terminal; one set of bars is enough)."""
    stream = stream or sys.stderr
    if is_quiet() or os.environ.get("RANK", "0") != "0":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(total: int | None = None, desc: str = "", unit: str = "img", stream=None, **options) -> tqdm:
    """A tqdm bar on stderr (or `stream`), cleared when it closes; a no-op object when bars are off."""
    stream = stream or sys.stderr  # looked up late: tests and notebooks swap sys.stderr
    return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False, dynamic_ncols=True,
                disable=not bars_shown(stream), **options)


def counted(items, bar: tqdm | None):
    """`items` as they come, advancing `bar` (when there is one) by one for each."""
    for item in items:
        if bar is not None:
            bar.update(1)
        yield item


def note(message: str) -> None:
    """A warning or hint for the person at the terminal: stderr, never mixed into results."""
    print(message, file=sys.stderr, flush=True)
