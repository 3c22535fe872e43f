"""Shared fixtures: the real MNIST cache, and small IDX datasets served over loopback HTTP."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge_digits import data
from edge_digits.idx import encode_idx


@pytest.fixture(scope="session")
def mnist_cache() -> Path:
    """The real, verified MNIST cache (fetched once if absent, through the real sources)."""
    result = data.fetch_mnist()
    return result.cache_dir


@pytest.fixture(scope="session")
def mnist(mnist_cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return data.load_mnist(mnist_cache, fetch=False)


@pytest.fixture(scope="session")
def tflm_golden():
    """TFLM's int8 outputs (its reference kernels, the oracle of every engine test) for a model on raw int8
    images, computed once per model and image set in a session: ``golden(model_path, images)``."""
    computed: dict[tuple[str, str], np.ndarray] = {}

    def golden(model: Path, images: np.ndarray) -> np.ndarray:
        key = (str(model), hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest())
        if key not in computed:
            from edge_digits.runtime.tflm import TflmModel

            computed[key] = TflmModel(model.read_bytes()).invoke_raw(images)
        return computed[key]

    return golden


@dataclass
class TinySet:
    """A made-up MNIST-shaped dataset with its own checksums and label counts."""

    files: dict[str, bytes]
    sha256: dict[str, str]
    counts: tuple[int, ...]


@pytest.fixture
def tiny_set() -> TinySet:
    rng = np.random.default_rng(7)
    y_test = np.repeat(np.arange(10, dtype=np.uint8), 2)
    files = {
        data.TRAIN_IMAGES: encode_idx(rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)),
        data.TRAIN_LABELS: encode_idx(rng.integers(0, 10, 30).astype(np.uint8)),
        data.TEST_IMAGES: encode_idx(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)),
        data.TEST_LABELS: encode_idx(y_test),
    }
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    return TinySet(files, sha, (2,) * 10)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, bytes] = {}
    truncate: bool = False

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.truncate else body)
        self.wfile.flush()
        if self.truncate:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Mirror:
    url: str
    handler: type[_Handler]


@pytest.fixture
def http_mirror(tiny_set: TinySet) -> Iterator[Mirror]:
    """A loopback HTTP server serving the tiny set as gzip IDX files under /mnist/."""
    handler = type("Handler", (_Handler,), {
        "routes": {f"/mnist/{k}.gz": gzip.compress(v) for k, v in tiny_set.files.items()},
        "truncate": False,
    })
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Mirror(f"http://127.0.0.1:{server.server_address[1]}/mnist/", handler)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL on which nothing listens (the port was bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def classifier():
    """The bundled ``standard`` model on the project runtime, as the camera path uses it."""
    from edge_digits.models import bundled_model
    from edge_digits.runtime import Classifier

    return Classifier(bundled_model("standard"))


@pytest.fixture(scope="session")
def rejector():
    """The bundled rejection model with its calibrated thresholds, as ``run`` uses it."""
    from edge_digits.vision.reject import load_rejector

    return load_rejector()


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = os.environ.get("EDGE_DIGITS_SCREENSHOTS")   # a folder: the browser tests leave their pages there


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's headless Chromium driven by selenium (both from `make setup`), offline: no driver download.

    Skipped where Chromium is missing, except in CI, where a missing browser fails the test.
    """
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("Chromium and chromedriver are missing: make setup installs chromium and chromium-driver")
        pytest.skip("Chromium is not installed (make setup installs it)")
    os.environ.setdefault("SE_OFFLINE", "true")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver: object, name: str) -> None:
    """Write the page as ``name`` into ``$EDGE_DIGITS_SCREENSHOTS`` when it is set (docs/img for the docs)."""
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(folder / name))  # type: ignore[attr-defined]
