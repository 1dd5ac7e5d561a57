"""visionfit: train, evaluate, predict and export image classifiers, from the CLI or Python.

    import visionfit
    result = visionfit.fit(model="lenet", data=None, epochs=5)       # embedded MNIST sample
    model = visionfit.load_model(result.best_model)
"""
import importlib

__version__ = "0.1.0"

# Public name -> module that defines it. Imported on first use, so `import visionfit`
# stays cheap and a submodule can be used without importing all the others.
_PUBLIC = {
    "fit": "fitting", "FitResult": "fitting", "lr_find": "finding", "LRFindResult": "finding",
    "compare": "comparing",
    "create_model": "models", "list_models": "models",
    "load_model": "checkpoints", "read_meta": "checkpoints",
    "evaluate": "infer", "predict": "infer", "export_onnx": "infer", "export_torchscript": "infer",
    "export_hub_folder": "infer", "push_to_hub": "infer", "export_int8": "infer",
    "summary": "infer", "show_data": "infer",
    "check_data": "data.check",
    "serve": "serving",
    "VisionfitError": "errors", "ConfigError": "errors", "DataError": "errors", "ModelError": "errors",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'visionfit' has no attribute '{name}'")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)


def __dir__():
    return sorted(__all__)
