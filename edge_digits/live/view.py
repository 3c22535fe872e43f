"""The live web view of ``edge-digits run --http [HOST:]PORT``: one page showing what a headless reader sees.

Endpoints (GET and HEAD; other methods 405, unknown paths 404, both with a
JSON ``{"error": ...}``):

- ``/`` the page, ``/static/<file>`` its script and style (only the files in
  ``live/static/``);
- ``/stream.mjpg`` the annotated view as MJPEG (``multipart/x-mixed-replace``);
- ``/frame.jpg`` the latest annotated frame (503 before the first frame);
- ``/events`` Server-Sent Events: a ``reading`` event whenever a new frame was
  read, at most :data:`EVENTS_PER_S` a second per client, and a comment every
  :data:`KEEPALIVE_S` seconds when nothing changed;
- ``/reading`` the latest reading as JSON (:func:`reading_payload`).

The run loop's thread only stores the latest frame under a lock
(:meth:`LiveView.frame`); drawing and JPEG encoding happen in one encoder
thread, only while a video client is connected and at most ``max_fps`` times
a second. Each video client gets the newest JPEG (never a queue), and a client
that stops reading is dropped after :data:`SEND_TIMEOUT_S` seconds and
counted. Nothing is printed or logged: ``run``'s output is the same with or
without the view.

The module is longer than 500 lines because the HTTP handler, the shared
state behind one lock and the encoder thread are one mechanism; split, each
part would reach into the others' state.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import json
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge_digits.fileio import read_web_files
from edge_digits.vision.observe import LiveFrame

STATIC = Path(__file__).with_name("static")
SEND_TIMEOUT_S = 3.0      # a streaming client that takes no bytes for this long is dropped
KEEPALIVE_S = 15.0        # an SSE comment this often when no reading changed (proxies close idle streams)
EVENTS_PER_S = 5.0        # most reading events a second per /events client
REQUEST_TIMEOUT_S = 10.0  # to send a request's head
JPEG_QUALITY = 80
MAX_VIDEO_SIDE = 1280     # larger display frames are scaled down before encoding (a Pi's main stream)
STREAM_SNDBUF = 256 * 1024  # the kernel buffer of a streaming socket: bounds what a stalled client holds
CONNECTION_SLACK = 64     # open connections allowed beyond max_clients (page loads, /reading polls)
BOUNDARY = "frame"
_PAGE_HEADERS = (("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                                             "base-uri 'none'; frame-ancestors 'none'"),
                 ("Referrer-Policy", "no-referrer"))


class LiveViewError(RuntimeError):
    """The live view cannot start (a malformed address, a port in use); the message says what to do."""


@dataclass
class LiveViewFigures:
    """What the live view did during a run, for the run summary."""

    viewers: int = 0               # streaming connections served (/stream.mjpg and /events)
    peak_viewers: int = 0          # most open at once
    video_frames_encoded: int = 0
    events_sent: int = 0
    clients_dropped: int = 0       # stopped reading for SEND_TIMEOUT_S and were cut off
    clients_refused: int = 0       # turned away: max_clients streams, or too many open connections

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def parse_address(address: str) -> tuple[str, int]:
    """``[HOST:]PORT`` as (host, port): a bare port is 127.0.0.1, an IPv6 host goes in brackets.

    >>> parse_address("8080"), parse_address("0.0.0.0:8080"), parse_address("[::1]:0")
    (('127.0.0.1', 8080), ('0.0.0.0', 8080), ('::1', 0))
    """
    text = address.strip()
    example = "give [HOST:]PORT, e.g. 8080, 0.0.0.0:8080 (every interface) or [::1]:8080"
    if not text:
        raise LiveViewError(f"--http: no address; {example}")
    if "/" in text:
        raise LiveViewError(f"--http {address!r}: no scheme or path; {example}")
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or not host or not rest.startswith(":"):
            raise LiveViewError(f"--http {address!r}: an IPv6 address goes in brackets before :PORT, e.g. [::1]:8080")
        port_text = rest[1:]
    elif text.count(":") > 1:
        raise LiveViewError(f"--http {address!r}: put an IPv6 address in brackets, e.g. [::1]:8080")
    elif ":" in text:
        host, _, port_text = text.partition(":")
        if not host:
            raise LiveViewError(f"--http {address!r}: the HOST before ':' is empty; {example}")
    else:
        host, port_text = "127.0.0.1", text
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise LiveViewError(f"--http {address!r}: the port must be a number from 0 to 65535 (0: any free port), "
                            f"not {port_text!r}")
    return host, int(port_text)


def reading_payload(live: LiveFrame, info: Mapping[str, object] | None = None) -> dict[str, object]:
    """The reading of one frame as the view serves it: settled and frame lines, digits, FPS, timings, power,
    with ``info`` (model, backend, delegate, power meter) merged in."""
    record = live.record
    digits = [{"digit": int(d.label), "confidence": round(float(d.confidence), 4),
               "frame_box": (d.frame_box or d.box).as_list()} for d in live.reading.digits]
    out: dict[str, object] = {"model": None, "backend": None, "delegate": None, "power_meter": None}
    out.update(info or {})
    out.update({"frame": record.get("frame"), "time": record.get("time"),
                "source": record.get("source", out.get("source")),
                "lines": live.shown,
                "frame_lines": record.get("lines", []), "digits": digits, "fps": round(float(live.fps), 2),
                "timings_ms": record.get("timings_ms", {}), "power_w": record.get("power_w")})
    return out


def _json_bytes(value: object) -> bytes:
    def plain(o: object) -> object:
        return o.item() if isinstance(o, np.generic) else str(o)

    return json.dumps(value, default=plain).encode()


def _load_static() -> dict[str, tuple[bytes, str]]:
    files = read_web_files(STATIC)
    if "index.html" not in files:
        raise LiveViewError(f"the live view's page is missing from this install ({STATIC / 'index.html'}); "
                            "reinstall edge-digits")
    return files


class _Server(ThreadingHTTPServer):
    """The listening socket and a thread per connection; errors in a connection are counted, never printed."""

    daemon_threads = True
    allow_reuse_address = True   # only a socket in TIME_WAIT is reused; a listening one still fails the bind
    request_queue_size = 64      # many viewers connecting at once (a page opens two streams)
    timeout = 1.0                # handle_request's wait, after select() said a connection is there
    view: LiveView               # set by LiveView before the first connection is accepted

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        self.open_connections = 0
        self.count_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's full name, which can hang on a Pi without a network
        socketserver.TCPServer.server_bind(self)   # SO_REUSEADDR, bind, the address bound
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.count_lock:
            if self.open_connections >= self.view.max_clients + CONNECTION_SLACK:
                self.view.refused()
                return False
            self.open_connections += 1
            return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.count_lock:
                self.open_connections -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        with self.count_lock:
            self.view.handler_errors += 1   # mostly viewers that left mid-answer; never printed


def _host_allowed(bound: str, host_header: str | None) -> bool:
    """On a loopback address, only requests that name a loopback host (``Host: localhost:8000``,
    ``127.0.0.1``, ``[::1]``): a web page elsewhere cannot read the view through DNS rebinding. On any
    other address (``0.0.0.0``, a LAN address) every Host is served.

    >>> _host_allowed("127.0.0.1", "localhost:8000"), _host_allowed("127.0.0.1", "evil.example:8000")
    (True, False)
    >>> _host_allowed("0.0.0.0", "evil.example"), _host_allowed("::1", "[::1]:80")
    (True, True)
    """
    try:
        if not ipaddress.ip_address(bound).is_loopback:
            return True
    except ValueError:
        return True
    if not host_header:
        return True   # HTTP/1.0 clients send no Host; a browser always does
    name = host_header.strip()
    name = name[1:name.index("]")] if name.startswith("[") and "]" in name else name.rsplit(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    """One connection: routes GET and HEAD, answers everything else 405, errors as JSON."""

    server_version = "edge-digits-live"
    protocol_version = "HTTP/1.0"   # one request a connection: streams end by closing
    timeout = REQUEST_TIMEOUT_S

    @property
    def view(self) -> LiveView:
        return cast(_Server, self.server).view

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: serving must not change what ``run`` prints."""

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.command not in ("GET", "HEAD"):
            self._drain()
            self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not allowed here; "
                                                            "the live view answers GET and HEAD"},
                            (("Allow", "GET, HEAD"),))
            return False
        if not _host_allowed(self.view.host, self.headers.get("Host")):
            self._drain()
            self._send_json(HTTPStatus.MISDIRECTED_REQUEST, {
                "error": "this live view listens on the loopback address and answers only requests for "
                         "localhost; to watch from another machine start run with --http 0.0.0.0:PORT"})
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self._send_json(code, {"error": message or HTTPStatus(code).phrase})

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        view = self.view
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path[len("/static/"):])
        elif path == "/reading":
            body = view.reading_bytes()
            if body is None:
                self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame read yet; try again shortly"})
            else:
                self._send(HTTPStatus.OK, body, "application/json")
        elif path == "/frame.jpg":
            jpeg = view.latest_jpeg()
            if jpeg is None:
                self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame read yet; try again shortly"})
            else:
                self._send(HTTPStatus.OK, jpeg, "image/jpeg")
        elif path == "/stream.mjpg":
            self._stream("video", f"multipart/x-mixed-replace; boundary={BOUNDARY}", view.serve_video)
        elif path == "/events":
            self._stream("events", "text/event-stream", view.serve_events)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}; the live view is at /"})

    def _static(self, name: str) -> None:
        found = self.view.static.get(name)
        if found is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such file: {name}"})
            return
        body, ctype = found
        self._send(HTTPStatus.OK, body, ctype, _PAGE_HEADERS if ctype.startswith("text/html") else ())

    def _stream(self, kind: str, ctype: str, serve: Callable[[Callable[[bytes], object]], None]) -> None:
        view = self.view
        conn = self.connection
        if not view.join(kind, conn):
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"too many viewers (at most "
                                                             f"{view.max_clients} streams); try again later"})
            return
        try:
            conn.settimeout(view.send_timeout_s)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "GET":
                serve(self.wfile.write)
        except TimeoutError:
            view.dropped()
        except OSError:
            pass   # the viewer went away, or the view is closing
        finally:
            view.leave(kind, conn)

    def _send(self, status: int, body: bytes, ctype: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, value: object, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._send(status, _json_bytes(value), "application/json", headers)

    def _drain(self) -> None:
        """Read a refused request's body (up to 1 MiB), so that closing does not reset the connection."""
        try:
            length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            if length > 0:
                self.rfile.read(length)
        except (ValueError, OSError):
            pass


class LiveView:
    """The live web view, a ``RunObserver``: ``frame`` stores the newest frame, threads serve the viewers."""

    name = "live view"

    def __init__(self, server: _Server, host: str, max_fps: float, info: Mapping[str, object],
                 max_clients: int, static: dict[str, tuple[bytes, str]]) -> None:
        self.host = host
        self.port = int(server.server_address[1])
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"
        self.max_fps = max_fps
        self.max_clients = max_clients
        self.send_timeout_s = SEND_TIMEOUT_S
        self.static = static
        self.handler_errors = 0
        self._info = dict(info)
        self._server = server
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)   # idle /events clients wait here
        self._want_video = threading.Condition(self._lock)  # the encoder waits here, woken only when wanted
        self._new_jpeg = threading.Condition(self._lock)    # video clients and /frame.jpg wait here
        self._closed = threading.Event()
        self._figures = LiveViewFigures()
        self._latest: LiveFrame | None = None
        self._frame_seq = 0
        self._reading: tuple[int, bytes] = (0, b"")
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._jpeg_of = 0          # the frame the JPEG shows
        self._clients = {"video": 0, "events": 0}
        self._jpeg_requests = 0    # /frame.jpg requests waiting for the encoder
        self._connections: set[socket.socket] = set()
        server.view = self
        self._wake_r, self._wake_w = socket.socketpair()   # ends the accept loop without polling
        self._threads = [threading.Thread(target=self._accept_loop, name="live-view-server", daemon=True),
                         threading.Thread(target=self._encode_loop, name="live-view-encoder", daemon=True)]
        for thread in self._threads:
            thread.start()

    # the run loop's side

    def frame(self, live: LiveFrame) -> None:
        """Keep ``live`` as the newest frame and wake whoever waits for one; returns at once."""
        with self._lock:
            self._latest = live
            self._frame_seq += 1
            self._new_frame.notify_all()
            if self._clients["video"] or self._jpeg_requests:
                self._want_video.notify()

    def close(self) -> dict[str, object]:
        """Stop serving (listening socket, client streams, encoder) and say what the view did."""
        if not self._closed.is_set():
            self._closed.set()
            with self._lock:
                self._new_frame.notify_all()
                self._new_jpeg.notify_all()
                self._want_video.notify()
            self._wake_w.send(b"x")
            self._threads[0].join()
            self._server.server_close()
            self._wake_r.close()
            self._wake_w.close()
            with self._lock:
                streaming = list(self._connections)
            for connection in streaming:   # unblocks a send to a client that stopped reading
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            deadline = time.monotonic() + 2 * self.send_timeout_s
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            while self.streams() and time.monotonic() < deadline:
                time.sleep(0.02)
        return self.figures().as_dict()

    # what the handlers call

    def figures(self) -> LiveViewFigures:
        """A copy of the figures so far."""
        with self._lock:
            return dataclasses.replace(self._figures)

    def wants_display(self) -> bool:
        """The run loop asks the camera for its display stream only while someone watches the video."""
        with self._lock:
            return self._clients["video"] > 0

    def streams(self) -> int:
        """Streaming clients connected now."""
        with self._lock:
            return sum(self._clients.values())

    def join(self, kind: str, connection: socket.socket) -> bool:
        with self._lock:
            if self._closed.is_set() or sum(self._clients.values()) >= self.max_clients:
                self._figures.clients_refused += 1
                return False
            self._clients[kind] += 1
            self._connections.add(connection)
            self._figures.viewers += 1
            self._figures.peak_viewers = max(self._figures.peak_viewers, sum(self._clients.values()))
            if kind == "video":
                self._want_video.notify()   # the encoder starts
            return True

    def leave(self, kind: str, connection: socket.socket) -> None:
        with self._lock:
            self._clients[kind] -= 1
            self._connections.discard(connection)

    def dropped(self) -> None:
        with self._lock:
            self._figures.clients_dropped += 1

    def refused(self) -> None:
        with self._lock:
            self._figures.clients_refused += 1

    def reading_bytes(self) -> bytes | None:
        """The newest reading as JSON, built once per frame by whichever client asks first."""
        with self._lock:
            live, seq = self._latest, self._frame_seq
            if self._reading[0] == seq and seq:
                return self._reading[1]
        if live is None:
            return None
        body = _json_bytes(reading_payload(live, self._info))
        with self._lock:
            if seq > self._reading[0]:
                self._reading = (seq, body)
        return body

    def latest_jpeg(self, timeout: float = 2.0) -> bytes | None:
        """The newest frame as JPEG, encoded by the encoder thread if it has not been yet; None before any."""
        with self._lock:
            if self._latest is None:
                return None
            wanted = self._frame_seq
            if self._jpeg_of < wanted:
                self._jpeg_requests += 1
                self._want_video.notify()
                try:
                    self._new_jpeg.wait_for(lambda: self._jpeg_of >= wanted or self._closed.is_set(), timeout)
                finally:
                    self._jpeg_requests -= 1
            return self._jpeg

    def serve_video(self, write: Callable[[bytes], object]) -> None:
        """MJPEG parts to one client: each the newest JPEG, none twice, until the view closes."""
        with self._lock:
            stale = self._jpeg is None or self._jpeg_of < self._frame_seq
            sent = self._jpeg_seq if stale else self._jpeg_seq - 1
        while True:
            with self._lock:
                while self._jpeg_seq == sent and not self._closed.is_set():
                    self._new_jpeg.wait()
                if self._closed.is_set() or self._jpeg is None:
                    return
                sent, jpeg = self._jpeg_seq, self._jpeg
            write(b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                  % (BOUNDARY.encode(), len(jpeg), jpeg))

    def serve_events(self, write: Callable[[bytes], object]) -> None:
        """Server-Sent Events to one client: the newest reading when it changed, at most EVENTS_PER_S a
        second, and a keep-alive comment when nothing happened for KEEPALIVE_S."""
        write(b"retry: 2000\n: connected\n\n")
        sent, last_write = 0, time.monotonic()
        while not self._closed.is_set():
            with self._lock:
                if self._frame_seq == sent:
                    self._new_frame.wait(max(0.0, last_write + KEEPALIVE_S - time.monotonic()))
                seq = self._frame_seq
            if self._closed.is_set():
                return
            if seq != sent:
                body = self.reading_bytes()
                if body is not None:
                    write(b"event: reading\nid: %d\ndata: %s\n\n" % (seq, body))
                    with self._lock:
                        self._figures.events_sent += 1
                sent, last_write = seq, time.monotonic()
                self._closed.wait(1.0 / EVENTS_PER_S)
            elif time.monotonic() - last_write >= KEEPALIVE_S:
                write(b": keep-alive\n\n")
                last_write = time.monotonic()

    # the server's threads

    def _accept_loop(self) -> None:
        """Take connections until the view closes; each is answered in a thread of its own. It sleeps in
        select() between connections (``serve_forever`` wakes up to poll for its shutdown)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._server.socket and not self._closed.is_set():
                        self._server.handle_request()

    def _encode_loop(self) -> None:
        """Encode the newest frame while someone wants video, at most max_fps a second."""
        next_at = 0.0
        while True:
            with self._lock:
                while not self._closed.is_set() and not (
                        (self._clients["video"] or self._jpeg_requests) and self._frame_seq > self._jpeg_of):
                    self._want_video.wait()
                if self._closed.is_set():
                    return
                live, seq = self._latest, self._frame_seq
            assert live is not None   # frame_seq > 0: a frame was stored
            delay = next_at - time.monotonic()
            if delay > 0:
                self._closed.wait(delay)
                continue   # a newer frame may have come meanwhile
            next_at = time.monotonic() + 1.0 / self.max_fps
            jpeg = _encode(live)
            with self._lock:
                self._jpeg_of = seq
                if jpeg is not None:
                    self._jpeg, self._jpeg_seq = jpeg, self._jpeg_seq + 1
                    self._figures.video_frames_encoded += 1
                self._new_jpeg.notify_all()


def _encode(live: LiveFrame) -> bytes | None:
    """The annotated view as JPEG, scaled down to MAX_VIDEO_SIDE; None if OpenCV cannot encode it."""
    try:
        view = live.annotate()
        side = max(view.shape[:2])
        if side > MAX_VIDEO_SIDE:
            f = MAX_VIDEO_SIDE / side
            view = cv2.resize(view, (round(view.shape[1] * f), round(view.shape[0] * f)),
                              interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    except (cv2.error, ValueError):
        return None
    return buf.tobytes() if ok else None


def start_live_view(address: str, max_fps: float = 10.0, info: dict[str, object] | None = None,
                    max_clients: int = 64) -> LiveView:
    """Bind ``[HOST:]PORT`` now (errors before the run starts, as LiveViewError) and serve the view in
    background threads. Port 0 takes any free port (``view.port`` says which)."""
    if not max_fps > 0:
        raise LiveViewError(f"the live view's max_fps must be above 0, not {max_fps}")
    if max_clients < 1:
        raise LiveViewError(f"the live view's max_clients must be at least 1, not {max_clients}")
    host, port = parse_address(address)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise LiveViewError(f"--http {address}: cannot resolve the host {host!r} ({exc.strerror}); give an IP "
                            "address such as 127.0.0.1 or 0.0.0.0") from exc
    family, _, _, _, sockaddr = found[0]
    static = _load_static()
    try:
        server = _Server((str(sockaddr[0]), port), family)
    except OSError as exc:
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise LiveViewError(f"--http {address}: port {port} on {host} is in use (another edge-digits run?); "
                                "choose another port, or stop what holds it") from exc
        if exc.errno == errno.EACCES:
            raise LiveViewError(f"--http {address}: no permission to listen on {where} (ports below 1024 need "
                                "root); choose a port from 1024 up, e.g. 8080") from exc
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise LiveViewError(f"--http {address}: {host} is not an address of this machine; use 127.0.0.1, "
                                "0.0.0.0 (every interface) or one of this machine's addresses") from exc
        raise LiveViewError(f"--http {address}: cannot listen on {where}: {exc.strerror or exc}") from exc
    return LiveView(server, host, max_fps, info or {}, max_clients, static)
