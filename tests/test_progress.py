"""progress.py: bars only on a terminal and never under --quiet; the streams results and hints take."""
import io

from visionfit import progress
from visionfit.data.samples import Samples
from visionfit.data.store import build_store

from .conftest import pattern_images


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def as_terminal(monkeypatch) -> Terminal:
    """stderr as a terminal that records what is drawn on it. Called in the test itself: pytest's
    output capture sets sys.stderr again between a fixture's setup and the test."""
    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    return screen


def decode_some() -> None:
    images, labels = pattern_images(12)
    build_store(Samples(labels=labels, images=images), 1, prepare=lambda pixels: pixels, label="train")


def test_a_terminal_gets_the_decoding_bar(monkeypatch):
    terminal = as_terminal(monkeypatch)
    decode_some()
    drawn = terminal.getvalue()
    assert drawn.startswith("\rdecoding train:   0%") and "0/12" in drawn
    assert drawn.endswith("\r") and drawn.rstrip("\r").endswith(" ")  # cleared when done: the next line starts clean


def test_quiet_turns_every_bar_off_and_nesting_cannot_undo_it(monkeypatch):
    terminal = as_terminal(monkeypatch)
    with progress.quiet(True):
        with progress.quiet(False):
            decode_some()
            assert progress.is_quiet()
    assert terminal.getvalue() == ""
    assert not progress.is_quiet()


def test_a_log_file_gets_no_bars(monkeypatch):
    log = io.StringIO()  # not a terminal: `2> log.txt`
    monkeypatch.setattr("sys.stderr", log)
    decode_some()
    assert log.getvalue() == "" and not progress.bars_shown()


def test_counted_advances_the_bar_once_per_item_and_passes_items_through(monkeypatch):
    as_terminal(monkeypatch)
    with progress.bar(total=3, desc="x") as bar:
        assert list(progress.counted("abc", bar)) == ["a", "b", "c"]
        assert bar.n == 3
    assert list(progress.counted([1, 2], None)) == [1, 2]


def test_notes_go_to_stderr_not_stdout(capsys):
    progress.note("hint: something")
    captured = capsys.readouterr()
    assert captured.err == "hint: something\n" and captured.out == ""


def test_only_rank_0_of_torchrun_draws_bars(monkeypatch):
    terminal = as_terminal(monkeypatch)
    monkeypatch.setenv("RANK", "1")
    decode_some()
    assert terminal.getvalue() == "" and not progress.bars_shown()
    monkeypatch.setenv("RANK", "0")
    assert progress.bars_shown()
