"""The endpoints: /predict answers what `visionfit predict` answers, /health, /model, and the page."""
import re

import numpy as np
import pytest

import visionfit
from visionfit.serving.app import prediction

from .conftest import DIGITS, METRICS, served, uploads


@pytest.mark.parametrize("model, images, labels_differ", [("mnist_model", "digit_files", True),
                                                          ("photo_model", "photo_files", False)],
                         ids=["mnist-digits", "odd-sized-photos"])
def test_predict_returns_what_visionfit_predict_gives(request, model, images, labels_differ):
    model, images = request.getfixturevalue(model), request.getfixturevalue(images)
    topk = min(5, len(visionfit.load_model(model).visionfit_meta["class_names"]))
    expected = visionfit.predict(model, [str(path) for path in images], topk=topk, device="cpu")
    with served(model) as client:
        answer = client.post(f"/predict?topk={topk}", files=uploads(images))
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["image"] for p in predictions] == [path.name for path in images]
    for got, row in zip(predictions, expected):
        assert got["label"] == row["label"] and got["error"] == ""
        assert got["confidence"] == pytest.approx(row["confidence"], abs=1e-6)
        assert [t["label"] for t in got["top"]] == [row[f"top{j}"] for j in range(1, topk + 1)]
        assert [t["probability"] for t in got["top"]] == pytest.approx([row[f"top{j}_prob"] for j in range(1, topk + 1)],
                                                                       abs=1e-6)
    if labels_differ:  # the trained-a-little digit net: the label comparison above is not vacuous
        assert len({p["label"] for p in predictions}) >= 4


def test_topk_defaults_to_five_and_is_checked(mnist_model, digit_files):
    with served(mnist_model) as client:
        answer = client.post("/predict", files=uploads(digit_files[:1])).json()["predictions"][0]
        assert len(answer["top"]) == 5
        probabilities = [t["probability"] for t in answer["top"]]
        assert probabilities == sorted(probabilities, reverse=True) and answer["top"][0]["label"] == answer["label"]
        for bad in ("0", "11", "two"):
            refused = client.post(f"/predict?topk={bad}", files=uploads(digit_files[:1]))
            assert refused.status_code == 400 and "topk" in refused.json()["error"]


def test_health_counts_model_calls_and_images(mnist_model, digit_files):
    with served(mnist_model) as client:
        assert client.get("/health").json() == {"status": "ok", "model_calls": 0, "images_scored": 0}
        client.post("/predict", files=uploads(digit_files[:3]))
        health = client.get("/health").json()
    assert health["images_scored"] == 3 and 1 <= health["model_calls"] <= 3


def test_model_endpoint_describes_the_file(mnist_model):
    with served(mnist_model) as client:
        model = client.get("/model").json()
    assert model["name"] == "digits.safetensors" and model["runtime"] == "torch"
    assert model["architecture"] == "lenet_relu" and model["class_names"] == DIGITS
    assert (model["input_size"], model["channels"]) == (28, 1)
    assert model["preprocess"].startswith("both sides to 28 (bilinear)")
    assert model["metrics"] == METRICS
    assert model["limits"]["max_batch"] == 32


def test_the_page_is_self_contained_and_safe_with_file_text(mnist_model):
    with served(mnist_model) as client:
        page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)  # no CDN: works offline
    assert "@import" not in html and "innerHTML" not in html  # names from the file are text, never markup
    assert all(path in html for path in ('"/model"', '"/predict"'))


def test_a_non_finite_output_is_an_error_not_a_label():
    row = prediction("x.png", np.array([np.nan, 0.5], dtype=np.float32), ["a", "b"], 2)
    assert row["label"] is None and row["top"] == [] and "not finite" in row["error"]
