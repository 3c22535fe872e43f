"""``edge-digits serve``: digit recognition over HTTP in one light process (issue #10).

Run it::

    edge-digits serve --model standard --host 127.0.0.1 --port 8080 [--workers N]
    curl -s localhost:8080/healthz
    python - <<'EOF'
    import base64, json, urllib.request
    from edge_digits.data import load_mnist
    img = load_mnist()[2][0]                       # uint8 (28, 28), white ink on black
    body = json.dumps({"images": [base64.b64encode(img.tobytes()).decode()]}).encode()
    req = urllib.request.Request("http://127.0.0.1:8080/v1/classify", body, {"Content-Type": "application/json"})
    print(json.load(urllib.request.urlopen(req)))   # {"predictions": [{"digit": 7, "scores": [...]}]}
    EOF
    curl -s --data-binary @digit.png -H 'Content-Type: image/png' localhost:8080/v1/classify

Endpoints (the OpenAPI document ``edge_digits/openapi.json`` is served as-is at ``/openapi.json``):

* ``POST /v1/classify`` -- JSON ``{"images": [base64 of 784 raw uint8 pixels, ...]}``, or a PNG body
  (``Content-Type: image/png``, any size up to the limits, converted to grayscale and resized to 28x28
  with area averaging; it must already be white ink on black like MNIST).
* ``POST /v1/read`` -- a JPEG/PNG photo of a page, read by the camera path (``edge_digits.read_api``:
  the page found and flattened, orientation found automatically, segmentation, the rejection model,
  one batch through a classifier of its own; boxes also in the photo's pixels).
* ``GET /healthz``, ``GET /v1/model`` (manifest), ``GET /metrics`` (Prometheus text), ``GET /openapi.json``.

How it works: a small HTTP/1.1 server written on ``asyncio.Protocol`` (keep-alive, pipelining answered
in order, strict limits on head size, header count, body size, image size and images per request;
any malformed request gets a 4xx JSON ``{"error": ...}``). Classification requests are queued to a
micro-batcher: one task takes everything queued (up to ``max_batch`` images), waits at most
``batch_wait_ms`` for more when the batch is not full and some open connection has no request queued
yet, and runs one interpreter call in a single-thread executor (the interpreter releases the GIL, so
the loop keeps parsing meanwhile); a batch of one image runs on the loop itself, cheaper than the
thread hops. A
dynamic-batch model gets one interpreter per batch size bucket (1..8, then powers of two), batches
padded up to the bucket, because resizing an interpreter's input costs more than a whole inference.

``--workers N`` starts N worker processes, each with its own event loop, interpreters and metrics,
listening on the same port with ``SO_REUSEPORT`` (Linux), which spreads connections over them. With
N > 1, every worker leaves its metrics in a shared temp folder once a second, and ``/metrics`` (from
whichever worker answers) shows all workers' series, labelled ``worker``, the others' at most about a
second old.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import signal
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_digits import __version__
from edge_digits.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edge_digits.metrics import Counter, Gauge, Histogram, Registry

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"
READER_MISSING = "this server was started without a page reader"

REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}
ROUTES = {"/healthz": ("GET",), "/v1/model": ("GET",), "/metrics": ("GET",), "/openapi.json": ("GET",),
          "/v1/classify": ("POST",), "/v1/read": ("POST",)}
_LENGTH = re.compile(r"[0-9]{1,15}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class PageReader(Protocol):
    """What ``/v1/read`` needs from the camera reading path (``edge_digits.reader``).

    ``read`` takes a BGR photo (H, W, 3) uint8 and returns JSON-ready data::

        {"lines": [{"text": "0427", "box": [x, y, w, h], "confidence": 0.93,
                    "digits": [{"digit": 0, "box": [x, y, w, h], "confidence": 0.99}, ...]}, ...]}

    It runs in a worker thread, never concurrently with itself, and raises ``ValueError`` for a
    photo it cannot read (answered 422 with the message).
    """

    def read(self, image_bgr: np.ndarray) -> dict: ...


def load_page_reader(model: Path, backend: str = "auto", threads: int = 1) -> PageReader:
    """The page reader behind ``/v1/read``: ``edge_digits.reader`` over a classifier of ``model`` of its own.

    It has its own interpreter because it runs in a worker thread beside the batcher's.
    """
    from edge_digits.read_api import PageReader as CameraPageReader
    from edge_digits.reject import load_rejector
    from edge_digits.runtime import Classifier

    return CameraPageReader(Classifier(model, backend=backend, threads=threads),
                            rejector=load_rejector(backend=backend))


@dataclass(frozen=True)
class Limits:
    """What one request may contain; anything beyond gets a 4xx with a message."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_batch: int = 64            # images per interpreter call, and per /v1/classify request
    max_image_side: int = 4096     # pixels, for PNG/JPEG uploads
    max_image_pixels: int = 16 * 1024 * 1024
    request_timeout_s: float = 10.0   # a started request must arrive whole within this
    keepalive_timeout_s: float = 75.0


@dataclass
class ServeConfig:
    model: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    backend: str = "auto"
    threads: int = 1
    batch_wait_ms: float = 1.0
    limits: Limits = field(default_factory=Limits)


class HttpError(Exception):
    """A request the server answers with ``status`` and a JSON error message."""

    def __init__(self, status: int, message: str, close: bool = False, headers: tuple = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.close, self.headers = status, message, close, headers


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    t0: float


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple = ()


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode())


def error_response(status: int, message: str, headers: tuple = ()) -> Response:
    return Response(status, json.dumps({"error": message}).encode(), headers=headers)


# ---------------------------------------------------------------------------------------------------------------
# Images


def image_size(data: bytes) -> tuple[str, int, int]:
    """Format, width and height from a PNG or JPEG header, without decoding (so no pixel bombs)."""
    if data.startswith(PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise HttpError(400, "truncated or malformed PNG: no IHDR chunk")
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        i, n = 2, len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                raise HttpError(400, "malformed JPEG: marker expected")
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                if i + 9 > n:
                    break
                return "jpeg", int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            if length < 2:
                raise HttpError(400, "malformed JPEG: bad segment length")
            i += 2 + length
        raise HttpError(400, "truncated or malformed JPEG: no frame header")
    raise HttpError(400, "the body is not a PNG or JPEG image")


def check_image(data: bytes, limits: Limits) -> str:
    kind, w, h = image_size(data)
    if w < 1 or h < 1:
        raise HttpError(400, f"the {kind.upper()} says it is {w}x{h} pixels")
    if max(w, h) > limits.max_image_side or w * h > limits.max_image_pixels:
        raise HttpError(413, f"the image is {w}x{h} pixels; the limit is {limits.max_image_side} per side and "
                             f"{limits.max_image_pixels} pixels")
    return kind


def decode_image(data: bytes, limits: Limits, gray: bool) -> np.ndarray:
    """A checked PNG/JPEG as uint8 grayscale (H, W) or BGR (H, W, 3); 400 when it does not decode whole."""
    import cv2

    kind = check_image(data, limits)
    if kind == "png" and not data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        raise HttpError(400, "truncated PNG: the IEND chunk is missing")
    if kind == "jpeg" and b"\xff\xd9" not in data[-64:]:
        raise HttpError(400, "truncated JPEG: the end-of-image marker is missing")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise HttpError(400, f"the {kind.upper()} does not decode (corrupt or truncated)")
    return img


def to_digit_image(gray: np.ndarray) -> np.ndarray:
    """A grayscale image as the model's 28x28 input (area-averaged when resized; no inversion)."""
    import cv2

    if gray.shape == (28, 28):
        return gray
    return cv2.resize(gray, (28, 28), interpolation=cv2.INTER_AREA)


def parse_classify_json(body: bytes, limits: Limits) -> np.ndarray:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HttpError(400, 'the body must be a JSON object {"images": [...]}')
    extra = sorted(set(doc) - {"images"})
    if extra:
        raise HttpError(400, f"unknown field(s) {', '.join(map(repr, extra))}; only 'images' is accepted")
    images = doc.get("images")
    if not isinstance(images, list):
        raise HttpError(400, '"images" must be a list of base64 strings')
    if not images:
        raise HttpError(400, '"images" is empty; give at least one image')
    if len(images) > limits.max_batch:
        raise HttpError(400, f"{len(images)} images in one request; the limit is {limits.max_batch}")
    raw = []
    for i, item in enumerate(images):
        if not isinstance(item, str):
            raise HttpError(400, f"images[{i}] must be a base64 string, not {type(item).__name__}")
        try:
            pixels = base64.b64decode(item, validate=True)
        except ValueError as exc:
            raise HttpError(400, f"images[{i}] is not valid base64: {exc}") from None
        if len(pixels) != 784:
            raise HttpError(400, f"images[{i}] has {len(pixels)} bytes; want 784 (28x28 uint8, row-major)")
        raw.append(pixels)
    return np.frombuffer(b"".join(raw), np.uint8).reshape(len(raw), 28, 28)


# ---------------------------------------------------------------------------------------------------------------
# Inference


class Engine:
    """The model behind ``/v1/classify``: one interpreter per batch-size bucket, used from one thread."""

    def __init__(self, model: Path, backend: str = "auto", threads: int = 1, max_batch: int = 64) -> None:
        from edge_digits.runtime import Classifier

        self._make = lambda: Classifier(model, backend=backend, threads=threads)
        first = self._make()
        self.backend, self.delegate, self.dynamic_batch = first.backend, first.delegate, first.dynamic_batch
        if self.dynamic_batch:
            sizes = set(range(1, min(8, max_batch) + 1)) | {2 ** k for k in range(20) if 2 ** k <= max_batch}
            self.sizes = sorted(sizes | {max_batch})
        else:
            self.sizes = [max_batch]   # the Classifier runs such a model one image at a time
        self._clf = {self.sizes[0]: first}
        for size in self.sizes:       # allocate every bucket now, so no request pays for it
            self._predict(np.zeros((size, 28, 28), np.uint8))

    def _predict(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        size = next(s for s in self.sizes if s >= n)
        clf = self._clf.get(size)
        if clf is None:
            clf = self._clf[size] = self._make()
        if self.dynamic_batch and size != n:
            images = np.concatenate([images, np.zeros((size - n, 28, 28), np.uint8)])
        return clf.predict(images)[:n]

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._predict(images)


class MicroBatcher:
    """Requests that arrive together become one interpreter call (bounded wait, bounded batch)."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int, max_wait_s: float,
                 on_batch: Callable[[int, int, float], None] | None = None,
                 clients: Callable[[], int] | None = None, inline_max: int = 1) -> None:
        self.predict, self.max_batch, self.max_wait_s, self.on_batch = predict, max_batch, max_wait_s, on_batch
        self.clients = clients   # open connections: waiting only helps while some are not already queued
        self.inline_max = inline_max
        self.pending: deque[tuple[np.ndarray, asyncio.Future]] = deque()
        self.pending_images = 0
        self._waiter: asyncio.Future | None = None
        self._collecting = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edge-digits-infer")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False)

    def submit(self, images: np.ndarray) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((images, fut))
        self.pending_images += len(images)
        w = self._waiter
        if w is not None and not w.done() and (not self._collecting or self.pending_images >= self.max_batch
                                               or (self.clients is not None and len(self.pending) >= self.clients())):
            w.set_result(None)   # idle, or the batch is full, or every open connection is already waiting
        return fut

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        batch, n = [], 0
        while self.pending and (not batch or n + len(self.pending[0][0]) <= self.max_batch):
            item = self.pending.popleft()
            n += len(item[0])
            batch.append(item)
        self.pending_images -= n
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                self._waiter = loop.create_future()
                await self._waiter
            if (self.max_wait_s > 0 and self.pending_images < self.max_batch
                    and (self.clients is None or self.clients() > len(self.pending))):
                self._collecting = True
                self._waiter = waiter = loop.create_future()
                handle = loop.call_later(self.max_wait_s, lambda w=waiter: w.done() or w.set_result(None))
                await waiter
                handle.cancel()
                self._collecting = False
            batch = self._take()
            images = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
            t = time.perf_counter()
            try:
                if len(images) <= self.inline_max:
                    # a lone image runs on the loop: the two thread hops would cost more than its ~0.1 ms
                    scores = self.predict(images)
                else:
                    scores = await loop.run_in_executor(self._executor, self.predict, images)
            except Exception as exc:  # a broken model: every waiting request gets a 500
                traceback.print_exc(file=sys.stderr)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(images), len(batch), time.perf_counter() - t)
            start = 0
            for imgs, fut in batch:
                if not fut.done():
                    fut.set_result(scores[start:start + len(imgs)])
                start += len(imgs)


# ---------------------------------------------------------------------------------------------------------------
# The application: routes, metrics, manifest


LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def model_manifest(model: Path, engine: Engine, config: ServeConfig) -> dict:
    """What ``GET /v1/model`` answers: the file, its ops and tensors, how it is served, its model card."""
    data = model.read_bytes()
    manifest: dict[str, Any] = {
        "model": model.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "backend": engine.backend, "delegate": engine.delegate, "threads": config.threads,
        "dynamic_batch": engine.dynamic_batch, "max_batch": config.limits.max_batch,
        "batch_sizes": engine.sizes, "batch_wait_ms": config.batch_wait_ms, "workers": config.workers,
        "server_version": __version__,
    }
    try:
        from edge_digits.convert import summarize_model

        s = summarize_model(data)
        manifest.update(ops=s.ops, inputs=[asdict(t) for t in s.inputs], outputs=[asdict(t) for t in s.outputs])
    except Exception as exc:  # the tflite schema package is optional on a Pi
        manifest["summary_error"] = str(exc)
    card = None
    try:
        from edge_digits.models import MODEL_DIR, model_card

        if model.resolve().parent == MODEL_DIR and model.name.endswith("_int8.tflite"):
            card = model_card(model.name[:-len("_int8.tflite")])
    except Exception:
        card = None
    manifest["card"] = card
    return manifest


class App:
    """Routes requests to handlers; a handler returns a Response, or a Future of one."""

    def __init__(self, engine: Engine, config: ServeConfig, reader: PageReader | None = None,
                 worker: int = 0, peer_dir: Path | None = None) -> None:
        self.engine, self.config, self.limits, self.reader = engine, config, config.limits, reader
        self.worker = str(worker)
        self.peer_dir = peer_dir     # with several workers: where each one leaves its metrics every second
        self.openapi = OPENAPI_PATH.read_bytes()
        self.manifest = model_manifest(config.model, engine, config)
        self.manifest_body = json.dumps(self.manifest).encode()
        r = self.registry = Registry()
        self.m_requests = r.add(Counter("edge_digits_http_requests_total", "HTTP requests answered, by route and "
                                        "status code.", ("worker", "route", "status")))
        self.m_latency = r.add(Histogram("edge_digits_http_request_duration_seconds", "Time from a request's last "
                                         "byte to its response, by route.", LATENCY_BUCKETS, ("worker", "route")))
        self.m_batch = r.add(Histogram("edge_digits_batch_size", "Images per interpreter call.", BATCH_BUCKETS,
                                       ("worker",)))
        self.m_batch_requests = r.add(Histogram("edge_digits_batch_requests", "Requests per interpreter call.",
                                                BATCH_BUCKETS, ("worker",)))
        self.m_infer = r.add(Histogram("edge_digits_inference_duration_seconds", "Time of one interpreter call "
                                       "(batch).", LATENCY_BUCKETS, ("worker",)))
        self.m_images = r.add(Counter("edge_digits_images_classified_total", "Images classified.", ("worker",)))
        self.m_conns = r.add(Gauge("edge_digits_open_connections", "Open HTTP connections.", ("worker",)))
        self.m_info = r.add(Gauge("edge_digits_model_info", "The model served (value 1).",
                                  ("worker", "model", "sha256", "backend", "delegate", "max_batch")))
        self.m_info.set(self.worker, self.manifest["model"], self.manifest["sha256"], engine.backend,
                        engine.delegate, str(config.limits.max_batch), value=1)
        self.connections = 0
        self.m_conns.set(self.worker, value=0)
        self.batcher = MicroBatcher(engine.predict, config.limits.max_batch, config.batch_wait_ms / 1000,
                                    self._on_batch, clients=lambda: self.connections)
        self._read_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edge-digits-read")

    def _on_batch(self, images: int, requests: int, seconds: float) -> None:
        self.m_batch.observe(images, self.worker)
        self.m_batch_requests.observe(requests, self.worker)
        self.m_infer.observe(seconds, self.worker)
        self.m_images.inc(self.worker, amount=images)

    def connection_count(self, delta: int) -> None:
        self.connections += delta
        self.m_conns.set(self.worker, value=self.connections)

    def record(self, route: str, status: int, t0: float) -> None:
        route = route if route in ROUTES else "other"
        self.m_requests.inc(self.worker, route, str(status))
        self.m_latency.observe(time.perf_counter() - t0, self.worker, route)

    def handle(self, req: Request) -> Response | asyncio.Future:
        allowed = ROUTES.get(req.path)
        if allowed is None:
            raise HttpError(404, f"no route {req.path}; see /openapi.json")
        if req.method not in allowed:
            raise HttpError(405, f"{req.path} takes {', '.join(allowed)}", headers=(("Allow", ", ".join(allowed)),))
        if req.path == "/v1/classify":
            return self.classify(req)
        if req.path == "/v1/read":
            return self.read(req)
        if req.path == "/healthz":
            return json_response({"status": "ok", "model": self.manifest["model"], "backend": self.engine.backend})
        if req.path == "/metrics":
            return Response(200, self.registry.render(self.peer_samples()).encode(), METRICS_CONTENT_TYPE)
        if req.path == "/v1/model":
            return Response(200, self.manifest_body)
        return Response(200, self.openapi)

    def publish_samples(self) -> None:
        """Leave this worker's metrics where the other workers read them (``/metrics`` shows all workers)."""
        if self.peer_dir is None:
            return
        path = self.peer_dir / f"worker-{self.worker}.json"
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps(self.registry.samples()))
        os.replace(tmp, path)

    def peer_samples(self) -> list[dict[str, list[str]]]:
        """The other workers' metrics as they published them (at most about a second old)."""
        if self.peer_dir is None:
            return []
        out = []
        for path in sorted(self.peer_dir.glob("worker-*.json")):
            if path.name != f"worker-{self.worker}.json":
                try:
                    out.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    pass
        return out

    def _content_type(self, req: Request) -> str:
        return req.headers.get("content-type", "").split(";")[0].strip().lower()

    def classify(self, req: Request) -> asyncio.Future:
        ctype = self._content_type(req)
        out = asyncio.get_running_loop().create_future()
        if ctype in ("application/json", ""):
            self._submit(parse_classify_json(req.body, self.limits), out)
        elif ctype == "image/png":
            if not req.body.startswith(PNG_MAGIC):
                raise HttpError(400, "Content-Type says image/png but the body is not a PNG")
            check_image(req.body, self.limits)
            _, w, h = image_size(req.body)
            decode = lambda: to_digit_image(decode_image(req.body, self.limits, gray=True))[None]  # noqa: E731
            if w * h <= 256 * 256:
                self._submit(decode(), out)
            else:   # a big picture decodes in a worker thread, so the loop keeps answering meanwhile
                def decoded(fut: asyncio.Future) -> None:
                    if fut.exception() is not None:
                        out.set_exception(fut.exception())
                    else:
                        self._submit(fut.result(), out)

                asyncio.get_running_loop().run_in_executor(self._read_executor, decode).add_done_callback(decoded)
        else:
            raise HttpError(415, f"Content-Type {ctype!r} is not accepted here: send application/json or image/png")
        return out

    def _submit(self, images: np.ndarray, out: asyncio.Future) -> None:
        def done(fut: asyncio.Future) -> None:
            if out.done():
                return
            if fut.exception() is not None:
                out.set_result(error_response(500, f"inference failed: {fut.exception()}"))
                return
            scores = fut.result()
            digits = scores.argmax(axis=1).tolist()
            preds = [{"digit": d, "scores": s} for d, s in zip(digits, scores.tolist())]
            out.set_result(json_response({"predictions": preds}))

        self.batcher.submit(images).add_done_callback(done)

    def read(self, req: Request) -> Response | asyncio.Future:
        ctype = self._content_type(req)
        if ctype not in ("image/jpeg", "image/png"):
            raise HttpError(415, f"Content-Type {ctype!r} is not accepted here: send image/jpeg or image/png")
        if self.reader is None:
            raise HttpError(501, READER_MISSING)
        check_image(req.body, self.limits)
        reader = self.reader

        def work() -> Response:
            try:
                img = decode_image(req.body, self.limits, gray=False)
                return json_response(reader.read(img))
            except HttpError as exc:
                return error_response(exc.status, exc.message)
            except ValueError as exc:
                return error_response(422, f"cannot read the photo: {exc}")

        return asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(self._read_executor, work))


# ---------------------------------------------------------------------------------------------------------------
# HTTP/1.1 on asyncio.Protocol


def encode_response(resp: Response, keep_alive: bool) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in resp.headers)
    if not keep_alive:
        extra += "Connection: close\r\n"
    head = (f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}\r\nServer: edge-digits\r\n"
            f"Content-Type: {resp.content_type}\r\nContent-Length: {len(resp.body)}\r\n{extra}\r\n")
    return head.encode("latin-1") + resp.body


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests in order, answer each, keep the connection alive."""

    def __init__(self, app: App, conns: set) -> None:
        self.app, self.limits, self.conns = app, app.limits, conns
        self.buf = bytearray()
        self.head: tuple | None = None    # (method, path, headers, length, keep_alive) while the body arrives
        self.busy = False
        self.closed = False
        self.lingering = False
        self.paused = False
        self.sent_continue = False
        self.eof = False
        self.last = self.started = time.monotonic()   # last bytes seen; first bytes of the request in progress
        self.write_paused = False
        self.transport: asyncio.Transport | None = None

    # asyncio callbacks
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.conns.add(self)
        self.app.connection_count(+1)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.conns.discard(self)
        self.app.connection_count(-1)

    def pause_writing(self) -> None:
        # the client does not read its answers: stop reading its requests until it does
        self.write_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.paused:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last = time.monotonic()
        if self.lingering:
            return
        if not self.buf and self.head is None:
            self.started = self.last
        self.buf += data
        if not self.busy:
            self._process()
        elif not self.paused and len(self.buf) > self.limits.max_body_bytes + self.limits.max_head_bytes:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.busy:
            return True               # keep the write side open for the answer in progress
        if (self.buf.strip(b"\r\n") or self.head) and not self.lingering:
            # the client stopped sending in the middle of a request: a truncated upload
            self._fail(HttpError(400, "the request ended before it was complete (truncated upload)", close=True),
                       "other", time.perf_counter())
        return False

    # sweeping, called about once a second by the server
    def sweep(self, now: float) -> None:
        if self.busy or self.closed or self.lingering:
            return
        if (self.buf or self.head) and now - self.started > self.limits.request_timeout_s:
            self._fail(HttpError(408, f"the request did not arrive whole within {self.limits.request_timeout_s:g} s",
                                 close=True), "other", time.perf_counter())
        elif not self.buf and now - self.last > self.limits.keepalive_timeout_s:
            self.transport.close()

    # parsing
    def _parse_head(self) -> bool:
        buf = self.buf
        while buf[:2] == b"\r\n":      # stray CRLFs between requests are allowed
            del buf[:2]
        end = buf.find(b"\r\n\r\n", 0, self.limits.max_head_bytes + 4)
        if end < 0:
            if len(buf) > self.limits.max_head_bytes:
                raise HttpError(431, f"the request head exceeds {self.limits.max_head_bytes} bytes", close=True)
            return False
        text = bytes(buf[:end]).decode("latin-1")
        del buf[:end + 4]
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
            raise HttpError(400, "malformed request line", close=True)
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HttpError(400, f"unsupported protocol {version[:20]!r}: send HTTP/1.1", close=True)
        if len(lines) - 1 > self.limits.max_headers:
            raise HttpError(431, f"more than {self.limits.max_headers} header fields", close=True)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not _TOKEN.fullmatch(name):
                raise HttpError(400, f"malformed header line {line[:60]!r}", close=True)
            name, value = name.lower(), value.strip(" \t")
            if name in headers:
                if name == "content-length":
                    if value != headers[name]:
                        raise HttpError(400, "conflicting Content-Length headers", close=True)
                    continue
                headers[name] += ", " + value
            else:
                headers[name] = value
        if "transfer-encoding" in headers:
            raise HttpError(411, "chunked request bodies are not supported: send Content-Length", close=True)
        length_text = headers.get("content-length", "0")
        if not _LENGTH.fullmatch(length_text):
            raise HttpError(400, f"invalid Content-Length {length_text[:40]!r}", close=True)
        length = int(length_text)
        if length > self.limits.max_body_bytes:
            raise HttpError(413, f"the body is {length} bytes; the limit is {self.limits.max_body_bytes}",
                            close=True)
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        path = target.split("?", 1)[0].split("#", 1)[0]
        self.head = (method, path, headers, length, keep_alive, time.perf_counter())
        self.sent_continue = False
        return True

    def _process(self) -> None:
        while not self.busy and not self.closed and not self.lingering:
            t0 = time.perf_counter()
            route = "other"
            try:
                if self.head is None and not self._parse_head():
                    break
                method, path, headers, length, keep_alive, t0 = self.head
                route = path
                if len(self.buf) < length:
                    if (not self.sent_continue and headers.get("expect", "").lower() == "100-continue"):
                        self.sent_continue = True
                        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    break
                body = bytes(self.buf[:length])
                del self.buf[:length]
                self.head = None
                self.started = time.monotonic()   # whatever follows is the next request
                req = Request(method, path, headers, body, keep_alive, t0)
                result = self.app.handle(req)
            except HttpError as exc:
                self._fail(exc, route, t0)
                continue
            except Exception as exc:  # a bug: answer 500, keep serving
                traceback.print_exc(file=sys.stderr)
                self._fail(HttpError(500, f"internal error: {type(exc).__name__}", close=True), route, t0)
                continue
            if isinstance(result, Response):
                self._send(req, result)
            else:
                self.busy = True
                result.add_done_callback(lambda fut, req=req: self._finished(req, fut))
        if self.paused and not self.busy and len(self.buf) <= self.limits.max_body_bytes:
            self.paused = False
            if not self.write_paused:
                self.transport.resume_reading()

    def _finished(self, req: Request, fut: asyncio.Future) -> None:
        self.busy = False
        if fut.cancelled():
            resp = error_response(503, "the server is shutting down")
        elif isinstance(fut.exception(), HttpError):
            exc = fut.exception()
            resp = error_response(exc.status, exc.message, exc.headers)
        elif fut.exception() is not None:
            traceback.print_exception(fut.exception(), file=sys.stderr)
            resp = error_response(500, f"internal error: {type(fut.exception()).__name__}")
        else:
            resp = fut.result()
        if self.closed:
            self.app.record(req.path, resp.status, req.t0)
            return
        self._send(req, resp)
        if self.eof and not self.closed:
            self.closed = True
            self.transport.close()
        elif self.buf and not self.closed:
            self._process()
        elif self.paused:
            self.paused = False
            if not self.write_paused:
                self.transport.resume_reading()

    def _send(self, req: Request, resp: Response) -> None:
        self.app.record(req.path, resp.status, req.t0)
        self.transport.write(encode_response(resp, req.keep_alive))
        if not req.keep_alive:
            self.closed = True
            self.transport.close()

    def _fail(self, exc: HttpError, route: str, t0: float) -> None:
        self.app.record(route, exc.status, t0)
        resp = error_response(exc.status, exc.message, exc.headers)
        if not exc.close:
            self.transport.write(encode_response(resp, True))
            return
        # framing is lost: answer, stop writing, swallow what the client still sends, then close
        self.transport.write(encode_response(resp, False))
        self.head = None
        self.buf.clear()
        self.lingering = True
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(2.0, self.transport.close)


# ---------------------------------------------------------------------------------------------------------------
# Running


def make_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def serve_async(config: ServeConfig, sock: socket.socket, worker: int = 0,
                      reader: PageReader | None = None, ready: Callable[[], None] | None = None,
                      signals: tuple = (signal.SIGINT, signal.SIGTERM), peer_dir: Path | None = None) -> None:
    engine = Engine(config.model, config.backend, config.threads, config.limits.max_batch)
    app = App(engine, config, reader, worker, peer_dir)
    loop = asyncio.get_running_loop()
    app.batcher.start()
    conns: set[HttpConnection] = set()
    sock.listen(1024)
    server = await loop.create_server(lambda: HttpConnection(app, conns), sock=sock, backlog=1024)
    stop = loop.create_future()
    for sig in signals:
        try:
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        except (NotImplementedError, RuntimeError):
            pass

    async def sweeper() -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for c in list(conns):
                c.sweep(now)
            try:
                app.publish_samples()
            except OSError as exc:
                print(f"warning: cannot publish metrics: {exc}", file=sys.stderr)

    app.publish_samples()
    sweep_task = loop.create_task(sweeper())
    if ready is not None:
        ready()
    try:
        await stop
    finally:
        sweep_task.cancel()
        server.close()
        for c in list(conns):
            if c.transport is not None:
                c.transport.close()
        await app.batcher.close()


def _worker_main(config: ServeConfig, worker: int, port: int, ready_queue, peer_dir: Path) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent stops the workers with SIGTERM
    sock = make_socket(config.host, port, reuse_port=True)
    reader = load_page_reader(config.model, config.backend, config.threads)
    asyncio.run(serve_async(config, sock, worker, reader, ready=lambda: ready_queue.put(worker),
                            signals=(signal.SIGTERM,), peer_dir=peer_dir))


def serve(config: ServeConfig, announce: Callable[[str], None] = print) -> None:
    """Run the server until SIGINT/SIGTERM: in this process (one worker) or in ``config.workers`` processes."""
    import multiprocessing

    if config.workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers above 1 needs SO_REUSEPORT (Linux)")
    sock = make_socket(config.host, config.port, reuse_port=config.workers > 1)
    port = sock.getsockname()[1]
    url = f"http://{config.host if ':' not in config.host else '[' + config.host + ']'}:{port}"
    if config.workers == 1:
        reader = load_page_reader(config.model, config.backend, config.threads)
        asyncio.run(serve_async(config, sock, 0, reader,
                                ready=lambda: announce(f"serving {config.model.name} on {url} (1 worker)")))
        return
    # the parent keeps its bound (never listening) socket, so the port stays ours; workers listen beside it
    ctx = multiprocessing.get_context("fork")
    import shutil
    import tempfile

    ready_queue = ctx.Queue()
    shm = Path("/dev/shm")
    peer_dir = Path(tempfile.mkdtemp(prefix="edge-digits-serve-", dir=shm if shm.is_dir() else None))
    procs = [ctx.Process(target=_worker_main, args=(config, i, port, ready_queue, peer_dir), daemon=True)
             for i in range(config.workers)]
    import queue

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for p in procs:
            p.start()
        ready = 0
        while ready < len(procs) and not stopping:
            try:
                ready_queue.get(timeout=0.5)
                ready += 1
            except queue.Empty:
                if not all(p.is_alive() for p in procs):
                    raise RuntimeError("a worker process failed to start (see the messages above)") from None
        if not stopping:
            announce(f"serving {config.model.name} on {url} ({config.workers} workers, SO_REUSEPORT)")
        while not stopping and all(p.is_alive() for p in procs):
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join(5)
        sock.close()
        shutil.rmtree(peer_dir, ignore_errors=True)
    if not stopping:
        raise RuntimeError("a worker process exited; stopping the server")
