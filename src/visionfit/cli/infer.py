"""`visionfit eval | predict | export | summary | show-data`: parse, call visionfit.infer, print.

    visionfit eval runs/exp/best.safetensors --data val/
    visionfit predict runs/exp/best.safetensors test.csv --images images/ -o submission.csv --format kaggle
    visionfit predict runs/exp/best.safetensors test/ --format kaggle --probs --sample-submission sample_submission.csv
    visionfit export runs/exp/best.safetensors --onnx model.onnx --check
    visionfit summary resnet18 --input-size 1,3,224,224
    visionfit show-data --data hymenoptera/ -o grid.png --augment
"""
import argparse
import sys

from ..errors import ConfigError
from ..formats import FORMATS
from .train import parse_key_value  # the KEY=VALUE parser train's --model-args uses


def add_commands(commands) -> None:
    _add_eval(commands.add_parser("eval", help="accuracy, per-class metrics, confusion matrix, top losses",
                                  description="Evaluate a model file on labelled data."))
    _add_predict(commands.add_parser("predict", help="predict images into a CSV",
                                     description="Predict one image, a folder (recursive) or a CSV of images."))
    _add_export(commands.add_parser("export", help="export to ONNX / TorchScript, with a parity check",
                                    description="Export a model file to ONNX and/or TorchScript."))
    _add_summary(commands.add_parser("summary", help="layer table: output shapes, parameters, MACs, size",
                                     description="Summarise a model name or model file layer by layer."))
    _add_show_data(commands.add_parser("show-data", help="a labelled grid of samples, with augmentations",
                                       description="Draw a grid of samples as training would see them."))


def _add_runtime_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", help="root folder for relative image paths in a CSV")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default="auto", help="auto (CUDA, else Apple's MPS, else the CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--tta", action="store_true", help="average the softmax of each image and its horizontal flip")
    # 32 KiB: infer/batches.py's THREADED_DECODE_BYTES, written out because building the parser imports no torch.
    parser.add_argument("--workers", type=int,
                        help="image decoding threads (default: one per core, at most 8, for files of 32 KiB or more; "
                             "smaller files decode fastest on one thread)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_trust_flag(parser)


def _add_trust_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-code", action="store_true",
                        help="load a model file whose architecture is package.module:Class: imports that module, "
                             "which runs its code; only for files you trust")


def _add_eval(parser) -> None:
    parser.add_argument("model", help="a model file, e.g. runs/exp/best.safetensors")
    parser.add_argument("--data", required=True, help="a folder of class folders, or a CSV of image,label rows")
    parser.add_argument("-o", "--out", help="report folder (default: eval/ next to the model file, or eval2/, ...)")
    parser.add_argument("--cam", action="store_true",
                        help="Grad-CAM of each top loss: panels in top_losses.png, one PNG per image in cam/")
    parser.add_argument("--cam-layer", metavar="NAME",
                        help="the layer Grad-CAM reads, e.g. layer4 (default: timm's last feature stage, else the "
                             "last layer with a spatial output)")
    _add_runtime_flags(parser)
    parser.set_defaults(command=run_eval)


def run_eval(args) -> None:
    from ..infer import evaluate

    def show(report) -> None:  # the numbers, while the pictures are still being drawn
        print(report.format(), flush=True)

    evaluate(args.model, args.data, images=args.images, batch_size=args.batch_size, device=args.device,
             out=args.out, tta=args.tta, workers=args.workers, trust_code=args.trust_code, quiet=args.quiet,
             cam=args.cam or args.cam_layer is not None, cam_layer=args.cam_layer, on_numbers=show)


DEFAULT_PREDICTIONS = "predictions.csv"
PRINTED_AT_MOST = 20  # prediction lines printed to stdout; more only go to the CSV
SHOWN_TOPK = 3  # classes a lone image's line shows when --topk does not say


def _add_predict(parser) -> None:
    parser.add_argument("model", help="a model file, e.g. runs/exp/best.safetensors")
    parser.add_argument("inputs", metavar="INPUT", help="an image, a folder of images (searched recursively) or a CSV of image paths")
    parser.add_argument("-o", "--out", help=f"CSV to write (default: {DEFAULT_PREDICTIONS}; one image without -o "
                                            f"is only printed)")
    parser.add_argument("--topk", type=int, default=0, help="add the K most probable classes and their probabilities")
    parser.add_argument("--format", choices=list(FORMATS), default="full",
                        help="; ".join(f"{name}: {text}" for name, text in FORMATS.items()))
    parser.add_argument("--probs", action="store_true",
                        help="one probability column per class, named by class, in the model's class order "
                             "(a sample submission's order when it has them)")
    parser.add_argument("--sample-submission", metavar="FILE.csv",
                        help="with --format kaggle: copy this file's header, id column and row order; every id in "
                             "it must be among the inputs, and every input among its ids")
    _add_runtime_flags(parser)
    parser.set_defaults(command=run_predict)


def run_predict(args) -> None:
    """Predictions to a CSV; up to PRINTED_AT_MOST of them also as lines on stdout. One image
    without -o is only printed, with its SHOWN_TOPK most probable classes."""
    from pathlib import Path

    from ..checkpoints import read_meta
    from ..infer import predict
    from ..infer.predict import failure_lines, result_line

    lone_image = args.out is None and Path(args.inputs).is_file() and Path(args.inputs).suffix.lower() != ".csv"
    out = None if lone_image else args.out or DEFAULT_PREDICTIONS
    topk = args.topk
    if lone_image and not topk:
        topk = min(SHOWN_TOPK, len(read_meta(args.model).get("class_names") or [None]))
    rows = predict(args.model, args.inputs, out=out, images=args.images, topk=topk, tta=args.tta,
                   format=args.format, batch_size=args.batch_size, device=args.device, workers=args.workers,
                   trust_code=args.trust_code, probs=args.probs, sample_submission=args.sample_submission,
                   quiet=args.quiet)
    if len(rows) <= PRINTED_AT_MOST:
        print("\n".join(result_line(row) for row in rows))
    if out is not None:
        print(f"wrote {len(rows):,} prediction{'s' if len(rows) != 1 else ''} to {out}")
    if "true" in (rows[0] if rows else {}):
        scored = [row for row in rows if not row["error"]]
        correct = sum(row["label"] == row["true"] for row in scored)
        measure = "accuracy" if "confidence" in rows[0] else "exact-match ratio (every tag right)"  # multi-label
        print(f"{measure} on the labelled input: {correct / max(1, len(scored)):.2%} ({correct:,}/{len(scored):,})")
    for line in failure_lines(rows, args.format):
        print(line, file=sys.stderr)


def _add_export(parser) -> None:
    parser.add_argument("model", help="a model file, e.g. runs/exp/best.safetensors")
    parser.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX file")
    parser.add_argument("--torchscript", metavar="OUT.pt", help="write a TorchScript file (traced)")
    parser.add_argument("--opset", type=int, help="ONNX opset version, 17 or newer (default: the exporter's)")
    parser.add_argument("--with-preprocessing", action="store_true",
                        help="take uint8 0..255 images; scaling and normalisation run inside the graph")
    parser.add_argument("--check", action="store_true",
                        help="check the file and compare it with PyTorch on real images at batch 1 and 7")
    parser.add_argument("--check-data", help="images for --check: a folder or CSV (default: the bundled MNIST sample)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |logit difference|")
    parser.add_argument("--quantize", choices=["int8"],
                        help="int8: onnxruntime static quantization of the --onnx file, calibrated on training images; "
                             "reports size, latency and accuracy against float")
    parser.add_argument("--calibration-data", metavar="PATH",
                        help="images to calibrate --quantize on: a folder or CSV (default: the training data the "
                             "run's config.yaml records)")
    parser.add_argument("--images", help="root folder for relative image paths in a --calibration-data CSV")
    parser.add_argument("--min-agreement", type=float, default=0.85,
                        help="with --quantize and --check: least fraction of check images whose top-1 class "
                             "matches PyTorch's")
    parser.add_argument("--hub-folder", metavar="DIR",
                        help="write a Hugging Face model folder: config.json, model.safetensors, README.md (the model card)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID",
                        help="upload the --hub-folder (or a temporary one) to this Hub model repository; "
                             "token from $HF_TOKEN or `hf auth login`")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: make a new repository private")
    _add_trust_flag(parser)
    parser.set_defaults(command=run_export)


def run_export(args) -> None:
    from ..files import refuse_overwriting
    from ..infer import export_onnx, export_torchscript

    if not (args.onnx or args.torchscript or args.hub_folder or args.push_to_hub):
        raise ConfigError("nothing to export: give --onnx OUT.onnx, --torchscript OUT.pt and/or --hub-folder DIR")
    refuse_overwriting({"--onnx": args.onnx, "--torchscript": args.torchscript})
    if args.hub_folder or args.push_to_hub:
        _export_hub(args)
    options = dict(with_preprocessing=args.with_preprocessing, check=args.check, check_data=args.check_data,
                   tolerance=args.tolerance, trust_code=args.trust_code)
    if args.quantize and not args.onnx:
        raise ConfigError("--quantize int8 quantizes the ONNX file: give --onnx OUT.onnx too")
    if not 0 <= args.min_agreement <= 1:
        raise ConfigError(f"--min-agreement {args.min_agreement:g} is a fraction: give a number from 0 to 1, e.g. 0.85")
    results = []
    if args.onnx and args.quantize:
        _export_int8(args)
    elif args.onnx:
        results.append(("ONNX", export_onnx(args.model, args.onnx, opset=args.opset, **options)))
    if args.torchscript:
        results.append(("TorchScript", export_torchscript(args.model, args.torchscript, **options)))
    kind = "uint8 0..255" if args.with_preprocessing else "float32 normalised"
    names = {"ONNX": ("'images' ", "'logits' "), "TorchScript": ("", "")}
    for label, result in results:
        given, returned = names[label]
        print(f"wrote {label} {result.path}: input {given}{kind} N x C x H x W (any N), output {returned}N x classes")
        for parity in result.checks:
            print(f"  {parity.format()}")
        if result.checks:
            print(f"  parity within --tolerance {args.tolerance:g}")


def _export_int8(args) -> None:
    from ..infer import export_int8

    result = export_int8(args.model, args.onnx, calibration_data=args.calibration_data, images=args.images,
                         opset=args.opset, with_preprocessing=args.with_preprocessing, check=args.check,
                         check_data=args.check_data, min_agreement=args.min_agreement, trust_code=args.trust_code)
    kind = "uint8 0..255" if args.with_preprocessing else "float32 normalised"
    print(f"wrote int8 ONNX {result.path}: input 'images' {kind} N x C x H x W (any N), output 'logits' N x classes")
    print("  " + result.format().replace("\n", "\n  "))
    for parity in result.checks:
        print(f"  {parity.format()}")
    if result.checks:
        print(f"  top-1 agreement at least --min-agreement {args.min_agreement:g}")


def _export_hub(args) -> None:
    import tempfile

    from ..infer import export_hub_folder, push_to_hub

    with tempfile.TemporaryDirectory(prefix="visionfit-hub-") as scratch:
        folder = export_hub_folder(args.model, args.hub_folder or scratch, trust_code=args.trust_code)
        if args.hub_folder:
            print(f"wrote model folder {folder}: config.json, model.safetensors, README.md")
        if args.push_to_hub:
            print(f"pushed to {push_to_hub(folder, args.push_to_hub, private=args.private)}")


def _add_summary(parser) -> None:
    parser.add_argument("model_or_name", metavar="MODEL_OR_NAME",
                        help="a model name (resnet18, lenet, timm:...) or a model file")
    parser.add_argument("--input-size", "--input", type=_shape, metavar="N,C,H,W",
                        help="input shape (default: the model's natural input, batch 1)")
    parser.add_argument("--num-classes", type=int, help="output classes for a name (default: 1000 for torchvision/timm, 10 for classic nets)")
    parser.add_argument("--model-args", nargs="*", metavar="KEY=VALUE", type=parse_key_value, default=[],
                        help="extra keyword arguments for the model factory (e.g. act=relu)")
    _add_trust_flag(parser)
    parser.set_defaults(command=run_summary)


def run_summary(args) -> None:
    from ..infer import summary

    print(summary(args.model_or_name, input_size=args.input_size, num_classes=args.num_classes,
                  model_args=dict(args.model_args), trust_code=args.trust_code).format())


def _add_show_data(parser) -> None:
    parser.add_argument("--data", help="as for train (default: the bundled MNIST sample)")
    parser.add_argument("--images", help="root folder for relative image paths in a CSV")
    parser.add_argument("-o", "--out", default="grid.png", help="PNG to write")
    parser.add_argument("--n", type=int, default=32, help="images to show")
    parser.add_argument("--augment", nargs="?", const=True, default=False, choices=["none", "light", "medium", "strong"],
                        metavar="LEVEL", help="show each image again as training augments it: at LEVEL (none, light, medium, strong), "
                                              "or alone: at the model's recipe's level")
    parser.add_argument("--seed", type=int, default=0, help="which images, and which augmentations")
    parser.add_argument("--split", choices=["train", "val", "test"], default="train", help="split to draw from")
    parser.add_argument("--model", default="lenet_relu", help="the model you will train: it sets the image size when --image-size does not")
    parser.add_argument("--image-size", type=int, help="side in pixels the model sees (as for train; default: the model's natural input)")
    parser.add_argument("--channels", type=int, choices=[1, 3], help="1 (grey) or 3 (RGB); default: what the data is")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="random horizontal flip (as for train; default: on for photos, off for small images)")
    parser.add_argument("--rotation", type=float, default=0.0, help="random rotation in degrees (as for train)")
    parser.add_argument("--pad", type=int, help="padding of the random crop for small images (as for train; default: size/8 rounded)")
    parser.add_argument("--val-split", type=float, help="as for train: the hold-out --split val shows (default: 0.2 when the data has no validation split)")
    parser.add_argument("--val-data", help="as for train: a separate validation folder or CSV")
    parser.add_argument("--columns", type=int, default=8, help="images per row")
    parser.set_defaults(command=run_show_data)


def run_show_data(args) -> None:
    from ..infer import show_data

    options = {key: getattr(args, key) for key in ("images", "image_size", "channels", "flip", "pad", "val_split", "val_data")
               if getattr(args, key) is not None}
    path = show_data(args.data, out=args.out, n=args.n, augment=args.augment, seed=args.seed, split=args.split,
                     model=args.model, columns=args.columns, rotation=args.rotation, **options)
    print(f"wrote {path}")


def _shape(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not N,C,H,W (e.g. 1,3,224,224)")
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not four positive numbers N,C,H,W (e.g. 1,3,224,224)")
    return values
