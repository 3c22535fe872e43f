"""The page of ``edge-digits serve`` (``GET /``, ``/static/NAME``): its files over HTTP, then the page in headless
Chromium (a real photo read, digits drawn with a mouse and a finger, markup in an answer, the server's errors),
all against the real server in a subprocess on a loopback port (``Server`` of ``test_serve.py``)."""

from __future__ import annotations

import html.parser
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import pytest
import test_serve
from conftest import save_screenshot
from test_serve import Server

from edge_digits.serve.app import STATIC_DIR

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

BODY_LIMIT = 300_000     # bytes: the shared photos (180 to 280 KB) fit, one at twice their size does not
SIDE_LIMIT = 2048        # pixels per side
PHOTO = "sheet4.png"     # upright, four lines

model_path = test_serve.model_path       # the bundled standard model (the fixture of test_serve.py)

Stroke = list[tuple[float, float]]       # points in 0..1 of the pad's side


@pytest.fixture(scope="module")
def page_server(model_path: Path) -> Iterator[Server]:
    """The server with a body limit that the shared photos pass and a photo at twice their size does not."""
    srv = Server(["--model", str(model_path), "--max-body-bytes", str(BODY_LIMIT),
                  "--max-image-side", str(SIDE_LIMIT)])
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, srv.proc.stderr.read()[-3000:] if srv.proc.stderr else ""


def _photo(name: str = PHOTO) -> tuple[Path, dict[str, Any]]:
    from edge_digits.vision import photos

    folder = photos.default_photos_dir()
    item = next((i for i in photos.load_truth(folder) if i["image"] == name), None) if folder.is_dir() else None
    if item is None:
        pytest.skip("real photos not found")
    return folder / name, item


# ---- the files over HTTP --------------------------------------------------------------------------------------

class _Refs(html.parser.HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]


def test_page_is_html_that_links_only_its_own_files(page_server: Server) -> None:
    status, headers, body = page_server.request("GET", "/")
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8" and headers["Cache-Control"] == "no-cache"
    assert body.startswith(b"<!doctype html>")
    parser = _Refs()
    parser.feed(body.decode())
    assert parser.refs
    for ref in parser.refs:
        parts = urlsplit(ref)
        assert parts.scheme in ("", "data") and not parts.netloc and "http" not in ref, ref
    scripts = [r for r in parser.refs if urlsplit(r).path.startswith("static/")]
    assert {urlsplit(r).path for r in scripts} == {"static/app.js", "static/app.css"}
    for ref in parser.refs:
        if not ref.startswith("data:"):
            status, _, data = page_server.request("GET", urljoin("/", ref))
            assert status == 200, (ref, data[:200])


def test_static_files_served_with_their_types(page_server: Server) -> None:
    for name, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, headers, body = page_server.request("GET", f"/static/{name}")
        assert status == 200, body
        assert headers["Content-Type"] == f"{ctype}; charset=utf-8"
        assert "max-age" in headers["Cache-Control"]
        assert body == (STATIC_DIR / name).read_bytes()
    status, _, js = page_server.request("GET", "/static/app.js?v=anything")   # the page's cache-busting query
    assert status == 200 and js == (STATIC_DIR / "app.js").read_bytes()


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/../app.py", "/static/%2e%2e/x", "/static/..%2fapp.py",
                                  "/static/", "/static", "/static/sub/app.js", "/static/app.js/", "/static/APP.JS",
                                  "/index.html", "/static/index.html/.."])
def test_other_paths_are_404(page_server: Server, path: str) -> None:
    status, headers, body = page_server.request("GET", path)
    assert status == 404, body
    assert headers["Content-Type"] == "application/json" and json.loads(body)["error"]


def test_post_to_the_page_is_405(page_server: Server) -> None:
    for path in ("/", "/static/app.js"):
        status, headers, body = page_server.request("POST", path, b"x", {"Content-Type": "text/plain"})
        assert status == 405 and headers["Allow"] == "GET" and json.loads(body)["error"]


def test_page_routes_in_metrics(page_server: Server) -> None:
    page_server.request("GET", "/")
    page_server.request("GET", "/static/app.css")
    page_server.request("GET", "/static/nope.css")
    text = page_server.request("GET", "/metrics")[2].decode()
    assert test_serve._metric(text, "edge_digits_http_requests_total", route="/", status="200") >= 1
    assert test_serve._metric(text, "edge_digits_http_requests_total", route="/static", status="200") >= 1
    assert test_serve._metric(text, "edge_digits_http_requests_total", route="/static", status="404") >= 1
    assert 'route="/static/' not in text


# ---- the page in a browser ------------------------------------------------------------------------------------

def _wait(browser: WebDriver, what: Callable[[WebDriver], Any], timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(what)


def _open(browser: WebDriver, srv: Server) -> None:
    browser.get(srv.url + "/")
    _wait(browser, lambda d: d.execute_script("return document.readyState === 'complete' && !!window.edgeDigits "
                                              "&& document.querySelectorAll('#pad-scores li').length === 10"))


def _text(browser: WebDriver, selector: str) -> list[str]:
    """textContent (what is copied), not the rendered text of the elements."""
    texts: list[str] = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", selector)
    return texts


def _line(a: tuple[float, float], b: tuple[float, float], n: int = 10) -> Stroke:
    return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(n + 1)]


ONE = [_line((0.5, 0.15), (0.5, 0.85))]
SEVEN = [_line((0.25, 0.2), (0.75, 0.2), 8) + _line((0.75, 0.2), (0.4, 0.85))[1:]]
SEVEN_TWO_STROKES = [_line((0.22, 0.22), (0.72, 0.2), 6), _line((0.74, 0.22), (0.45, 0.8), 8)]


def _draw(browser: WebDriver, strokes: list[Stroke], touch: bool = False) -> None:
    """Draw on #pad as a user does: pointer down, moves, up, for each stroke (a mouse, or a finger)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By

    pad = browser.find_element(By.ID, "pad")
    side = pad.size["width"]
    kind = interaction.POINTER_TOUCH if touch else interaction.POINTER_MOUSE
    device = PointerInput(kind, "finger" if touch else "mouse")  # type: ignore[no-untyped-call]
    chain = ActionChains(browser, duration=15, devices=[device])
    for stroke in strokes:
        for i, (x, y) in enumerate(stroke):
            chain.move_to_element_with_offset(pad, round((x - 0.5) * side), round((y - 0.5) * side))
            if i == 0:
                chain.click_and_hold()
        chain.release()
    chain.perform()


def _read_digit(browser: WebDriver) -> str:
    """The digit shown once the answer for the drawing as it is now has come."""
    _wait(browser, lambda d: d.execute_script(
        "const pad = document.getElementById('pad'), out = document.getElementById('pad-digit');"
        "return pad.dataset.version === out.dataset.version && out.textContent !== ''"))
    digit: str = browser.execute_script("return document.getElementById('pad-digit').textContent")
    return digit


def _canvas_max(browser: WebDriver, canvas: str) -> int:
    value: int = browser.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let m = 0; for (let i = 0; i < d.length; i += 4) m = Math.max(m, d[i]); return m;", canvas)
    return value


def _clear(browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "pad-clear").click()
    _wait(browser, lambda d: d.execute_script(
        "const pad = document.getElementById('pad'), out = document.getElementById('pad-digit');"
        "return pad.dataset.version === out.dataset.version && out.textContent === ''"))


@pytest.mark.slow
def test_page_reads_a_photo(browser: WebDriver, page_server: Server) -> None:
    from selenium.webdriver.common.by import By

    from edge_digits.vision import photos

    path, item = _photo()
    _open(browser, page_server)
    browser.find_element(By.ID, "photo").send_keys(str(path))
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#read-lines .line"), timeout=60)
    shown = _text(browser, "#read-lines .line")
    status, _, data = page_server.request("POST", "/v1/read", path.read_bytes(), {"Content-Type": "image/png"})
    assert status == 200, data
    answer = json.loads(data)
    assert shown == [line["text"] for line in answer["lines"]]
    score = photos.score_sheet(item["image"], item["lines"], shown)
    assert score.errors <= 0.1 * score.digits, score
    assert all(t.endswith("%") for t in _text(browser, "#read-lines .conf"))
    assert not browser.find_element(By.ID, "read-error").is_displayed()
    # the photo is drawn with a green box per digit
    boxes = browser.execute_script(
        "const c = document.getElementById('photo-view'); if (!c.width) return -1;"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let i = 0; i < d.length; i += 4) if (d[i] < 40 && d[i + 1] > 170 && d[i + 2] > 60 && d[i + 2] < 120) n++;"
        "return n;")
    digits = sum(len(line["digits"]) for line in answer["lines"])
    assert boxes > 20 * digits, (boxes, digits)
    _draw(browser, SEVEN)
    assert _read_digit(browser) == "7"
    save_screenshot(browser, "serve-page.png")


@pytest.mark.slow
def test_a_photo_dropped_on_the_page_is_read(browser: WebDriver, page_server: Server) -> None:
    """The drop zone, given a file the way a drag from the desktop gives it (a DataTransfer with a File)."""
    import base64

    from selenium.webdriver.common.by import By

    from edge_digits.vision import photos

    path, item = _photo("sheet5.png")
    _open(browser, page_server)
    over = browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], arguments[1], {type: "image/png"}));
        const drop = document.getElementById("drop");
        const send = (type) => drop.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true,
                                                                       cancelable: true}));
        send("dragenter");
        send("dragover");
        const over = drop.classList.contains("over");
        send("drop");
        return over && !drop.classList.contains("over");
    """, base64.b64encode(path.read_bytes()).decode(), path.name)
    assert over
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#read-lines .line"), timeout=60)
    score = photos.score_sheet(item["image"], item["lines"], _text(browser, "#read-lines .line"))
    assert score.errors <= 0.1 * score.digits, score


@pytest.mark.slow
def test_a_phone_photo_is_drawn_upright(browser: WebDriver, page_server: Server, tmp_path: Path) -> None:
    """A JPEG stored sideways with an EXIF orientation, as phones take them: the browser and the server both turn
    it upright, so the boxes drawn on it fit."""
    import io

    import cv2
    from selenium.webdriver.common.by import By

    image = pytest.importorskip("PIL.Image")
    path, item = _photo("sheet5.png")
    upright = cv2.imread(str(path))
    assert upright is not None
    stored = image.fromarray(cv2.cvtColor(cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE), cv2.COLOR_BGR2RGB))
    exif = image.Exif()
    exif[0x0112] = 6                    # Orientation: turn 90 degrees clockwise to show
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    jpeg = tmp_path / "phone.jpg"
    jpeg.write_bytes(buf.getvalue())
    status, _, data = page_server.request("POST", "/v1/read", jpeg.read_bytes(), {"Content-Type": "image/jpeg"})
    assert status == 200, data
    answer = json.loads(data)
    assert answer["rotation"] == item["rotate_cw"]   # the server read it upright, as the truth has it
    _open(browser, page_server)
    browser.find_element(By.ID, "photo").send_keys(str(jpeg))
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#read-lines .line"), timeout=60)
    assert _text(browser, "#read-lines .line") == [line["text"] for line in answer["lines"]]
    width, height = browser.execute_script("const c = document.getElementById('photo-view');"
                                           "return [c.width, c.height]")
    h, w = upright.shape[:2]
    assert abs(width / height - w / h) < 0.02, (width, height, w, h)
    right = max(d["frame_box"][0] + d["frame_box"][2] for line in answer["lines"] for d in line["digits"])
    assert right <= w


@pytest.mark.slow
def test_pad_reads_drawn_digits(browser: WebDriver, page_server: Server) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, page_server)
    _draw(browser, ONE, touch=True)
    assert _read_digit(browser) == "1"
    assert _canvas_max(browser, "pad-28") == 255
    values = [float(v) for v in _text(browser, "#pad-scores .value")]
    assert len(values) == 10 and max(values) == values[1] and math.isclose(sum(values), 1, abs_tol=0.05)
    assert _text(browser, "#pad-scores .best .label") == ["1"]
    _clear(browser)
    assert _canvas_max(browser, "pad") == 0 and _canvas_max(browser, "pad-28") == 0
    assert _text(browser, "#pad-scores .value") == [""] * 10
    for strokes in (SEVEN, SEVEN_TWO_STROKES):
        _draw(browser, strokes)
        assert _read_digit(browser) == "7"
        _clear(browser)
    assert not browser.find_element(By.ID, "pad-error").is_displayed()


@pytest.mark.slow
def test_reduction_is_mnist_like(browser: WebDriver, page_server: Server) -> None:
    """A drawing anywhere on the pad, of any size: its ink 20 px on the longer side, centred by mass in 28x28."""
    import numpy as np

    _open(browser, page_server)
    for scale, dx, dy in ((1.0, 0.0, 0.0), (0.25, -0.3, 0.3), (0.5, 0.2, -0.1)):
        strokes = [[(0.5 + (x - 0.5) * scale + dx, 0.5 + (y - 0.5) * scale + dy) for x, y in s] for s in SEVEN]
        img = np.array(browser.execute_script("return Array.from(window.edgeDigits.reduce(arguments[0]))", strokes),
                       np.uint8).reshape(28, 28)
        rows, cols = np.nonzero(img)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 == 20, (scale, np.ptp(rows), np.ptp(cols))
        ys, xs = np.mgrid[:28, :28] + 0.5
        mass = img.astype(float).sum()
        assert abs((img * xs).sum() / mass - 14) <= 0.5 and abs((img * ys).sum() / mass - 14) <= 0.5
        assert img.max() == 255 and 0 < (img > 0).mean() < 0.3
    assert browser.execute_script("return window.edgeDigits.reduce([])") is None


@pytest.mark.slow
def test_answers_are_shown_as_text(browser: WebDriver, page_server: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, page_server)
    evil = '<img src=x onerror="window.pwned = 1"><b>0427</b>'
    browser.execute_script("window.edgeDigits.renderLines([{text: arguments[0], confidence: '<i>x</i>'}])", evil)
    assert _text(browser, "#read-lines .line") == [evil]
    # a file name and an error message are text too
    named = tmp_path / '<img src=x onerror="window.pwned = 2">.txt'
    named.write_text("hello")
    browser.find_element(By.ID, "photo").send_keys(str(named))
    _wait(browser, lambda d: d.find_element(By.ID, "read-error").is_displayed())
    assert named.name in _text(browser, "#read-status")[0]
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main b, main i") == []
    assert browser.execute_script("return window.pwned === undefined")


@pytest.mark.slow
def test_server_errors_are_shown(browser: WebDriver, page_server: Server, tmp_path: Path) -> None:
    import cv2
    import numpy as np
    from selenium.webdriver.common.by import By

    path, _ = _photo()
    photo = cv2.imread(str(path))
    assert photo is not None
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    assert big.stat().st_size > BODY_LIMIT
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.full((20, SIDE_LIMIT + 100), 200, np.uint8))
    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all\n")
    text = tmp_path / "notes.txt"
    text.write_text("0427\n")
    _open(browser, page_server)
    for file, ctype, want in ((fake, "image/png", 400), (big, "image/png", 413), (wide, "image/png", 413),
                              (text, "text/plain", 415)):
        status, _, data = page_server.request("POST", "/v1/read", file.read_bytes(), {"Content-Type": ctype})
        assert status == want, data
        message = json.loads(data)["error"]
        browser.find_element(By.ID, "photo").send_keys(str(file))

        def shown(d: WebDriver, message: str = message) -> bool:
            return message in d.find_element(By.ID, "read-error").text

        _wait(browser, shown)
        assert browser.find_element(By.ID, "read-error").text == f"{message} (HTTP {want})"
        assert _text(browser, "#read-lines .line") == []
