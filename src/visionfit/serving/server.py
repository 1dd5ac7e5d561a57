"""Start the server under uvicorn: what `visionfit serve MODEL` and `visionfit.serve(MODEL)` run.

    visionfit.serve("runs/exp/best.safetensors", port=8000, max_batch=32)   # blocks; Ctrl-C stops it

The model is loaded once before anything listens, so a bad model file is a one-line error,
not a crashed worker. With workers > 1, uvicorn starts that many processes, each importing
the app by name (`app_from_environment`) and loading the model itself from the settings
this process leaves in an environment variable.
"""
import importlib.util
import json
import os
import socket
from dataclasses import asdict, dataclass

from ..errors import ConfigError

LOCALHOST = "127.0.0.1"
SETTINGS_VARIABLE = "VISIONFIT_SERVE_SETTINGS"
DEPENDENCIES = {"starlette": "starlette", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}  # module: package
INSTALL = "pip install 'visionfit[serve]'"


# The caps' defaults, stated once in uploads.Limits (imported lazily: it needs starlette).
DEFAULT_LIMITS = {"max_upload_mb": 32.0, "max_pixels": 40_000_000, "max_files": 64}


@dataclass(frozen=True)
class ServeSettings:
    """Everything a worker process needs to build the app (plain values: they travel as JSON)."""

    model: str
    device: str = "auto"
    trust_code: bool = False
    max_batch: int = 32  # images per model call
    max_wait_ms: float = 5.0  # how long a model call waits for more images to join it
    max_upload_mb: float = DEFAULT_LIMITS["max_upload_mb"]  # per request, all its images together
    max_pixels: int = DEFAULT_LIMITS["max_pixels"]  # per image, width x height, read before decoding
    max_files: int = DEFAULT_LIMITS["max_files"]  # images per request


def serve(model, host: str = LOCALHOST, port: int = 8000, workers: int = 1, max_batch: int = ServeSettings.max_batch,
          max_wait_ms: float = ServeSettings.max_wait_ms, device: str = ServeSettings.device,
          max_upload_mb: float = ServeSettings.max_upload_mb, max_pixels: int = ServeSettings.max_pixels,
          max_files: int = ServeSettings.max_files, trust_code: bool = False) -> None:
    """Serve `model` (a visionfit model file, or an ONNX file it exported) over HTTP until interrupted.

    Binds to localhost unless `host` says otherwise (host="0.0.0.0" serves every network).
    trust_code: allow a model file whose architecture is code outside visionfit (see load_model).
    """
    require_dependencies()
    settings = ServeSettings(str(model), device, trust_code, max_batch, max_wait_ms, max_upload_mb, max_pixels, max_files)
    check_settings(settings, port, workers)
    require_free_port(host, port)
    import uvicorn

    app = build_app(settings)
    backend = app.state.backend
    print(f"serving {backend.path.name} ({backend.runtime}, {len(backend.class_names)} classes) at "
          f"http://{host}:{port}/ with {workers} worker{'s' if workers > 1 else ''}; Ctrl-C stops it", flush=True)
    if workers == 1:
        uvicorn.run(app, host=host, port=port)
        return
    os.environ[SETTINGS_VARIABLE] = json.dumps(asdict(settings))
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=host, port=port, workers=workers)


def build_app(settings: ServeSettings):
    """The app for `settings`, its model loaded."""
    from .app import create_app
    from .backends import load_backend
    from .uploads import Limits

    backend = load_backend(settings.model, settings.device, settings.trust_code)
    limits = Limits(settings.max_upload_mb, settings.max_pixels, settings.max_files)
    return create_app(backend, limits, settings.max_batch, settings.max_wait_ms)


def app_from_environment():
    """A worker's app (uvicorn calls this by name in each worker process)."""
    return build_app(ServeSettings(**json.loads(os.environ[SETTINGS_VARIABLE])))


def require_dependencies() -> None:
    missing = [package for module, package in DEPENDENCIES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"serving needs starlette, uvicorn and python-multipart (missing: {', '.join(missing)}): {INSTALL}")


def check_settings(settings: ServeSettings, port: int, workers: int) -> None:
    """Each number within its range, or a ConfigError naming the flag."""
    bounds = {"--port": (port, 1, 65535), "--workers": (workers, 1, 64), "--max-batch": (settings.max_batch, 1, 4096),
              "--max-wait-ms": (settings.max_wait_ms, 0, 1000), "--max-upload-mb": (settings.max_upload_mb, 0.001, 4096),
              "--max-pixels": (settings.max_pixels, 1, 2**31), "--max-files": (settings.max_files, 1, 4096)}
    for flag, (value, low, high) in bounds.items():
        if not low <= value <= high:
            raise ConfigError(f"{flag} {value} is outside {low:g}..{high:g}")


def require_free_port(host: str, port: int) -> None:
    """Fail with a one-line message before loading the model, rather than inside uvicorn after it."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); pick another --port, "
                          "or a --host this machine has") from error
