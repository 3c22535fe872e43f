"""HTTP/1.1 on ``asyncio.Protocol``: requests parsed in order from one connection, answered in order.

Keep-alive, pipelining, ``Expect: 100-continue``, and strict limits on head
size, header count and body size; a malformed request gets a 4xx JSON
``{"error": ...}``. What to answer comes from a ``Handler`` (the app)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from edge_digits.serve.config import Limits

REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
           422: "Unprocessable Content", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}
_LENGTH = re.compile(r"[0-9]{1,15}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HttpError(Exception):
    """A request the server answers with ``status`` and a JSON error message."""

    def __init__(self, status: int, message: str, close: bool = False,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
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
    headers: tuple[tuple[str, str], ...] = ()


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode())


def error_response(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, json.dumps({"error": message}).encode(), headers=headers)


class Handler(Protocol):
    """What a connection needs from the application behind it."""

    limits: Limits

    def handle(self, req: Request) -> Response | asyncio.Future[Response]: ...

    def record(self, route: str, status: int, t0: float) -> None: ...

    def connection_count(self, delta: int) -> None: ...


def encode_response(resp: Response, keep_alive: bool) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in resp.headers)
    if not keep_alive:
        extra += "Connection: close\r\n"
    head = (f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}\r\nServer: edge-digits\r\n"
            f"Content-Type: {resp.content_type}\r\nContent-Length: {len(resp.body)}\r\n{extra}\r\n")
    return head.encode("latin-1") + resp.body


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests in order, answer each, keep the connection alive."""

    def __init__(self, app: Handler, conns: set[HttpConnection]) -> None:
        self.app, self.limits, self.conns = app, app.limits, conns
        self.buf = bytearray()
        # (method, path, headers, length, keep_alive, t0) while the body arrives
        self.head: tuple[str, str, dict[str, str], int, bool, float] | None = None
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
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # a stream server's connections get a Transport
        self.conns.add(self)
        self.app.connection_count(+1)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.conns.discard(self)
        self.app.connection_count(-1)

    def pause_writing(self) -> None:
        # the client does not read its answers: stop reading its requests until it does
        self.write_paused = True
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.paused:
            assert self.transport is not None
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
            assert self.transport is not None
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
            assert self.transport is not None
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
                assert self.head is not None   # set by _parse_head
                method, path, headers, length, keep_alive, t0 = self.head
                route = path
                if len(self.buf) < length:
                    if (not self.sent_continue and headers.get("expect", "").lower() == "100-continue"):
                        self.sent_continue = True
                        assert self.transport is not None
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
                result.add_done_callback(cast("Callable[[asyncio.Future[Response]], object]",
                                              lambda fut, req=req: self._finished(req, fut)))
        if self.paused and not self.busy and len(self.buf) <= self.limits.max_body_bytes:
            self.paused = False
            if not self.write_paused:
                assert self.transport is not None
                self.transport.resume_reading()

    def _finished(self, req: Request, fut: asyncio.Future[Response]) -> None:
        self.busy = False
        if fut.cancelled():
            resp = error_response(503, "the server is shutting down")
        elif isinstance(exc := fut.exception(), HttpError):
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
            assert self.transport is not None
            self.transport.close()
        elif self.buf and not self.closed:
            self._process()
        elif self.paused:
            self.paused = False
            if not self.write_paused:
                assert self.transport is not None
                self.transport.resume_reading()

    def _send(self, req: Request, resp: Response) -> None:
        self.app.record(req.path, resp.status, req.t0)
        assert self.transport is not None
        self.transport.write(encode_response(resp, req.keep_alive))
        if not req.keep_alive:
            self.closed = True
            self.transport.close()

    def _fail(self, exc: HttpError, route: str, t0: float) -> None:
        self.app.record(route, exc.status, t0)
        resp = error_response(exc.status, exc.message, exc.headers)
        assert self.transport is not None
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
