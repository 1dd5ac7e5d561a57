"""Using a trained model: evaluate it, predict with it, export it, inspect it and its data.

    visionfit.evaluate("runs/exp/best.safetensors", "val/")            # report + files in runs/exp/eval/
    visionfit.predict("runs/exp/best.safetensors", "test/", out="predictions.csv")
    visionfit.export_onnx("runs/exp/best.safetensors", "model.onnx", check=True)
    visionfit.summary("resnet18", input_size=(1, 3, 224, 224))
    visionfit.show_data("hymenoptera/", out="grid.png", augment=True)

Every command reads images through runner.py, so they agree on what an image looks like.
"""
from .evaluate import EvalReport, evaluate
from .export import ExportResult, export_onnx, export_torchscript
from .hub import export_hub_folder, push_to_hub
from .quantize import Int8Result, export_int8
from .parity import Parity, ParityError
from .predict import predict
from .show_data import show_data
from .summary import ModelSummary, summary

__all__ = ["evaluate", "EvalReport", "predict", "export_onnx", "export_torchscript", "ExportResult", "export_hub_folder", "push_to_hub", "export_int8", "Int8Result", "Parity",
           "ParityError", "summary", "ModelSummary", "show_data"]
