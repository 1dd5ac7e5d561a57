"""Models: the registry of classic nets, torchvision/timm/custom models, and init schemes.

    from visionfit.models import create_model, apply_init
    model = apply_init(create_model("lenet", num_classes=10), "xavier")
"""
from . import classic, classic_deep  # noqa: F401  (importing registers the classic nets)
from .init import INIT_SCHEMES, apply_init
from .registry import MODELS, create_model, list_models, model_args_for_input, natural_input, register_model

__all__ = ["MODELS", "register_model", "create_model", "natural_input", "model_args_for_input", "list_models",
           "apply_init", "INIT_SCHEMES"]
