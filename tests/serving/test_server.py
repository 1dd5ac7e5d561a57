"""Start-up: `visionfit serve` under a real uvicorn, localhost by default, and one-line errors
(exit code 2) for what stops it before it listens: missing packages, bad flags, a busy port, a bad model file."""
import importlib.util
import inspect
import socket

import httpx
import pytest

import visionfit
from visionfit.cli import build_parser, main
from visionfit.serving.server import LOCALHOST

from .conftest import free_port, uploads


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code, capsys.readouterr().err


def test_a_real_server_answers_over_http(live_server, digit_files):
    assert httpx.get(f"{live_server}/health").json()["status"] == "ok"
    answer = httpx.post(f"{live_server}/predict", files=uploads(digit_files[:2]), timeout=30)
    assert answer.status_code == 200 and [p["image"] for p in answer.json()["predictions"]] == ["digit0.png", "digit1.png"]
    refused = httpx.post(f"{live_server}/predict", files=[("file", ("notes.txt", b"milk, eggs", "text/plain"))])
    assert refused.status_code == 415 and httpx.get(f"{live_server}/health").status_code == 200


def test_it_binds_to_localhost_unless_told():
    serve_parser = build_parser().parse_args(["serve", "m.safetensors"])
    assert serve_parser.host == LOCALHOST == "127.0.0.1"
    assert inspect.signature(visionfit.serve).parameters["host"].default == LOCALHOST


def test_missing_packages_are_one_line_with_the_pip_command(capsys, monkeypatch, mnist_model):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real_find_spec(name, *a))
    code, err = run_cli(capsys, "serve", str(mnist_model))
    assert code == 2 and err.count("\n") == 1
    assert "missing: uvicorn" in err and "pip install 'visionfit[serve]'" in err


@pytest.mark.parametrize("flags, message", [
    (["--max-batch", "0"], "--max-batch 0 is outside 1..4096"),
    (["--workers", "0"], "--workers 0 is outside 1..64"),
    (["--port", "70000"], "--port 70000 is outside 1..65535"),
    (["--max-pixels", "0"], "--max-pixels 0 is outside 1.."),
])
def test_bad_flags_are_refused_before_loading(capsys, tmp_path, flags, message):
    code, err = run_cli(capsys, "serve", str(tmp_path / "never-read.safetensors"), *flags)
    assert code == 2 and message in err


def test_a_busy_port_is_named(capsys, mnist_model):
    with socket.socket() as taken:
        taken.bind((LOCALHOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_cli(capsys, "serve", str(mnist_model), "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err


def test_a_bad_model_file_is_one_line_before_listening(capsys, tmp_path):
    (tmp_path / "m.safetensors").write_text("not weights")
    code, err = run_cli(capsys, "serve", str(tmp_path / "m.safetensors"), "--port", str(free_port()))
    assert code == 2 and "m.safetensors is not a readable safetensors file" in err
