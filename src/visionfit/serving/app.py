"""The ASGI app `visionfit serve` runs: a Starlette app around one Backend and one Batcher.

    app = create_app(load_backend("runs/exp/best.safetensors"), Limits(), max_batch=32)

    POST /predict   multipart image files (-F file=@a.png -F file=@b.png); ?topk=N (default 5)
                    -> {"model": ..., "predictions": [{"image", "label", "confidence", "top": [{"label", "probability"}]}]}
    GET  /health    -> {"status": "ok", "model_calls": ..., "images_scored": ...}
    GET  /model     -> the model's name, runtime, classes, preprocessing, metrics, and the server's limits
    GET  /          the page: pick or drop images, see each with its top 5

Uploads decode on a few threads through infer/runner.py's decode path (the eval
preprocessing `visionfit predict` uses), then wait in the Batcher for a shared model call.
A refused upload gets a 4xx JSON {"error": one line}; nothing a client sends stops the server.
"""
import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from ..errors import DataError
from ..infer.runner import NOT_FINITE_REASON, decode_upload
from .backends import Backend
from .batching import Batcher
from .server import ServeSettings
from .uploads import BAD_REQUEST, Limits, Refused, read_images, refusal

DEFAULT_TOPK = 5
PAGE = "page.html"


def create_app(backend: Backend, limits: Limits = Limits(), max_batch: int = ServeSettings.max_batch,
               max_wait_ms: float = ServeSettings.max_wait_ms) -> Starlette:
    """The app serving `backend`; its state holds the backend, limits and batcher (tests read its counters)."""
    batcher = Batcher(backend.probabilities, max_batch, max_wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Decoding threads: PIL releases the GIL; only a few, since each may hold a max_pixels image.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="visionfit-decode") as pool:
            app.state.decoders = pool
            await batcher.start()
            yield
            await batcher.stop()

    app = Starlette(routes=[Route("/", page), Route("/health", health), Route("/model", model_info),
                            Route("/predict", predict, methods=["POST"])],
                    exception_handlers={Refused: refused}, lifespan=lifespan)
    app.state.backend, app.state.limits, app.state.batcher = backend, limits, batcher
    app.state.page = (resources.files(__package__) / PAGE).read_text(encoding="utf-8")
    return app


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(request.app.state.page)


async def health(request: Request) -> JSONResponse:
    batcher = request.app.state.batcher
    return JSONResponse({"status": "ok", "model_calls": batcher.model_calls, "images_scored": batcher.images_scored})


async def model_info(request: Request) -> JSONResponse:
    state = request.app.state
    limits = {"max_upload_mb": state.limits.max_upload_mb, "max_pixels": state.limits.max_pixels,
              "max_files": state.limits.max_files, "max_batch": state.batcher.max_batch}
    return JSONResponse({**state.backend.describe(), "limits": limits})


async def predict(request: Request) -> JSONResponse:
    state = request.app.state
    topk = _topk(request, len(state.backend.class_names))
    with state.batcher.arriving():
        uploads = await read_images(request, state.limits)
        images = await asyncio.gather(*(_decoded(state, name, data) for name, data in uploads))
    probs = await state.batcher.score(list(images))
    names = state.backend.class_names
    rows = [prediction(name, row, names, topk) for (name, _), row in zip(uploads, probs)]
    return JSONResponse({"model": state.backend.path.name, "predictions": rows})


def prediction(image: str, probs: np.ndarray, names: list[str], topk: int) -> dict:
    """One image's answer: its label and confidence (as `visionfit predict` writes them) and its top k."""
    if not np.isfinite(probs).all():
        return {"image": image, "label": None, "confidence": None, "top": [], "error": NOT_FINITE_REASON}
    best = np.argsort(-probs, kind="stable")  # ties in class order, as predict breaks them
    top = [{"label": names[k], "probability": float(probs[k])} for k in best[:topk]]
    return {"image": image, "label": names[best[0]], "confidence": float(probs[best[0]]), "top": top, "error": ""}


async def refused(request: Request, error: Refused) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=error.status)


async def _decoded(state, name: str, data: bytes):
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(state.decoders, decode_upload, data, name, state.backend.preset,
                                          state.limits.max_pixels)
    except DataError as error:
        raise refusal(error) from error


def _topk(request: Request, classes: int) -> int:
    text = request.query_params.get("topk", str(min(DEFAULT_TOPK, classes)))
    if not text.isdigit() or not 1 <= int(text) <= classes:
        raise Refused(BAD_REQUEST, f"topk={text[:20]} must be a whole number from 1 to the model's {classes} classes")
    return int(text)
