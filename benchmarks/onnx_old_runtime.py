"""Do visionfit's ONNX files load, and agree with visionfit, in older onnxruntime releases?

    PYTHONPATH=src python benchmarks/onnx_old_runtime.py                      # ort 1.16.3, 1.17.3, 1.18.1 + installed
    PYTHONPATH=src python benchmarks/onnx_old_runtime.py --runtimes 1.16.3 --opsets 17

Trains a lenet_relu (bundled MNIST sample, 2 epochs) and a resnet18 (32 px, 100 digits per
class, 2 epochs of Adam), exports each at every opset asked for, and runs every file in a virtual
environment per onnxruntime release (onnxruntime and numpy<2 only: no torch, as on a
deployment box), made once under --venvs with pip. Each runtime predicts 500 real MNIST
test digits; the table says whether it loaded the file and how often its top-1 equals
visionfit.predict's. One extra file per model keeps the exporter's own IR stamp (opset 17,
IR 10), to show what older runtimes did with visionfit's exports before the IR fix.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

import visionfit
from visionfit.data.embedded import load_embedded
from visionfit.data.samples import UNLABELLED, Samples
from visionfit.infer.runner import decode_sample, eval_pixels, load_classifier

DIGITS = 500
MODELS = {  # name -> fit() options; both train on the bundled MNIST sample
    "lenet_relu": dict(epochs=2),
    "resnet18": dict(epochs=2, image_size=32, max_per_class=100, batch_size=64, optimizer="adam", lr=0.001),
}
EXPORTER_IR = 10  # what torch 2.14's exporter stamps on every file, whatever the opset
REFUSALS = [r"Unsupported model IR version: \d+, max supported IR version: \d+",
            r"Opset \d+ is under development", r"official support for domain ai.onnx is till opset \d+"]
# Runs inside each runtime's venv: load every file, predict, print one JSON line per file.
CHILD = """
import json, sys
import numpy as np, onnxruntime
cases = json.load(open(sys.argv[1]))
for case in cases:
    try:
        session = onnxruntime.InferenceSession(case["file"], providers=["CPUExecutionProvider"])
        logits = session.run(["logits"], {"images": np.load(case["inputs"])})[0]
        print(json.dumps({"file": case["file"], "top1": logits.argmax(1).tolist()}))
    except Exception as error:
        print(json.dumps({"file": case["file"], "error": (str(error).strip().splitlines() or [type(error).__name__])[0]}))
print(json.dumps({"version": onnxruntime.__version__}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", nargs="+", default=["1.16.3", "1.17.3", "1.18.1"],
                        help="onnxruntime releases to install, each in its own venv (the installed one is always run)")
    parser.add_argument("--opsets", nargs="+", type=int, default=[17, 18, 19, 20, 21])
    parser.add_argument("--venvs", type=Path, default=Path("~/.cache/visionfit/onnx-runtimes").expanduser(),
                        help="where the runtimes' venvs are made (kept for the next run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        cases = export_cases(Path(work), args.opsets)
        (Path(work) / "cases.json").write_text(json.dumps(cases))
        pythons = {version: runtime_python(args.venvs, version) for version in args.runtimes}
        pythons[f"{onnxruntime.__version__} (installed)"] = Path(sys.executable)
        results = {label: run_cases(python, Path(work) / "cases.json") for label, python in pythons.items()}
    print(report(cases, results))


def export_cases(work: Path, opsets: list[int]) -> list[dict]:
    """Every (model, opset) ONNX file with its input digits and visionfit's own top-1 for them."""
    test = load_embedded().val
    digits = Samples(labels=[UNLABELLED] * DIGITS, images=test.images[:DIGITS])
    cases = []
    for name, options in MODELS.items():
        model_file = visionfit.fit(name, None, quiet=True, project=str(work / "runs"), **options).best_model
        classifier = load_classifier(model_file, "cpu")
        inputs = work / f"{name}-inputs.npy"
        np.save(inputs, model_inputs(classifier, digits))
        rows = visionfit.predict(model_file, digits)
        expected = [classifier.class_names.index(row["label"]) for row in rows]
        paths = {opset: visionfit.export_onnx(model_file, work / f"{name}-opset{opset}.onnx", opset=opset).path
                 for opset in opsets}
        cases += [case(name, opset, path, inputs, expected) for opset, path in paths.items()]
        cases.append(case(name, opsets[0], restamped(paths[opsets[0]], EXPORTER_IR), inputs, expected))
    return cases


def model_inputs(classifier, digits: Samples) -> np.ndarray:
    """The digits as the exported graph takes them: float N x C x H x W, through predict's own eval pipeline."""
    preset = classifier.preset
    decoded = [decode_sample(digits, i, preset) for i in range(len(digits))]
    return preset.normalize(eval_pixels(decoded)).numpy()


def case(model: str, opset: int, path, inputs: Path, expected: list[int]) -> dict:
    return {"model": model, "opset": opset, "ir": onnx.load(str(path), load_external_data=False).ir_version,
            "file": str(path), "inputs": str(inputs), "expected": expected}


def restamped(path: Path, ir_version: int) -> Path:
    """A copy of `path` carrying another IR version (the graph unchanged)."""
    model = onnx.load(str(path))
    model.ir_version = ir_version
    copy = path.with_name(f"{path.stem}-ir{ir_version}.onnx")
    onnx.save(model, str(copy))
    return copy


def runtime_python(venvs: Path, version: str) -> Path:
    """The Python of a venv holding onnxruntime==version and numpy<2 (those releases predate numpy 2)."""
    folder = venvs / f"onnxruntime-{version}"
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"onnxruntime=={version}", "numpy<2"],
                       check=True, capture_output=True)
    return python


def run_cases(python: Path, cases_file: Path) -> dict[str, dict]:
    """file -> {"top1": [...]} or {"error": "..."} from one runtime."""
    out = subprocess.run([str(python), "-c", CHILD, str(cases_file)], capture_output=True, text=True, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {line["file"]: line for line in lines if "file" in line}


def report(cases: list[dict], results: dict[str, dict]) -> str:
    header = "| model | opset | IR | " + " | ".join(f"ort {label}" for label in results) + " |"
    lines = [f"Top-1 agreement with visionfit.predict on {DIGITS} real MNIST test digits, per onnxruntime release", "",
             header, "|---|---:|---:|" + "---|" * len(results)]
    for c in cases:
        cells = [cell(c, by_file[c["file"]]) for by_file in results.values()]
        lines.append(f"| {c['model']} | {c['opset']} | {c['ir']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cell(case: dict, result: dict) -> str:
    if "error" in result:
        return f"refused: {reason(result['error'])}"
    agreement = np.mean(np.asarray(result["top1"]) == np.asarray(case["expected"]))
    return f"{agreement:.1%}"


def reason(error: str) -> str:
    """The why of a refusal, without the file path and the C++ signature around it."""
    found = re.search("|".join(REFUSALS), error)
    return found[0] if found else error.rpartition(") ")[2][:100]


if __name__ == "__main__":
    main()
