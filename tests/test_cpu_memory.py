"""CPU runs keep freed memory in the heap: glibc's mallopt, set once, opt-out by variable."""
import subprocess
import sys

import pytest

from visionfit import cpu_memory

FAULTS_SCRIPT = """
import resource, sys, torch
torch.set_num_threads(1)  # one arena: the count is about the main heap
from visionfit.cpu_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def batch():  # 64 MB blocks, above glibc's largest mmap threshold (32 MB): mmapped by default
    x = torch.ones(16, 1024, 1024)
    return float((x * 2).sum())
for _ in range(8):  # the heap settles into its blocks over the first few
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(cpu_memory._glibc() is None, reason="mallopt is glibc's (Linux); other allocators keep their own rules")
def test_kept_memory_is_reused_without_page_faults():
    """Ten 'batches' of two 64 MB tensors after eight to warm up: glibc's defaults fault every
    page in anew each time (~320,000 faults); with freed memory kept, the blocks are reused."""
    default, kept = _faults("default"), _faults("keep")
    assert default > 100_000
    assert kept < default / 10  # ~0 alone; one 64 MB block's 16k faults at most beside other work


def test_opting_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_done", False)
    monkeypatch.setenv(cpu_memory.OPT_OUT_VARIABLE, "system")
    calls = []
    monkeypatch.setattr(cpu_memory, "_glibc", lambda: calls.append("looked") or None)
    assert cpu_memory.keep_freed_memory() is False
    assert calls == []


def test_no_glibc_is_a_quiet_no_op(monkeypatch):
    monkeypatch.setattr(cpu_memory, "_done", False)
    monkeypatch.delenv(cpu_memory.OPT_OUT_VARIABLE, raising=False)
    monkeypatch.setattr(cpu_memory, "_glibc", lambda: None)
    assert cpu_memory.keep_freed_memory() is False
