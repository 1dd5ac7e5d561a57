"""Load test of `visionfit serve` on localhost: concurrent clients, real MNIST digits, 5% bad uploads.

    python benchmarks/serve_load.py runs/exp/best.safetensors --clients 8 --seconds 20 --max-batch 1 32

For each --max-batch, starts `visionfit serve MODEL` on a free port, runs --clients clients that
each post one image per request, back to back, for --seconds, and reports requests/s and the
p50/p99 latency of the good requests, the model calls the server made (images per call), and
what the bad uploads got. A --bad-fraction of the requests are bad, in turn: a non-image, a
truncated PNG, a decompression bomb (a PNG header claiming 10,000 x 10,000 pixels) and an
oversize body (over --max-upload-mb, 1 MB here so that uploading it stays cheap). Every bad
one must get a 4xx, no request a 5xx, and the server must still answer /health at the end.
"""
import argparse
import asyncio
import io
import platform
import socket
import struct
import subprocess
import sys
import time
import zlib

import httpx
import numpy as np
from PIL import Image

from visionfit.data.embedded import load_embedded

MAX_UPLOAD_MB = 1


def digit_pngs(count: int = 200) -> list[bytes]:
    """Real MNIST test digits (the bundled sample's test split) as PNG files."""
    images = load_embedded().val.images[:count]
    return [png_bytes(pixels) for pixels in images]


def png_bytes(pixels: np.ndarray) -> bytes:
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="PNG")
    return encoded.getvalue()


def bomb_png(side: int = 10_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def bad_uploads() -> dict[str, bytes]:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    return {"non-image": b"shopping list: milk, eggs", "truncated": png_bytes(noise)[:1500], "bomb": bomb_png(),
            "oversize": bytes(MAX_UPLOAD_MB * 1024 * 1024 + 1024)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, max_batch: int, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "visionfit", "serve", model, "--port", str(port), "--max-batch",
                               str(max_batch), "--workers", str(workers), "--max-upload-mb", str(MAX_UPLOAD_MB)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"visionfit serve exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit("visionfit serve did not start within 180 s")


async def client(http: httpx.AsyncClient, url: str, stop_at: float, good: list[bytes],
                 bad: dict[str, bytes], bad_every: int, record: dict) -> None:
    bad_kinds = list(bad)
    while time.monotonic() < stop_at:
        record["sent"] += 1  # counted over all clients: every bad_every-th request is bad, the kinds in turn
        sent = record["sent"]
        is_bad = bad_every and sent % bad_every == 0
        kind = bad_kinds[(sent // bad_every) % len(bad_kinds)] if is_bad else None
        data = bad[kind] if is_bad else good[sent % len(good)]
        started = time.perf_counter()
        try:
            answer = await http.post(f"{url}/predict", files=[("file", (f"{kind or 'digit'}.png", data, "image/png"))])
            status = answer.status_code
        except httpx.TransportError as error:  # the server closed the connection instead of answering
            status = f"transport error: {type(error).__name__}"
        elapsed_ms = (time.perf_counter() - started) * 1000
        if is_bad:
            record["bad"].setdefault(kind, []).append(status)
        else:
            record["good"].append((status, elapsed_ms))


async def run_load(url: str, clients: int, seconds: float, bad_fraction: float) -> dict:
    good, bad = digit_pngs(), bad_uploads()
    bad_every = round(1 / bad_fraction) if bad_fraction > 0 else 0
    record = {"good": [], "bad": {}, "sent": 0}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        stop_at = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(client(http, url, stop_at, good, bad, bad_every, record) for _ in range(clients)))
        record["wall_s"] = time.perf_counter() - started
        record["health"] = (await http.get(f"{url}/health")).json()
    return record


def report(max_batch: int, record: dict) -> dict:
    statuses = [status for status, _ in record["good"]]
    latencies = np.array([ms for status, ms in record["good"] if status == 200])
    bad_statuses = [status for kind in record["bad"].values() for status in kind]
    total = len(statuses) + len(bad_statuses)
    health = record["health"]
    return {
        "max_batch": max_batch, "requests": total, "requests_per_s": total / record["wall_s"],
        "good_ok": sum(status == 200 for status in statuses), "good": len(statuses),
        "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
        "bad": {kind: sorted(set(map(str, values))) + [len(values)] for kind, values in record["bad"].items()},
        "bad_all_4xx": all(isinstance(s, int) and 400 <= s < 500 for s in bad_statuses),
        "any_5xx": any(isinstance(s, int) and s >= 500 for s in statuses + bad_statuses),
        "images_per_call": health["images_scored"] / max(1, health["model_calls"]), "alive": health["status"] == "ok",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--bad-fraction", type=float, default=0.05)
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {args.clients} clients x "
          f"{args.seconds:g} s, {args.bad_fraction:.0%} bad uploads, {args.workers} worker(s), {time.strftime('%Y-%m-%d')}")
    rows = []
    for max_batch in args.max_batch:
        server, url = start_server(args.model, max_batch, args.workers)
        try:
            rows.append(report(max_batch, asyncio.run(run_load(url, args.clients, args.seconds, args.bad_fraction))))
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(rows[-1], flush=True)
    print("\n| --max-batch | requests/s | p50 ms | p99 ms | images per model call | bad uploads: statuses (count) | 5xx | alive |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        bad = "; ".join(f"{kind} {'/'.join(v[:-1])} ({v[-1]})" for kind, v in row["bad"].items())
        print(f"| {row['max_batch']} | {row['requests_per_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['images_per_call']:.1f} | {bad} | {'yes' if row['any_5xx'] else 'none'} | "
              f"{'yes' if row['alive'] else 'NO'} |")


if __name__ == "__main__":
    main()
