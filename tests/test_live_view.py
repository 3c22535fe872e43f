"""The live web view of ``edge-digits run --http``: real frames of the demo clip read by the real reader, served
over loopback HTTP, and the real CLI followed by headless Chromium."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_digits.live import view as live_view
from edge_digits.live.view import LiveView, LiveViewError, parse_address, start_live_view
from edge_digits.vision.camera import DemoClipSource
from edge_digits.vision.observe import LiveFrame
from edge_digits.vision.runloop import RunOptions, run

REPO = Path(__file__).resolve().parents[1]
INFO: dict[str, object] = {"source": "demo:0", "model": "standard_int8.tflite", "backend": "litert",
                           "delegate": "XNNPACK", "power_meter": None}


class _Recorder:
    """An observer that keeps every frame (and forwards them to a view that stays open after the run)."""

    name = "recorder"

    def __init__(self, view: LiveView | None = None) -> None:
        self.frames: list[LiveFrame] = []
        self.view = view

    def wants_display(self) -> bool:
        return self.view.wants_display() if self.view is not None else False

    def frame(self, live: LiveFrame) -> None:
        self.frames.append(live)
        if self.view is not None:
            self.view.frame(live)

    def close(self) -> dict[str, object]:
        return {}


@pytest.fixture(scope="module")
def frames(classifier) -> list[LiveFrame]:
    """Frames 0-19 of the demo clip as the run loop hands them to observers (the first sheet and the second)."""
    recorder = _Recorder()
    run(DemoClipSource(frames=20), classifier, RunOptions(), observers=[recorder])
    assert any(f.stable for f in recorder.frames)
    return recorder.frames


@pytest.fixture
def view() -> Iterator[LiveView]:
    v = start_live_view("127.0.0.1:0", max_fps=30, info=INFO)
    try:
        yield v
    finally:
        v.close()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


def request(view: LiveView, path: str, method: str = "GET", body: bytes | None = None) -> Answer:
    conn = http.client.HTTPConnection(view.host, view.port, timeout=10)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return Answer(r.status, r.headers, r.read())
    finally:
        conn.close()


@contextmanager
def feeding(view: LiveView, frames: list[LiveFrame], fps: float = 30.0) -> Iterator[list[float]]:
    """Feed ``frames`` round and round to the view from a thread, as the run loop would; yields how long each
    ``frame()`` call took."""
    stop = threading.Event()
    took: list[float] = []

    def feed() -> None:
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            view.frame(frames[i % len(frames)])
            took.append(time.perf_counter() - t)
            i += 1
            stop.wait(1.0 / fps)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield took
    finally:
        stop.set()
        thread.join(5)


def open_stream(view: LiveView, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(view.host, view.port, timeout=10)
    conn.request("GET", path)
    return conn.getresponse()


def mjpeg_parts(response: http.client.HTTPResponse, count: int) -> list[bytes]:
    """The first ``count`` JPEGs of a multipart/x-mixed-replace answer, read by their Content-Length."""
    boundary = re.search(r"boundary=(\S+)", response.headers["Content-Type"])
    assert boundary is not None
    parts = []
    while len(parts) < count:
        line = response.readline()
        if not line:
            break
        if line.strip() != b"--" + boundary.group(1).encode():
            continue
        headers = {}
        while (h := response.readline().strip()):
            name, _, value = h.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(response.read(int(headers["content-length"])))
    return parts


def sse_events(response: http.client.HTTPResponse, count: int, kind: str = "reading") -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    name, data = None, []
    while len(events) < count:
        line = response.readline()
        assert line, "the event stream ended"
        line = line.rstrip(b"\n").decode()
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line:
            if name == kind and data:
                events.append(json.loads("\n".join(data)))
            name, data = None, []
    return events


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


# the reading, the frame, the streams


def test_reading_is_the_runs_last_settled_reading(classifier) -> None:
    view = start_live_view("127.0.0.1:0", info=INFO)
    try:
        records: list[dict[str, object]] = []
        run(DemoClipSource(frames=12), classifier, RunOptions(), on_frame=records.append,
            observers=[_Recorder(view)])
        reading = request(view, "/reading").json()
        last = records[-1]
        assert last["stable_lines"], "the demo clip's first sheet settles within 12 frames"
        assert reading["lines"] == last["stable_lines"]
        assert reading["frame_lines"] == last["lines"]
        assert reading["frame"] == last["frame"] == 11
        assert reading["source"] == "demo:0"
        assert reading["timings_ms"] == last["timings_ms"]
        assert [d["digit"] for d in reading["digits"]] == [d["class"] for d in last["digits"]]  # type: ignore
        assert all(0 <= d["confidence"] <= 1 and len(d["frame_box"]) == 4 for d in reading["digits"])  # type: ignore
        assert isinstance(reading["fps"], float) and reading["fps"] > 0
        assert reading["power_w"] is None and reading["power_meter"] is None
        assert (reading["model"], reading["backend"], reading["delegate"]) == ("standard_int8.tflite", "litert",
                                                                               "XNNPACK")
        assert view.figures().video_frames_encoded == 0, "nobody watched: nothing is encoded"
    finally:
        figures = view.close()
    assert figures["viewers"] == 0 and figures["clients_dropped"] == 0


def test_frame_jpg_is_503_before_the_first_frame_then_the_annotated_frame(view: LiveView,
                                                                          frames: list[LiveFrame]) -> None:
    before = request(view, "/frame.jpg")
    assert before.status == 503 and "no frame" in str(before.json()["error"])
    assert request(view, "/reading").status == 503
    view.frame(frames[5])
    answer = request(view, "/frame.jpg")
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/jpeg"
    image = decode(answer.body)
    assert image.shape[:2] == frames[5].frame.shape[:2]
    ok, drawn = cv2.imencode(".jpg", frames[5].annotate(), [cv2.IMWRITE_JPEG_QUALITY, live_view.JPEG_QUALITY])
    assert ok and answer.body == drawn.tobytes(), "the annotated view"
    assert request(view, "/frame.jpg").body == answer.body, "the same frame is not encoded again"
    assert view.figures().video_frames_encoded == 1


def test_stream_mjpg_sends_the_newest_frames(view: LiveView, frames: list[LiveFrame]) -> None:
    with feeding(view, frames) as took:
        response = open_stream(view, "/stream.mjpg")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        parts = mjpeg_parts(response, 3)
        response.close()
    assert len(parts) == 3 and len(set(parts)) == 3
    for jpeg in parts:
        assert decode(jpeg).shape[:2] == frames[0].frame.shape[:2]
    assert max(took) < 0.1


def test_video_is_encoded_only_while_watched_and_at_most_max_fps(frames: list[LiveFrame]) -> None:
    view = start_live_view("127.0.0.1:0", max_fps=4)
    try:
        with feeding(view, frames, fps=40):
            time.sleep(0.5)
            assert view.figures().video_frames_encoded == 0
            response = open_stream(view, "/stream.mjpg")
            t0 = time.monotonic()
            parts = mjpeg_parts(response, 5)
            seconds = time.monotonic() - t0
            response.close()
        assert len(parts) == 5
        assert seconds >= 0.9, "5 frames at 4 a second take at least a second"
        assert view.figures().video_frames_encoded <= 4 * seconds + 2
    finally:
        view.close()


def test_events_send_readings_at_a_bounded_rate(view: LiveView, frames: list[LiveFrame]) -> None:
    view.frame(frames[10])
    response = open_stream(view, "/events")
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    first = sse_events(response, 1)[0]
    assert first["lines"] == frames[10].stable and first["frame"] == frames[10].record["frame"]
    with feeding(view, frames, fps=60):
        t0 = time.monotonic()
        later = sse_events(response, 4)
        seconds = time.monotonic() - t0
    response.close()
    assert all(set(e) >= {"lines", "frame_lines", "digits", "fps", "timings_ms", "model"} for e in later)
    assert seconds >= 3 / live_view.EVENTS_PER_S * 0.9, "at most EVENTS_PER_S events a second"


def test_events_keep_alive_comment(monkeypatch: pytest.MonkeyPatch, view: LiveView) -> None:
    monkeypatch.setattr(live_view, "KEEPALIVE_S", 0.2)
    response = open_stream(view, "/events")
    seen = [response.readline() for _ in range(6)]
    response.close()
    assert b": keep-alive\n" in seen


# the page and the errors


def test_page_and_its_files(view: LiveView) -> None:
    page = request(view, "/")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.body.decode()
    for needle in ('id="video" src="/stream.mjpg"', 'id="lines"', 'id="digits"', 'id="fps"', 'id="latency"',
                   'id="power"', 'id="model"', 'id="backend"', 'id="delegate"', "/static/live.js",
                   "/static/live.css"):
        assert needle in html
    script = request(view, "/static/live.js")
    assert script.status == 200 and script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert b"EventSource" in script.body and b"innerHTML" not in script.body
    style = request(view, "/static/live.css")
    assert style.status == 200 and style.headers["Content-Type"] == "text/css; charset=utf-8"
    assert b"user-select: all" in style.body
    head = request(view, "/", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["Content-Length"] == str(len(page.body))


@pytest.mark.parametrize("path", ["/static/view.py", "/static/../view.py", "/static/%2e%2e/view.py",
                                  "/static/../../../pyproject.toml", "/static/", "/static/nope.js",
                                  "/static//etc/passwd", "/nope", "/reading/x", "/stream.mjpg.bak"])
def test_unknown_paths_are_404_json(view: LiveView, path: str) -> None:
    answer = request(view, path)
    assert answer.status == 404 and answer.headers["Content-Type"] == "application/json"
    assert "error" in answer.json()


@pytest.mark.parametrize(("host", "status"), [("localhost", 200), ("127.0.0.1", 200), ("evil.example", 421),
                                            ("192.168.1.20", 421)])
def test_on_loopback_only_requests_for_localhost_are_answered(view: LiveView, frames: list[LiveFrame],
                                                              host: str, status: int) -> None:
    """A page elsewhere that rebinds its own name to 127.0.0.1 sends its own Host: it gets 421, not the
    readings."""
    view.frame(frames[0])
    conn = http.client.HTTPConnection(view.host, view.port, timeout=10)
    try:
        conn.request("GET", "/reading", headers={"Host": f"{host}:{view.port}"})
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    assert r.status == status, body
    if status == 421:
        assert b"--http 0.0.0.0" in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_are_405_with_allow(view: LiveView, method: str) -> None:
    answer = request(view, "/reading", method=method, body=b"{}" if method in ("POST", "PUT") else None)
    assert answer.status == 405 and answer.headers["Allow"] == "GET, HEAD"
    assert method in str(answer.json()["error"])


def test_streams_past_max_clients_are_503(frames: list[LiveFrame]) -> None:
    view = start_live_view("127.0.0.1:0", max_clients=2)
    try:
        view.frame(frames[3])
        held = [open_stream(view, "/events"), open_stream(view, "/stream.mjpg")]
        assert [r.status for r in held] == [200, 200]
        refused = request(view, "/events")
        assert refused.status == 503 and "too many viewers" in str(refused.json()["error"])
        assert request(view, "/reading").status == 200, "short requests are not streams"
        for r in held:
            r.close()
        deadline = time.monotonic() + 5
        while view.streams() and time.monotonic() < deadline:
            view.frame(frames[4])   # a write to a closed socket ends its stream
            time.sleep(0.05)
        assert request(view, "/stream.mjpg", method="HEAD").status == 200
    finally:
        figures = view.close()
    assert figures["clients_refused"] == 1 and figures["viewers"] == 3


# addresses


@pytest.mark.parametrize(("address", "expected"), [("8080", ("127.0.0.1", 8080)), ("0", ("127.0.0.1", 0)),
                                                   ("0.0.0.0:8080", ("0.0.0.0", 8080)), ("[::1]:0", ("::1", 0)),
                                                   ("localhost:65535", ("localhost", 65535)),
                                                   (" 127.0.0.1:80 ", ("127.0.0.1", 80))])
def test_addresses(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(("address", "says"), [
    ("", "no address"), ("http://127.0.0.1:8080/", "no scheme or path"), ("127.0.0.1:", "must be a number"),
    ("127.0.0.1:99999", "from 0 to 65535"), ("eighty", "must be a number"), (":8080", "HOST before ':' is empty"),
    ("::1:8080", "in brackets"), ("[::1]8080", "in brackets"), ("[::1]", "in brackets"), ("-1", "must be a number"),
    ("host.invalid:8080", "cannot resolve"), ("192.0.2.1:0", "not an address of this machine"),
])
def test_malformed_addresses_say_what_is_wrong(address: str, says: str) -> None:
    with pytest.raises(LiveViewError, match=re.escape(says)) as caught:
        start_live_view(address)
    assert "--http" in str(caught.value)


def test_busy_port_says_so() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LiveViewError, match=f"port {port} on 127.0.0.1 is in use.*choose another port"):
            start_live_view(f"127.0.0.1:{port}")
        with pytest.raises(LiveViewError, match="in use"):
            start_live_view(str(port))


def test_the_port_is_free_again_at_once_after_close(frames: list[LiveFrame]) -> None:
    """A run restarted on the same port (systemd restart) binds at once, though the last one's connections
    are in TIME_WAIT."""
    view = start_live_view("127.0.0.1:0")
    view.frame(frames[0])
    assert request(view, "/reading").status == 200   # the server closes first: its side waits in TIME_WAIT
    port = view.port
    view.close()
    again = start_live_view(f"127.0.0.1:{port}")
    try:
        assert again.port == port and request(again, "/reading").status == 503
    finally:
        again.close()


def test_every_interface_and_ipv6(frames: list[LiveFrame]) -> None:
    view = start_live_view("0.0.0.0:0")
    try:
        assert view.host == "0.0.0.0" and view.url == f"http://0.0.0.0:{view.port}/"
        conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=5)
        conn.request("GET", "/reading")
        assert conn.getresponse().status == 503
        conn.close()
    finally:
        view.close()
    try:
        v6 = start_live_view("[::1]:0")
    except LiveViewError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert v6.url == f"http://[::1]:{v6.port}/"
        v6.frame(frames[2])
        assert request(v6, "/reading").json()["frame"] == 2
    finally:
        v6.close()


# stalled clients and closing


def test_a_stalled_client_is_dropped_and_does_not_block(monkeypatch: pytest.MonkeyPatch,
                                                        frames: list[LiveFrame]) -> None:
    monkeypatch.setattr(live_view, "SEND_TIMEOUT_S", 1.0)
    view = start_live_view("127.0.0.1:0", max_fps=30)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # fills after a frame or two
    stalled.connect((view.host, view.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")            # and never reads
    try:
        with feeding(view, frames, fps=30) as took:
            healthy = open_stream(view, "/stream.mjpg")
            deadline = time.monotonic() + 15
            while view.figures().clients_dropped == 0 and time.monotonic() < deadline:
                assert len(mjpeg_parts(healthy, 1)) == 1, "the other viewer keeps getting frames"
            assert view.figures().clients_dropped == 1
            assert len(mjpeg_parts(healthy, 3)) == 3
            healthy.close()
        assert max(took) < 0.1, "frame() returns at once whatever the viewers do"
        t0 = time.monotonic()
        figures = view.close()
        assert time.monotonic() - t0 < 3
    finally:
        stalled.close()
        view.close()
    assert figures["clients_dropped"] == 1 and figures["viewers"] == 2
    assert isinstance(figures["video_frames_encoded"], int) and figures["video_frames_encoded"] >= 4


def test_close_ends_streams_threads_and_the_port(frames: list[LiveFrame]) -> None:
    view = start_live_view("127.0.0.1:0")
    view.frame(frames[1])
    streams = [open_stream(view, "/events"), open_stream(view, "/stream.mjpg")]
    mjpeg_parts(streams[1], 1)
    t0 = time.monotonic()
    figures = view.close()
    assert time.monotonic() - t0 < 2
    assert view.streams() == 0 and view.close() == figures
    for response in streams:
        response.read()   # ends: the server closed the stream
        response.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("live-view")]
    with pytest.raises(OSError), socket.create_connection((view.host, view.port), timeout=2):
        pass
    assert figures["viewers"] == 2 and figures["video_frames_encoded"] == 1


# the real CLI, followed by a real browser


RUN_ARGS = ["run", "--max-fps", "15", "--demo-frames", "150"]
PRINTED = re.compile(r"^frame (\d+): (.*)  \[(\d+) digits, [\d.]+ ms\]$")


def _strings(shown: str) -> list[str]:
    return [] if shown == "(no digits)" else shown.split(" ")


def _masked(text: str) -> list[str]:
    """Printed lines without what changes from run to run (times, FPS)."""
    return [re.sub(r"[\d.]+ ms\]$", "ms]", re.sub(r"[\d.]+ FPS", "FPS", line)) for line in text.splitlines()]


@pytest.mark.slow
def test_cli_live_view_in_a_browser(browser, tmp_path: Path) -> None:
    from conftest import save_screenshot
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cmd = [sys.executable, "-m", "edge_digits"]
    logs = tmp_path / "plain.jsonl", tmp_path / "served.jsonl"
    plain = subprocess.Popen(cmd + RUN_ARGS + ["--log", str(logs[0])], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    served = subprocess.Popen(cmd + RUN_ARGS + ["--log", str(logs[1]), "--http", "127.0.0.1:0"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    url: list[str] = []
    found = threading.Event()

    def follow_stderr() -> None:
        assert served.stderr is not None
        for line in served.stderr:
            stderr.append(line)
            m = re.match(r"live view: (http://\S+)$", line.strip())
            if m and not url:
                url.append(m.group(1))
                found.set()
        found.set()

    reader = threading.Thread(target=follow_stderr, daemon=True)
    reader.start()
    try:
        assert found.wait(60) and url, f"no live view URL on stderr: {''.join(stderr)}"
        browser.get(url[0])
        wait = WebDriverWait(browser, 20, poll_frequency=0.1)
        texts = "return Array.from(document.querySelectorAll(arguments[0]), n => n.textContent)"
        wait.until(lambda d: d.execute_script(texts, "#lines .line"))
        shown = browser.execute_script(texts, "#lines .line")   # read at once: the page replaces them
        save_screenshot(browser, "live-view.png")
        video = browser.find_element(By.ID, "video")
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", video) > 0)
        first = video.screenshot_as_png
        time.sleep(1.0)
        second = video.screenshot_as_png
        assert first != second, "the video moves"
        assert browser.find_element(By.ID, "fps").text not in ("", "–")
        assert browser.find_element(By.ID, "model").text == "standard_int8.tflite"
        assert browser.find_element(By.ID, "power").text == "no meter"
        digits = browser.execute_script(texts, "#digits li")
        assert digits and all(re.fullmatch(r"\d\d+%", d) for d in digits), digits
        served.wait(timeout=120)   # its stdout (150 short lines) fits the pipe; stderr is read by the thread
        assert served.stdout is not None
        out = served.stdout.read()
        plain_out, plain_err = plain.communicate(timeout=120)
    finally:
        for p in (plain, served):
            if p.poll() is None:
                p.kill()
                p.wait()
    reader.join(10)
    assert served.returncode == 0 and plain.returncode == 0, "".join(stderr)
    printed = [PRINTED.match(line) for line in out.splitlines()]
    assert all(printed) and len(printed) == 150
    assert shown in [_strings(m.group(2)) for m in printed if m], "the page shows a reading the run printed"
    assert _masked(out) == _masked(plain_out), "serving does not change what run prints"
    rows = [[{k: v for k, v in json.loads(line).items() if k != "time" and not k.endswith("_ms")}
             for line in log.read_text().splitlines()] for log in logs]
    assert len(rows[1]) == 150 and rows[0] == rows[1], "nor what it logs"
    ours = [line for line in "".join(stderr).splitlines() if not line.startswith("live view: ")]
    assert any(line.startswith("log: ") for line in ours)
    assert _masked("\n".join(ours).replace(str(logs[1]), str(logs[0]))) == _masked(plain_err)
    summary = [line for line in stderr if line.startswith("live view: viewers")]
    assert summary and "clients_dropped 0" in summary[0], stderr
    encoded = re.search(r"video_frames_encoded (\d+)", summary[0])
    assert encoded and int(encoded.group(1)) > 2


def test_the_camera_display_stream_is_asked_for_only_while_someone_watches(classifier) -> None:
    """The run loop asks the source for its display stream (picamera2's full-size ``main``) on the frames
    where an observer wants it, and not on the others."""
    asked: list[bool] = []

    class Source(DemoClipSource):
        def read(self) -> np.ndarray | None:
            asked.append(self.want_display)
            return super().read()

    class Watcher(_Recorder):
        def wants_display(self) -> bool:
            return len(self.frames) in (2, 3)

    run(Source(frames=6), classifier, RunOptions(), observers=[Watcher()])
    assert asked[:6] == [False, False, True, True, False, False]
