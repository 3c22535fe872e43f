"""The HTTP application: routes, the model manifest, Prometheus metrics, the photo reader behind
``/v1/read``, and the page (``/`` and ``/static/...``, files read once at start-up)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_digits import __version__
from edge_digits.fileio import WEB_TYPES, read_web_files
from edge_digits.serve.batching import InterpreterPool, MicroBatcher
from edge_digits.serve.config import ServeConfig
from edge_digits.serve.http import HttpError, Request, Response, error_response, json_response
from edge_digits.serve.images import (
    PNG_MAGIC,
    check_image,
    decode_image,
    image_size,
    parse_classify_json,
    to_digit_image,
)
from edge_digits.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edge_digits.serve.metrics import Counter, Gauge, Histogram, Registry

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"
STATIC_DIR = Path(__file__).resolve().parent / "static"
READER_MISSING = "this server was started without a page reader"
STATIC_PREFIX = "/static/"
ROUTES = {"/healthz": ("GET",), "/v1/model": ("GET",), "/metrics": ("GET",), "/openapi.json": ("GET",),
          "/v1/classify": ("POST",), "/v1/read": ("POST",), "/": ("GET",), "/static": ("GET",)}
# The page names its scripts and styles with ?v=<content hash> (rewritten at start-up), so they may be cached
# for long while the page itself is revalidated: a new server's page never runs an old script.
PAGE_CACHE = "no-cache"
STATIC_CACHE = "public, max-age=86400"


def route_of(path: str) -> str:
    """The route a path belongs to (the metrics label): a key of ``ROUTES``, ``/static`` or ``other``."""
    if path in ROUTES:
        return path
    return "/static" if path.startswith(STATIC_PREFIX) else "other"


def load_static(folder: Path = STATIC_DIR) -> dict[str, Response]:
    """The page's files as ready answers, by file name: read once, so no request touches the disk.

    Only plain files of a known type directly in ``folder`` are served; in ``index.html`` each quoted reference
    to ``static/NAME`` gets ``?v=`` and the first 12 hex digits of the file's SHA-256 (cache busting).
    """
    files = {name: data for name, (data, _) in read_web_files(folder).items()}
    page = files.get("index.html")
    if page is not None:
        for name, data in files.items():
            version = hashlib.sha256(data).hexdigest()[:12]
            page = page.replace(f'static/{name}"'.encode(), f'static/{name}?v={version}"'.encode())
        files["index.html"] = page
    return {name: Response(200, data, WEB_TYPES[Path(name).suffix],
                           (("Cache-Control", PAGE_CACHE if name == "index.html" else STATIC_CACHE),))
            for name, data in files.items()}


class PhotoReader(Protocol):
    """What ``/v1/read`` needs from the camera reading path (``edge_digits.vision.reader``).

    ``read`` takes a BGR photo (H, W, 3) uint8 and returns JSON-ready data::

        {"lines": [{"text": "0427", "box": [x, y, w, h], "confidence": 0.93,
                    "digits": [{"digit": 0, "box": [x, y, w, h], "confidence": 0.99}, ...]}, ...]}

    It runs in a worker thread, never concurrently with itself, and raises ``ValueError`` for a
    photo it cannot read (answered 422 with the message).
    """

    def read(self, image_bgr: np.ndarray) -> dict[str, Any]: ...


def load_photo_reader(model: Path, backend: str = "auto", threads: int = 1) -> PhotoReader:
    """The page reader behind ``/v1/read``: ``edge_digits.vision.reader`` over a classifier of ``model`` of its own.

    It has its own interpreter because it runs in a worker thread beside the batcher's.
    """
    from edge_digits.runtime import Classifier
    from edge_digits.vision.photo_answer import PhotoAnswerer
    from edge_digits.vision.reject import load_rejector

    return PhotoAnswerer(Classifier(model, backend=backend, threads=threads),
                            rejector=load_rejector(backend=backend))


LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def model_manifest(model: Path, engine: InterpreterPool, config: ServeConfig) -> dict[str, Any]:
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
        from edge_digits.flatbuffer import summarize_model

        s = summarize_model(data)
        manifest.update(ops=s.ops, inputs=[asdict(t) for t in s.inputs], outputs=[asdict(t) for t in s.outputs])
    except Exception as exc:  # a file the tflite schema package cannot read: serve it, say why it is not described
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

    def __init__(self, engine: InterpreterPool, config: ServeConfig, reader: PhotoReader | None = None,
                 worker: int = 0, peer_dir: Path | None = None) -> None:
        self.engine, self.config, self.limits, self.reader = engine, config, config.limits, reader
        self.worker = str(worker)
        self.peer_dir = peer_dir     # with several workers: where each one leaves its metrics every second
        self.openapi = OPENAPI_PATH.read_bytes()
        self.static = load_static()
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
        route = route_of(route)
        self.m_requests.inc(self.worker, route, str(status))
        self.m_latency.observe(time.perf_counter() - t0, self.worker, route)

    def handle(self, req: Request) -> Response | asyncio.Future[Response]:
        route = route_of(req.path)
        allowed = ROUTES.get(route)
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
        if route == "/":
            return self.static_file("index.html")
        if route == "/static":
            return self.static_file(req.path[len(STATIC_PREFIX):])
        return Response(200, self.openapi)

    def static_file(self, name: str) -> Response:
        """One of the page's files by its exact name (so no ``..``, no subfolder, nothing read from disk)."""
        resp = self.static.get(name)
        if resp is None:
            raise HttpError(404, f"no static file {name[:100]!r}")
        return resp

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
        out: list[dict[str, list[str]]] = []
        for path in sorted(self.peer_dir.glob("worker-*.json")):
            if path.name != f"worker-{self.worker}.json":
                try:
                    out.append(json.loads(path.read_text()))
                except (OSError, ValueError):
                    pass
        return out

    def _content_type(self, req: Request) -> str:
        return req.headers.get("content-type", "").split(";")[0].strip().lower()

    def classify(self, req: Request) -> asyncio.Future[Response]:
        ctype = self._content_type(req)
        out: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        if ctype in ("application/json", ""):
            self._submit(parse_classify_json(req.body, self.limits), out)
        elif ctype == "image/png":
            if not req.body.startswith(PNG_MAGIC):
                raise HttpError(400, "Content-Type says image/png but the body is not a PNG")
            check_image(req.body, self.limits)
            _, w, h = image_size(req.body)
            decode: Callable[[], np.ndarray]
            decode = lambda: to_digit_image(decode_image(req.body, self.limits, gray=True))[None]  # noqa: E731
            if w * h <= 256 * 256:
                self._submit(decode(), out)
            else:   # a big picture decodes in a worker thread, so the loop keeps answering meanwhile
                def decoded(fut: asyncio.Future[np.ndarray]) -> None:
                    if (exc := fut.exception()) is not None:
                        out.set_exception(exc)
                    else:
                        self._submit(fut.result(), out)

                asyncio.get_running_loop().run_in_executor(self._read_executor, decode).add_done_callback(decoded)
        else:
            raise HttpError(415, f"Content-Type {ctype!r} is not accepted here: send application/json or image/png")
        return out

    def _submit(self, images: np.ndarray, out: asyncio.Future[Response]) -> None:
        def done(fut: asyncio.Future[np.ndarray]) -> None:
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

    def read(self, req: Request) -> Response | asyncio.Future[Response]:
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
