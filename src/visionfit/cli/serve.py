"""`visionfit serve`: a model file or ONNX file behind an HTTP API and a web page.

    visionfit serve runs/exp/best.safetensors                       # http://127.0.0.1:8000/
    visionfit serve model.onnx --port 9000 --workers 2 --max-batch 32
    curl -F file=@digit.png http://127.0.0.1:8000/predict
"""
from ..serving.server import LOCALHOST, ServeSettings


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "serve", help="serve a model over HTTP: POST /predict, GET /health, GET /model, a web page at /",
        description="Serve a model file (torch) or an ONNX file (onnxruntime): POST /predict takes image files "
                    "(multipart) and answers the top-k classes as JSON; / is a page to drop images on. "
                    "Concurrent requests share model calls (--max-batch). Needs pip install 'visionfit[serve]'.")
    parser.add_argument("model", help="a model file (runs/exp/best.safetensors) or an ONNX file visionfit exported")
    parser.add_argument("--host", default=LOCALHOST, help="address to listen on; 0.0.0.0 serves every network")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--workers", type=int, default=1, help="server processes, each with its own copy of the model")
    parser.add_argument("--max-batch", type=int, default=ServeSettings.max_batch,
                        help="most images one model call scores, gathered from concurrent requests")
    parser.add_argument("--max-wait-ms", type=float, default=ServeSettings.max_wait_ms,
                        help="how long a model call waits for more requests to join it")
    parser.add_argument("--max-upload-mb", type=float, default=ServeSettings.max_upload_mb,
                        help="largest request body; a larger one gets 413")
    parser.add_argument("--max-pixels", type=int, default=ServeSettings.max_pixels,
                        help="most pixels per image, read from its header before decoding; more gets 413")
    parser.add_argument("--max-files", type=int, default=ServeSettings.max_files, help="most images per request")
    parser.add_argument("--device", default=ServeSettings.device, help="auto, cpu, cuda or cuda:N (model files)")
    parser.add_argument("--trust-code", action="store_true",
                        help="load a model file whose architecture is package.module:Class: imports that module, "
                             "which runs its code; only for files you trust")
    parser.set_defaults(command=run_serve)


def run_serve(args) -> None:
    from ..serving import serve

    serve(args.model, host=args.host, port=args.port, workers=args.workers, max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms, device=args.device, max_upload_mb=args.max_upload_mb,
          max_pixels=args.max_pixels, max_files=args.max_files, trust_code=args.trust_code)
