"""Concurrent requests share model calls (at most max_batch images each), every request gets its own
rows back, and a failing model call fails its requests, not the batcher."""
import asyncio
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from visionfit.serving.app import create_app
from visionfit.serving.backends import load_backend
from visionfit.serving.batching import Batcher

from .conftest import uploads


class CountingModel:
    """probabilities(images) -> each image's first pixel in column 0, so a row shows whose it is."""

    def __init__(self, fail_first: bool = False):
        self.batch_sizes: list[int] = []
        self.fail_first = fail_first

    def __call__(self, images: list[torch.Tensor]) -> np.ndarray:
        self.batch_sizes.append(len(images))
        if self.fail_first and len(self.batch_sizes) == 1:
            raise RuntimeError("the first call fails")
        return np.stack([[float(image.flatten()[0]), 0.0] for image in images]).astype(np.float32)


def image(value: int) -> torch.Tensor:
    return torch.full((1, 2, 2), value, dtype=torch.uint8)


async def scored_concurrently(batcher: Batcher, requests: list[list[int]]) -> list[np.ndarray]:
    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.score([image(v) for v in values]) for values in requests))
    finally:
        await batcher.stop()


def test_concurrent_requests_are_one_model_call_and_each_gets_its_rows():
    model = CountingModel()
    requests = [[1], [2, 3], [4], [5, 6, 7]]
    results = asyncio.run(scored_concurrently(Batcher(model, max_batch=32, max_wait_ms=50), requests))
    assert model.batch_sizes == [7]
    assert [list(rows[:, 0]) for rows in results] == [[1.0], [2.0, 3.0], [4.0], [5.0, 6.0, 7.0]]


@pytest.mark.parametrize("max_batch, sizes", [(1, [1] * 7), (3, [3, 3, 1])])
def test_no_model_call_takes_more_than_max_batch_images(max_batch, sizes):
    model = CountingModel()
    results = asyncio.run(scored_concurrently(Batcher(model, max_batch, max_wait_ms=50), [[1, 2], [3, 4, 5], [6, 7]]))
    assert model.batch_sizes == sizes
    assert [list(rows[:, 0]) for rows in results] == [[1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0]]


def test_a_lone_request_does_not_wait_and_one_on_its_way_is_waited_for():
    model = CountingModel()
    batcher = Batcher(model, max_batch=32, max_wait_ms=5000)

    async def arrives_later():
        with batcher.arriving():
            await asyncio.sleep(0.02)  # being read and decoded
        return await batcher.score([image(3)])

    async def run():
        await batcher.start()
        try:
            started = time.monotonic()
            await batcher.score([image(1)])
            lone_s = time.monotonic() - started
            later = asyncio.create_task(arrives_later())
            await asyncio.sleep(0)  # it is on its way
            started = time.monotonic()
            rows = await batcher.score([image(2)])
            return lone_s, time.monotonic() - started, rows, await later
        finally:
            await batcher.stop()

    lone_s, joined_s, rows, later_rows = asyncio.run(run())
    assert model.batch_sizes == [1, 2] and rows[0, 0] == 2.0 and later_rows[0, 0] == 3.0
    assert lone_s < 2.5 and joined_s < 2.5  # neither waited out max_wait_ms: the wait ends when the request is in


def test_a_failed_model_call_fails_its_requests_and_the_next_call_runs():
    model = CountingModel(fail_first=True)
    batcher = Batcher(model, max_batch=32, max_wait_ms=0)

    async def two_rounds():
        await batcher.start()
        try:
            with pytest.raises(RuntimeError, match="the first call fails"):
                await batcher.score([image(1)])
            return await batcher.score([image(2)])
        finally:
            await batcher.stop()

    assert list(asyncio.run(two_rounds())[:, 0]) == [2.0]
    assert batcher.model_calls == 1 and batcher.images_scored == 1


def test_the_model_runs_off_the_event_loop_thread():
    threads = []
    model = CountingModel()
    batcher = Batcher(lambda images: threads.append(threading.current_thread()) or model(images), max_batch=4)
    asyncio.run(scored_concurrently(batcher, [[1]]))
    assert threads and threads[0] is not threading.main_thread()


def test_concurrent_http_requests_share_one_model_call(mnist_model, digit_files):
    """Eight clients at once, one image each: the app's batcher scores all eight in one call."""
    app = create_app(load_backend(mnist_model, "cpu"), max_batch=32, max_wait_ms=500)

    async def eight_clients():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                answers = await asyncio.gather(*(client.post("/predict", files=uploads([path]))
                                                 for path in digit_files[:8]))
                return answers, (await client.get("/health")).json()

    answers, health = asyncio.run(eight_clients())
    assert [a.status_code for a in answers] == [200] * 8
    assert [a.json()["predictions"][0]["image"] for a in answers] == [path.name for path in digit_files[:8]]
    assert health["model_calls"] == 1 and health["images_scored"] == 8
