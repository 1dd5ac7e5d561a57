"""Images from concurrent requests coalesced into one model call: dynamic batching on an asyncio queue.

    batcher = Batcher(backend.probabilities, max_batch=32, max_wait_ms=5)
    await batcher.start()
    probs = await batcher.score(images)     # float32 len(images) x K; other requests share the call

One task takes the first waiting image, waits up to max_wait_ms for more while requests are
on their way (`arriving`: read and decoded, not yet queued; a lone request never waits),
and runs the model on at most max_batch of them on one model thread, so the event loop
keeps accepting and decoding requests meanwhile; images that arrive during a call form the
next batch.
"""
import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

POLL_S = 0.001  # how often a waiting batch looks whether the requests on their way have arrived


class Batcher:
    def __init__(self, probabilities: Callable[[list[torch.Tensor]], np.ndarray], max_batch: int,
                 max_wait_ms: float = 5.0):
        self.probabilities = probabilities
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.model_calls = 0  # batches run, and the images in them: GET /health reports both
        self.images_scored = 0
        self.arriving_requests = 0  # being read or decoded: their images will want the next call
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._model_thread: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        # One thread: model calls run one after another, each using the runtime's own threads.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="visionfit-model")
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._model_thread.shutdown(wait=True)

    @contextlib.contextmanager
    def arriving(self):
        """Around reading and decoding a request, so the next model call waits for its images."""
        self.arriving_requests += 1
        try:
            yield
        finally:
            self.arriving_requests -= 1

    async def score(self, images: list[torch.Tensor]) -> np.ndarray:
        """Softmax probabilities of `images` (uint8 C x H x W each), float32 N x K, in order."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in images]
        for image, future in zip(images, futures):
            self._queue.put_nowait((image, future))
        return np.stack(await asyncio.gather(*futures))

    async def _run_forever(self) -> None:
        while True:
            await self._run(await self._next_batch())

    async def _next_batch(self) -> list:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        # Let the requests on their way join this call: until they are queued, the batch is full, or time is up.
        while (self.arriving_requests and self._queue.qsize() < self.max_batch - 1
               and asyncio.get_running_loop().time() < deadline):
            await asyncio.sleep(POLL_S)
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _run(self, batch: list) -> None:
        waiting = [(image, future) for image, future in batch if not future.done()]  # a gone client's are cancelled
        if not waiting:
            return
        loop = asyncio.get_running_loop()
        try:
            probs = await loop.run_in_executor(self._model_thread, self.probabilities, [image for image, _ in waiting])
        except Exception as error:  # a model failure fails these requests (a 500), not the server
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        self.model_calls += 1
        self.images_scored += len(waiting)
        for row, (_, future) in zip(probs, waiting):
            if not future.done():
                future.set_result(row)
