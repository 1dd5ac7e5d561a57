"""Screenshot the page of `visionfit serve` after uploading images: how docs/serve.png is made.

    python scripts/serve_screenshot.py runs/exp/best.safetensors digits/*.png -o docs/serve.png

Starts `visionfit serve MODEL` on a free localhost port, opens its page in headless Chromium
(Debian's chromium + chromium-driver, through selenium), chooses the images, waits for every
card to show its answer, saves a PNG of the page and stops the server.
"""
import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"visionfit serve did not come up at {url}")


def screenshot(url: str, images: list[Path], out: Path, width: int, height: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: "loading" not in d.find_element(By.ID, "model-name").text)
        driver.find_element(By.ID, "files").send_keys("\n".join(str(path.resolve()) for path in images))
        WebDriverWait(driver, 60).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".result[data-state=pending]"))
        time.sleep(0.5)  # the thumbnails' object URLs finish painting
        # The whole page, not the first screenful: grow the window by what the page runs past it.
        overflow = driver.execute_script("return document.documentElement.scrollHeight - window.innerHeight")
        if overflow > 0:
            driver.set_window_size(width, height + overflow)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/serve.png"))
    parser.add_argument("--size", default="1100,700", help="window width,height in pixels (it grows to fit the page)")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "visionfit", "serve", args.model, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, server)
        screenshot(url, args.images, args.out, *(int(v) for v in args.size.split(",")))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
