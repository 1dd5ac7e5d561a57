"""The page in a real browser (headless Chromium driven by Selenium): upload real MNIST digits, read
each card's top-1 back from the page, and find `visionfit predict`'s labels and confidences.

Needs Debian's `chromium` and `chromium-driver` (CI installs them: .ci/run) and the `selenium`
package (the dev extra); without them the test is skipped, saying which is missing.
"""
import shutil

import pytest

import visionfit

from .conftest import METRICS

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[dev]'")
from selenium.webdriver.common.by import By  # noqa: E402  (after the skip: selenium may be missing)
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
               None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(BROWSER is None or DRIVER is None,
                                reason="no Chromium and chromedriver on PATH: apt-get install chromium chromium-driver")
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)  # no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def cards(browser) -> list:
    return browser.find_elements(By.CSS_SELECTOR, "#results .result")


def test_the_page_shows_the_labels_visionfit_predict_gives(browser, live_server, mnist_model, digit_files, tmp_path):
    expected = {row["image"]: row for row in visionfit.predict(mnist_model, [str(p) for p in digit_files], device="cpu")}
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("shopping list: milk, eggs")
    browser.get(live_server)
    wait = WebDriverWait(browser, TIMEOUT_S)
    wait.until(lambda b: b.find_element(By.ID, "model-name").text == mnist_model.name)
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in [*digit_files, not_an_image]))
    wait.until(lambda b: len(cards(b)) == 11 and all(c.get_attribute("data-state") != "pending" for c in cards(b)))

    shown = {card.get_attribute("data-image"): card for card in cards(browser)}
    for path in digit_files:
        card, row = shown[path.name], expected[str(path)]
        assert card.get_attribute("data-state") == "done"
        assert card.find_element(By.CSS_SELECTOR, ".top1").text == row["label"]
        bars = card.find_elements(By.CSS_SELECTOR, ".bar")
        assert len(bars) == 5 and bars[0].get_attribute("data-label") == row["label"]
        assert float(bars[0].get_attribute("data-probability")) == pytest.approx(row["confidence"], abs=1e-6)
    assert len({row["label"] for row in expected.values()}) >= 4  # the net tells these digits apart
    refused = shown["notes.png"]
    assert refused.get_attribute("data-state") == "error"
    assert "cannot read image notes.png" in refused.find_element(By.CSS_SELECTOR, ".error").text

    header = browser.find_element(By.TAG_NAME, "header").text
    assert "lenet_relu" in header and "10 classes" in header and "91.55%" in header  # METRICS' val_acc
    assert METRICS["val_acc"] == 0.9155
