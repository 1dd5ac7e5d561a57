"""The hostile-input corpus: careless and crafted inputs, each a named case.

Every case must end in one of two ways: `visionfit` exits with code 2 and one line that
names the file, flag or row and what to do (no traceback), or the bad item is skipped
and counted while the run goes on. Files visionfit reads never run code: a crafted
module writes MARKER when imported, and the `crafted_module` fixture checks it never does.
"""
import textwrap
from pathlib import Path

import pytest

from visionfit.cli import main

MARKER = "CODE_RAN.marker"

def cli_error(capsys, *argv: str) -> str:
    """Run the CLI, require exit code 2 and a one-line error with no traceback; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("visionfit: error: "), captured.err
    return last

def write_marker_module(folder: Path, name: str, marker: Path) -> None:
    """folder/<name>.py: a module whose import writes `marker`, holding a Net(num_classes, in_channels)
    for 28 x 28 images (one Linear)."""
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("imported")
        import torch
        class Net(torch.nn.Module):
            def __init__(self, num_classes=10, in_channels=1):
                super().__init__()
                self.fc = torch.nn.Linear(in_channels * 28 * 28, num_classes)
            def forward(self, x):
                return self.fc(x.flatten(1))
    """))


@pytest.fixture
def crafted_module(tmp_path, monkeypatch):
    """A module `vf_crafted` in a folder on sys.path and in the working folder; importing it
    writes tmp_path/MARKER. Returns the marker's path, which a test asserts never appears."""
    folder, marker = tmp_path / "crafted", tmp_path / MARKER
    write_marker_module(folder, "vf_crafted", marker)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    yield marker
    assert not marker.exists(), "a crafted module was imported: a file ran code"
