"""Serving a trained model over HTTP: `visionfit serve MODEL`, or from Python:

    visionfit.serve("runs/exp/best.safetensors")        # http://127.0.0.1:8000/ until Ctrl-C
    visionfit.serve("model.onnx", port=9000, max_batch=32, workers=2)

    curl -F file=@digit.png http://127.0.0.1:8000/predict      # top-5 JSON with class names

Modules: server (settings, uvicorn), app (routes), uploads (size, file and pixel caps),
batching (concurrent requests share model calls), backends (torch or onnxruntime),
page.html (the self-contained page at /). Needs the `serve` extra: pip install 'visionfit[serve]'.
"""
from .server import serve

__all__ = ["serve"]
