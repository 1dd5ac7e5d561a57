"""A consumer that visionfit did not write agrees with `visionfit predict`: examples/onnx_consumer.py
preprocesses real photos from the ONNX file's metadata alone (Pillow + numpy, torch unimportable)
and runs onnxruntime. Its top-1 must equal predict's on every image."""
import subprocess
import sys
from pathlib import Path

import pytest

import visionfit

from ..photos import write_odd_photos

CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "onnx_consumer.py"
# Runs the consumer with torch blocked: an import of it fails, so the consumer provably does without.
WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
                 "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope="module")
def odd_photos(tmp_path_factory) -> Path:
    return write_odd_photos(tmp_path_factory.mktemp("odd_photos"))


@pytest.mark.parametrize("options", [
    dict(image_size=40),  # the photo recipe's default: shorter side to 45, center crop 40, bilinear
    dict(image_size=36, resize="both", interpolation="bicubic", crop_fraction=0.9),
    dict(image_size=32, channels=1, interpolation="nearest"),
], ids=["shorter-bilinear", "both-bicubic", "grey-nearest"])
def test_metadata_only_consumer_agrees_with_predict_on_every_photo(odd_photos, tmp_path, options):
    result = visionfit.fit("lenet_relu", str(odd_photos), project=str(tmp_path / "runs"), epochs=1, batch_size=8,
                           quiet=True, workers=0, val_split=0.2, **options)
    onnx_file = tmp_path / "model.onnx"
    visionfit.export_onnx(result.best_model, onnx_file)
    images = sorted(str(path) for path in odd_photos.rglob("*") if path.is_file())
    rows = visionfit.predict(result.best_model, images)
    predicted = {row["image"]: row["label"] for row in rows}

    completed = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(CONSUMER), str(onnx_file), *images],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    lines = [line.rsplit(",", 2) for line in completed.stdout.splitlines()]
    consumed = {image: label for image, label, _ in lines}
    assert len(consumed) == len(images) == 18
    assert consumed == predicted  # 100% top-1 agreement
    # and the same numbers: the consumer's pixels are visionfit's, not merely close to them
    assert [float(p) for _, _, p in lines] == pytest.approx([row["confidence"] for row in rows], abs=1e-5)
