"""``edge-digits serve``: the real server in a subprocess on a loopback port, called over HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_digits.models import ModelNotFound, bundled_model
from edge_digits.serve import OPENAPI_PATH

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path() -> Path:
    """The bundled standard model, else the development model in .devmodels/ (until the bundle lands)."""
    try:
        return bundled_model("standard")
    except ModelNotFound:
        dev = REPO / ".devmodels" / "dev_int8.tflite"
        if not dev.is_file():
            pytest.skip("no bundled standard model and no .devmodels/dev_int8.tflite")
        return dev


class Server:
    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_digits", "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        line = self.proc.stdout.readline()   # "serving MODEL on http://127.0.0.1:PORT (...)"
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def raw(self, data: bytes, shut: bool = False, wait: float = 10.0) -> bytes:
        """Send raw bytes, return everything the server answers until it closes or goes quiet."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait) as s:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            out = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if b"\r\n\r\n" in out:
                        head, _, rest = out.partition(b"\r\n\r\n")
                        m = re.search(rb"Content-Length: (\d+)", head)
                        if m and len(rest) >= int(m.group(1)):
                            break
            except (TimeoutError, ConnectionResetError):
                pass
            return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[Server]:
    srv = Server(["--model", str(model_path), "--batch-wait-ms", "20", "--request-timeout", "1"])
    try:
        yield srv
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, srv.proc.stderr.read()[-3000:]


@pytest.fixture(scope="module")
def test_images(mnist) -> np.ndarray:
    return mnist[2][:48]


def classify_body(images: np.ndarray) -> bytes:
    encoded = [base64.b64encode(np.ascontiguousarray(i).tobytes()).decode() for i in images]
    return json.dumps({"images": encoded}).encode()


def post_json(server: Server, body: bytes) -> tuple[int, dict]:
    status, _, data = server.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
    return status, json.loads(data)


def test_classify_matches_classifier(server: Server, model_path: Path, test_images: np.ndarray) -> None:
    from edge_digits.runtime import Classifier

    expected = Classifier(model_path).predict(test_images)
    got = []
    for i in range(8):                                   # one image per request
        status, doc = post_json(server, classify_body(test_images[i:i + 1]))
        assert status == 200, doc
        got.extend(doc["predictions"])
    status, doc = post_json(server, classify_body(test_images[8:]))   # 40 in one request
    assert status == 200, doc
    got.extend(doc["predictions"])
    assert [p["digit"] for p in got] == expected.argmax(axis=1).tolist()
    np.testing.assert_array_equal(np.array([p["scores"] for p in got], np.float32), expected)


def test_classify_png(server: Server, model_path: Path, test_images: np.ndarray) -> None:
    import cv2

    from edge_digits.runtime import Classifier

    clf = Classifier(model_path)
    img = test_images[0]
    bigger = [cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST) for side in (84, 420)]
    for picture, as_model_sees in ((img, img), (bigger[0], None), (bigger[1], None)):
        if as_model_sees is None:
            as_model_sees = cv2.resize(picture, (28, 28), interpolation=cv2.INTER_AREA)
        ok, png = cv2.imencode(".png", picture)
        status, _, data = server.request("POST", "/v1/classify", png.tobytes(), {"Content-Type": "image/png"})
        assert status == 200, data
        pred = json.loads(data)["predictions"]
        assert len(pred) == 1
        np.testing.assert_array_equal(np.float32(pred[0]["scores"]), clf.predict(as_model_sees[None])[0])


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_concurrent_requests_are_batched(server: Server, test_images: np.ndarray) -> None:
    before = server.request("GET", "/metrics")[2].decode()
    results: list[int] = []
    barrier = threading.Barrier(16)

    def one(i: int) -> None:
        body = classify_body(test_images[i:i + 1])
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.connect()
        barrier.wait()
        conn.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
        results.append(conn.getresponse().status)
        conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 16
    after = server.request("GET", "/metrics")[2].decode()
    calls = _metric(after, "edge_digits_batch_size_count") - _metric(before, "edge_digits_batch_size_count")
    singles = (_metric(after, "edge_digits_batch_requests_bucket", le="1")
               - _metric(before, "edge_digits_batch_requests_bucket", le="1"))
    assert calls < 16, "16 concurrent requests took 16 interpreter calls: nothing was batched"
    assert calls - singles >= 1, "no interpreter call served more than one request"


def _png(img: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", img)[1].tobytes()


def _corrupt(png: bytes) -> bytes:
    """Scramble the compressed pixels but keep the PNG's chunk layout (and its IEND)."""
    start = png.index(b"IDAT") + 4
    return png[:start] + bytes(b ^ 0x5A for b in png[start:start + 200]) + png[start + 200:]


def _bad_requests() -> list[tuple[str, str, bytes, dict, int]]:
    one = base64.b64encode(bytes(784)).decode()
    png = _png(np.zeros((28, 28), np.uint8))
    ihdr_huge = png[:16] + (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big") + png[24:]
    j = {"Content-Type": "application/json"}
    return [
        ("malformed JSON", "/v1/classify", b'{"images": [', j, 400),
        ("not UTF-8", "/v1/classify", b"\xff\xfe\xfa{", j, 400),
        ("deep nesting", "/v1/classify", b"[" * 200000 + b"]" * 200000, j, 400),
        ("JSON list", "/v1/classify", b"[1, 2]", j, 400),
        ("no images field", "/v1/classify", b"{}", j, 400),
        ("unknown field", "/v1/classify", json.dumps({"images": [one], "x": 1}).encode(), j, 400),
        ("images not a list", "/v1/classify", b'{"images": "abc"}', j, 400),
        ("empty list", "/v1/classify", b'{"images": []}', j, 400),
        ("not a string", "/v1/classify", b'{"images": [7]}', j, 400),
        ("bad base64", "/v1/classify", b'{"images": ["!!!!"]}', j, 400),
        ("non-ASCII base64", "/v1/classify", '{"images": ["\u00e9\u00e9\u00e9\u00e9"]}'.encode(), j, 400),
        ("wrong shape", "/v1/classify", json.dumps({"images": [base64.b64encode(bytes(783)).decode()]}).encode(), j,
         400),
        ("too many images", "/v1/classify", json.dumps({"images": [one] * 65}).encode(), j, 400),
        ("empty body", "/v1/classify", b"", j, 400),
        ("text/plain", "/v1/classify", b"hello", {"Content-Type": "text/plain"}, 415),
        ("JPEG to classify", "/v1/classify", b"\xff\xd8\xff", {"Content-Type": "image/jpeg"}, 415),
        ("not a PNG", "/v1/classify", b"GIF89a....", {"Content-Type": "image/png"}, 400),
        ("truncated PNG", "/v1/classify", png[:len(png) // 2], {"Content-Type": "image/png"}, 400),
        ("PNG header only", "/v1/classify", png[:20], {"Content-Type": "image/png"}, 400),
        ("truncated big PNG", "/v1/classify",
         _png(np.random.default_rng(0).integers(0, 256, (400, 400), dtype=np.uint8))[:50000],
         {"Content-Type": "image/png"}, 400),
        ("corrupt big PNG", "/v1/classify", _corrupt(_png(np.arange(300 * 300, dtype=np.uint32).reshape(300, 300)
                                                          .astype(np.uint8))), {"Content-Type": "image/png"}, 400),
        ("huge PNG dimensions", "/v1/classify", ihdr_huge, {"Content-Type": "image/png"}, 413),
        ("read text/plain", "/v1/read", b"hello", {"Content-Type": "text/plain"}, 415),
        ("unknown path", "/v1/nothing", b"", {}, 404),
    ]


@pytest.mark.parametrize("name,path,body,headers,status", _bad_requests(), ids=[c[0] for c in _bad_requests()])
def test_bad_request_gets_4xx_with_message(server: Server, name: str, path: str, body: bytes, headers: dict,
                                           status: int) -> None:
    got, resp_headers, data = server.request("POST", path, body, headers)
    assert got == status, data
    assert resp_headers["Content-Type"] == "application/json"
    assert json.loads(data)["error"]
    assert server.request("GET", "/healthz")[0] == 200


def test_wrong_method(server: Server) -> None:
    status, headers, data = server.request("GET", "/v1/classify")
    assert status == 405 and headers["Allow"] == "POST" and json.loads(data)["error"]


def _status(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:100]
    return int(raw[9:12])


@pytest.mark.parametrize("name,data,shut,status", [
    ("garbage request line", b"HELLO\r\n\r\n", False, 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", False, 400),
    ("bad header line", b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", False, 400),
    ("head too large", b"GET /healthz HTTP/1.1\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n", False, 431),
    ("too many headers", b"GET /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 150 + b"\r\n", False, 431),
    ("bad Content-Length", b"POST /v1/classify HTTP/1.1\r\nContent-Length: abc\r\n\r\n", False, 400),
    ("conflicting Content-Length", b"POST /v1/classify HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n{}",
     False, 400),
    ("chunked", b"POST /v1/classify HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", False, 411),
    ("oversized body", b"POST /v1/classify HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 100000, False, 413),
    ("truncated upload", b"POST /v1/classify HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{\"images\"", True, 400),
    ("stalled request", b"POST /v1/classify HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{\"images\"", False, 408),
])
def test_broken_http_gets_4xx(server: Server, name: str, data: bytes, shut: bool, status: int) -> None:
    raw = server.raw(data, shut=shut)
    assert _status(raw) == status, raw[:300]
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"]
    assert server.request("GET", "/healthz")[0] == 200


def test_trickled_request_times_out(server: Server) -> None:
    """A client that keeps sending a byte now and then still has to finish its request in time."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6:
            s.sendall(b"x")
            if select.select([s], [], [], 0.25)[0]:
                break
        waited = time.monotonic() - t0
        raw = s.recv(65536)
    assert _status(raw) == 408, raw[:200]
    assert waited < 4     # --request-timeout 1, checked about once a second


def test_serving_never_imports_tensorflow(model_path: Path) -> None:
    code = ("import sys; from pathlib import Path; import edge_digits.cli; from edge_digits import serve; "
            f"cfg = serve.ServeConfig(model=Path({str(model_path)!r})); "
            "e = serve.InterpreterPool(cfg.model); app = serve.App(e, cfg); "
            "assert app.manifest['ops'], app.manifest; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
            "assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, timeout=120)


def test_mutated_raw_requests_never_get_5xx(server: Server) -> None:
    """Valid requests with random bytes changed, cut out or added: always a 4xx or 2xx, never silence or 5xx."""
    import random

    rng = random.Random(10)
    png = _png(np.zeros((28, 28), np.uint8))
    seeds = [b"POST /v1/classify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
             b'{"images": ["AAAA"]}',
             b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
             b"POST /v1/classify HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: "
             + str(len(png)).encode() + b"\r\n\r\n" + png]
    statuses = []
    for _ in range(150):
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            pos, op = rng.randrange(len(b)), rng.random()
            if op < 0.4:
                b[pos] = rng.randrange(256)
            elif op < 0.7:
                del b[pos:pos + rng.randint(1, 5)]
            else:
                b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5)))
        raw = server.raw(bytes(b), shut=True)
        statuses.append(int(raw[9:12]) if raw.startswith(b"HTTP/1.1 ") else raw[:30])
    assert all(isinstance(s, int) and s < 500 for s in statuses), statuses
    assert server.request("GET", "/healthz")[0] == 200


def test_oversized_body_with_client_sending_it_all(server: Server) -> None:
    status, _, data = server.request("POST", "/v1/classify", b"x" * (9 * 1024 * 1024),
                                     {"Content-Type": "application/json"})
    assert status == 413 and b"limit" in data
    assert server.request("GET", "/healthz")[0] == 200


def test_keep_alive_and_pipelining(server: Server, test_images: np.ndarray) -> None:
    body = classify_body(test_images[:1])
    req = (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
           + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(req + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + req)
        f = s.makefile("rb")
        statuses = []
        for _ in range(3):
            status = int(f.readline().split()[1])
            length = 0
            while (line := f.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            statuses.append((status, f.read(length)[:20]))
    assert [s for s, _ in statuses] == [200, 200, 200]
    assert statuses[0][1].startswith(b'{"predictions"') and statuses[1][1].startswith(b'{"status"')


def test_read_a_real_photo_as_the_camera_path_does(server: Server, model_path: Path) -> None:
    import cv2

    from edge_digits.runtime import Classifier
    from edge_digits.vision import photos
    from edge_digits.vision.photo_answer import page_answer
    from edge_digits.vision.reject import load_rejector

    folder = photos.default_photos_dir()
    item = next((i for i in photos.load_truth(folder) if i["image"] == "sheet7.png"), None) if folder.is_dir() else None
    if item is None:
        pytest.skip("real photos not found")
    body = (folder / "sheet7.png").read_bytes()
    status, _, data = server.request("POST", "/v1/read", body, {"Content-Type": "image/png"})
    assert status == 200, data
    answer = json.loads(data)
    texts = [line["text"] for line in answer["lines"]]
    assert [len(t) for t in texts] == [len(t) for t in item["lines"]]
    wrong = sum(a != b for got, truth in zip(texts, item["lines"]) for a, b in zip(got, truth))
    assert wrong <= 1, (texts, item["lines"])   # the bundled model misreads at most one of its 23 digits
    assert answer["rotation"] == item["rotate_cw"] and 0 < answer["scale"] <= 1
    frame = cv2.imread(str(folder / "sheet7.png"))
    assert answer == json.loads(json.dumps(page_answer(frame, Classifier(model_path), rejector=load_rejector())))
    assert answer["page"] is None   # a cropped photo is all page: read whole, frame boxes in its pixels
    assert all(d["frame_box"][0] + d["frame_box"][2] <= frame.shape[1] and
               d["frame_box"][1] + d["frame_box"][3] <= frame.shape[0] for line in answer["lines"]
               for d in line["digits"])
    for line in answer["lines"]:
        assert "".join(str(d["digit"]) for d in line["digits"]) == line["text"]
        assert line["confidence"] == min(d["confidence"] for d in line["digits"])
        x, y, w, h = line["box"]
        for d in line["digits"]:
            dx, dy, dw, dh = d["box"]
            assert x <= dx and y <= dy and dx + dw <= x + w and dy + dh <= y + h


def test_read_a_blank_page_and_a_sliver(server: Server) -> None:
    status, _, data = server.request("POST", "/v1/read", _png(np.full((200, 300), 235, np.uint8)),
                                     {"Content-Type": "image/png"})
    assert status == 200 and json.loads(data)["lines"] == []
    status, _, data = server.request("POST", "/v1/read", _png(np.zeros((2, 300), np.uint8)),
                                     {"Content-Type": "image/png"})
    assert status == 422 and "too small" in json.loads(data)["error"]


def test_openapi_served_as_in_repo(server: Server) -> None:
    status, headers, data = server.request("GET", "/openapi.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert data == OPENAPI_PATH.read_bytes()
    assert set(json.loads(data)["paths"]) == {"/v1/classify", "/v1/read", "/healthz", "/v1/model", "/metrics",
                                              "/openapi.json", "/", "/static/{name}"}


def test_model_manifest(server: Server, model_path: Path) -> None:
    import hashlib

    status, _, data = server.request("GET", "/v1/model")
    doc = json.loads(data)
    assert status == 200
    assert doc["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert doc["bytes"] == model_path.stat().st_size and doc["ops"] and doc["inputs"][0]["dtype"] == "int8"


def test_metrics_text_format(server: Server) -> None:
    server.request("GET", "/healthz")
    status, headers, data = server.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = data.decode()
    helped, typed, families = set(), {}, set()
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                        r'(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram")
            typed[name] = kind
        else:
            m = sample.match(line)
            assert m, line
            name = m.group(1)
            base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
            assert base in typed and base in helped, line
            families.add(base)
    assert {"edge_digits_http_requests_total", "edge_digits_http_request_duration_seconds", "edge_digits_batch_size",
            "edge_digits_model_info"} <= families
    assert _metric(text, "edge_digits_http_requests_total", route="/healthz", status="200") >= 1


def test_two_workers(model_path: Path, test_images: np.ndarray) -> None:
    srv = Server(["--model", str(model_path), "--workers", "2"])
    try:
        for _ in range(6):
            status, doc = post_json(srv, classify_body(test_images[:2]))
            assert status == 200 and len(doc["predictions"]) == 2
        time.sleep(1.5)     # workers publish their metrics once a second
        text = srv.request("GET", "/metrics")[2].decode()
        assert _metric(text, "edge_digits_model_info", worker="0") == 1
        assert _metric(text, "edge_digits_model_info", worker="1") == 1
        assert _metric(text, "edge_digits_http_requests_total", route="/v1/classify", status="200") == 6
        assert _metric(text, "edge_digits_images_classified_total") >= 12
    finally:
        srv.stop()
    assert srv.proc.returncode == 0, srv.proc.stderr.read()[-3000:]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cli_errors(tmp_path: Path, workers: str) -> None:
    from click.testing import CliRunner

    from edge_digits.cli import main

    result = CliRunner().invoke(main, ["serve", "--model", str(tmp_path / "none.tflite"), "--workers", workers])
    assert result.exit_code == 1 and "does not exist" in result.output
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    result = CliRunner().invoke(main, ["serve", "--model", str(bad), "--port", "0", "--workers", workers])
    assert result.exit_code == 1 and "Error:" in result.output, result.output


def test_injected_page_reader(model_path: Path) -> None:
    """The /v1/read plumbing with a reader injected in-process (the real one lives in edge_digits.vision.reader)."""
    import asyncio

    from edge_digits.serve import ServeConfig, make_socket, serve_async

    seen: list[tuple] = []

    class Reader:
        def read(self, image_bgr: np.ndarray) -> dict:
            seen.append(image_bgr.shape)
            if image_bgr.shape[0] == 1:
                raise ValueError("too small to read")
            return {"lines": []}

    sock = make_socket("127.0.0.1", 0, reuse_port=False)
    port = sock.getsockname()[1]
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        try:
            loop.run_until_complete(serve_async(ServeConfig(model=model_path), sock, reader=Reader(),
                                                ready=ready.set, signals=()))
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(60)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/read", _png(np.zeros((40, 30, 3), np.uint8)), {"Content-Type": "image/png"})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == {"lines": []}
        conn.request("POST", "/v1/read", _png(np.zeros((1, 30, 3), np.uint8)), {"Content-Type": "image/png"})
        resp = conn.getresponse()
        assert resp.status == 422 and "too small" in json.loads(resp.read())["error"]
        conn.close()
        assert seen == [(40, 30, 3), (1, 30, 3)]
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(10)


# --------------------------------------------------------------------------------------------------------------
# Property-based fuzzing against the OpenAPI document (schemathesis): no 5xx, answers conform to the document.

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
except ImportError:  # schemathesis is in the [dev] extra
    schemathesis = None

if schemathesis is not None:
    fuzz_schema = schemathesis.openapi.from_path(OPENAPI_PATH)

    @fuzz_schema.parametrize()
    @settings(max_examples=int(os.environ.get("EDGE_DIGITS_FUZZ_EXAMPLES", "60")), deadline=None,
              suppress_health_check=list(HealthCheck), derandomize=True)
    def test_fuzz_openapi(case, server: Server) -> None:
        response = case.call(base_url=server.url, timeout=30)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                 response_schema_conformance])
