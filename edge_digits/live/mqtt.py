"""``edge-digits run --mqtt mqtt://HOST[:PORT]/TOPIC``: each settled reading published to an MQTT broker.

:func:`start_publisher` checks the URL and the broker's host name (a wrong
one stops the run before its first frame), then starts paho-mqtt's network
thread, which connects in the background and reconnects with doubling waits
(1 s up to 30 s): a broker that is not up yet, or restarts, costs the
readings of the outage, never the run. :class:`MqttPublisher` is a run
observer: ``frame`` returns at once, putting a changed settled reading on a
bounded queue, or dropping and counting it when the queue is full or the
broker away; its own thread publishes the queue at QoS 1. Nothing is
buffered without bound (paho's own queue is bounded too). paho is imported
only when a publisher starts, so the Pi path runs without it.
"""

from __future__ import annotations

import ipaddress
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from edge_digits.vision.observe import LiveFrame
from edge_digits.vision.reader import Digit, FrameReading

DEFAULT_PORT = 1883
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30   # paho's back-off after a lost or failed connection (whole seconds)
KEEPALIVE_S = 30         # a broker that vanished without closing the socket is noticed within 1.5x this
FLUSH_TIMEOUT_S = 2.0    # close() waits at most this long for the queue to go out and be acknowledged
CONNECT_WAIT_S = 2.0     # start_publisher waits this long at most for the first answer, so a run's first readings
                         # are not dropped for want of a CONNACK; a broker that does not answer is only a warning
QOS = 1
_ERR_QUEUE_SIZE = 15     # paho's MQTT_ERR_QUEUE_SIZE: its own bounded queue is full, the message was not taken
_FORM = "mqtt://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC"
_UNINFORMATIVE = ("Unspecified error", "Success", "Normal disconnection", "None")   # paho's words for a lost socket


class MqttError(RuntimeError):
    """The MQTT publisher cannot start: a malformed URL, an unknown host, paho-mqtt missing."""


@dataclass(frozen=True)
class MqttTarget:
    """Where readings go: the broker's host and port, the topic, and the optional credentials."""

    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The target as a URL to show (with the user name, never the password)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{quote(self.username, safe='')}@" if self.username is not None else ""
        return f"mqtt://{user}{host}:{self.port}/{self.topic}"


def _shown(url: str) -> str:
    """The URL for an error message: a password in it replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostport}{slash}{path}"


def _split_host_port(hostport: str, problem: Callable[[str], MqttError]) -> tuple[str, int]:
    """HOST, HOST:PORT, [IPV6] or [IPV6]:PORT as host and port."""
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket:
            raise problem("an IPv6 address opened with [ is not closed with ]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise problem(f"[{host}] is not an IPv6 address") from exc
        if rest and not rest.startswith(":"):
            raise problem(f"unexpected {rest!r} after [{host}]")
        port_text = rest[1:] if rest else None
    elif hostport.count(":") > 1:
        raise problem(f"write an IPv6 address in brackets, e.g. mqtt://[{hostport}]:1883/TOPIC")
    else:
        host, colon, port_text_or_empty = hostport.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host:
        raise problem(f"no broker host: write {_FORM}")
    if port_text is None:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise problem(f"the port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _check_topic(topic: str, problem: Callable[[str], MqttError]) -> None:
    """A topic a reading can be published to: not empty, no wildcards, not the broker's own ($...)."""
    if not topic:
        raise problem("no topic: add one after the host, e.g. mqtt://HOST/edge-digits/readings")
    for wildcard in "+#":
        if wildcard in topic:
            raise problem(f"the topic {topic!r} has the wildcard {wildcard!r}: readings are published to one "
                          "topic (wildcards are for subscribers)")
    if topic.startswith("$"):
        raise problem(f"the topic {topic!r} starts with '$', which brokers keep for their own topics")
    if "\x00" in topic or len(topic.encode("utf-8")) > 65535:
        raise problem("the topic must be at most 65535 bytes of UTF-8 without NUL characters")


def parse_mqtt_url(url: str) -> MqttTarget:
    """The broker and topic of ``mqtt://[USER[:PASSWORD]@]HOST[:PORT]/TOPIC``; MqttError names what is wrong.

    The topic is everything after the host (it may hold ``/``); user,
    password and topic are percent-decoded (``%40`` for an ``@`` in a password).

    >>> parse_mqtt_url("mqtt://127.0.0.1/edge-digits/readings")
    MqttTarget(host='127.0.0.1', port=1883, topic='edge-digits/readings', username=None)
    >>> t = parse_mqtt_url("mqtt://pi:s%40cret@[::1]:1884/desk/1")
    >>> t.host, t.port, t.topic, t.username, t.password
    ('::1', 1884, 'desk/1', 'pi', 's@cret')
    >>> t.url
    'mqtt://pi@[::1]:1884/desk/1'
    >>> parse_mqtt_url("http://broker/readings")
    Traceback (most recent call last):
    ...
    edge_digits.live.mqtt.MqttError: MQTT URL 'http://broker/readings': the scheme must be mqtt://, not http://
    >>> parse_mqtt_url("mqtt://broker:99999/readings")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edge_digits.live.mqtt.MqttError: MQTT URL '...': the port '99999' is not a number from 1 to 65535
    >>> parse_mqtt_url("mqtt://broker/")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edge_digits.live.mqtt.MqttError: MQTT URL 'mqtt://broker/': no topic: add one after the host, ...
    >>> parse_mqtt_url("mqtt://broker/desk/#")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edge_digits.live.mqtt.MqttError: MQTT URL '...': the topic 'desk/#' has the wildcard '#': ...
    """

    def problem(what: str) -> MqttError:
        return MqttError(f"MQTT URL {_shown(url)!r}: {what}")

    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        raise problem(f"not a URL: write {_FORM}")
    if scheme.lower() != "mqtt":
        tls = " (TLS is not supported; use a broker's plain listener)" if scheme.lower() in ("mqtts", "ssl") else ""
        raise problem(f"the scheme must be mqtt://, not {scheme}://{tls}")
    netloc, _, raw_topic = rest.partition("/")
    if "?" in raw_topic:
        raise problem("a query (?...) is not understood: the topic is everything after the host")
    userinfo, at, hostport = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        if not user_text:
            raise problem("an empty user name before @")
        username = unquote(user_text)
        password = unquote(password_text) if colon else None
    host, port = _split_host_port(hostport, problem)
    topic = unquote(raw_topic)
    _check_topic(topic, problem)
    return MqttTarget(host, port, topic, username, password)


def _line_confidences(settled: list[str], reading: FrameReading) -> list[float | None]:
    """For each settled string, the lowest digit confidence of the frame's line that read that same string
    (each frame line vouches for one settled line, in reading order), else None."""
    by_line: dict[int, list[Digit]] = {}
    for d in reading.digits:
        by_line.setdefault(d.line, []).append(d)
    frame_lines = [("".join(str(d.label) for d in ds), min(d.confidence for d in ds))
                   for _, ds in sorted(by_line.items())]
    used: set[int] = set()
    out: list[float | None] = []
    for text in settled:
        match = next((j for j, (s, _) in enumerate(frame_lines) if j not in used and s == text), None)
        if match is None:
            out.append(None)
        else:
            used.add(match)
            out.append(round(frame_lines[match][1], 4))
    return out


def reading_payload(source: str, live: LiveFrame) -> dict[str, object]:
    """The message for one frame: its settled lines with their confidences, and the frame's own lines.

    ``lines`` are the settled strings (the frame's own on image files),
    each with the lowest digit confidence of this frame's reading of that
    string, or None when this frame read the line otherwise.
    """
    settled = live.shown
    stamp, index = live.record.get("time"), live.record.get("frame")
    return {"source": source,
            "time": stamp if isinstance(stamp, (int, float)) else round(time.time(), 3),
            "frame": index if isinstance(index, int) else None,
            "lines": [{"text": text, "confidence": conf}
                      for text, conf in zip(settled, _line_confidences(settled, live.reading))],
            "frame_lines": list(live.reading.lines)}


def _failed(reason_code: object) -> bool:
    """Whether a paho reason code (a ReasonCode, or an int from older callers and fakes) is a failure."""
    flag = getattr(reason_code, "is_failure", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(reason_code, int) and reason_code != 0


class MqttPublisher:
    """A run observer that publishes each change of the settled reading to one MQTT topic (QoS 1).

    ``frame`` never blocks: a changed reading goes on a bounded queue, or is
    dropped and counted when the queue is full or the broker is away. A
    thread of its own publishes the queue; paho's network thread connects
    and reconnects. ``close`` returns ``published`` (acknowledged by the
    broker), ``dropped`` (every other changed reading, so the two add up to
    the changes) and ``reconnects``.
    """

    name: str = "mqtt"

    def __init__(self, target: MqttTarget, source: str, client: Any, queue_size: int = 1000,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.target, self.source = target, source
        self._client = client
        self._queue_size = queue_size
        self._queue: queue.Queue[dict[str, object] | None] = queue.Queue(queue_size)
        self._warn = on_warning or (lambda msg: None)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._answered = threading.Event()   # the first connection attempt ended, one way or the other
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, name="mqtt-publisher", daemon=True)
        self._last: list[str] | None = None
        self._offered = self._published = self._handed = self._dropped = self._reconnects = 0
        self._ever_connected = False
        self._away_warned = False    # one warning per outage, not one per retry
        self._full_warned = False
        self._figures: dict[str, object] | None = None

    def describe(self) -> str:
        """Where readings go, e.g. ``mqtt://127.0.0.1:1883/edge-digits/readings``."""
        return self.target.url

    def start(self) -> None:
        """Configure the client, connect in the background (paho's thread) and start the publisher thread."""
        c = self._client
        if self.target.username is not None:
            c.username_pw_set(self.target.username, self.target.password)
        c.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        c.max_queued_messages_set(self._queue_size)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.connect_async(self.target.host, self.target.port, keepalive=KEEPALIVE_S)
        c.loop_start()
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the first connection attempt ended (at most ``timeout`` seconds); whether it connected."""
        self._answered.wait(timeout)
        return self._connected.is_set()

    # paho's callbacks, called from its network thread

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        self._answered.set()
        if _failed(reason_code):
            self._away(f"the MQTT broker at {self.describe()} refused the connection ({reason_code}); check the "
                       "user and password in the URL. Retrying in the background")
            return
        with self._lock:
            again = self._ever_connected
            if again:
                self._reconnects += 1
            self._ever_connected = True
            dropped = self._dropped
        self._connected.set()
        if again or self._away_warned:
            self._warn(f"connected to the MQTT broker at {self.describe()}{' again' if again else ''} "
                       f"(readings dropped so far: {dropped})")
        self._away_warned = False

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._connected.clear()
        self._answered.set()
        self._away(f"cannot reach the MQTT broker at {self.describe()}; retrying in the background (waits of "
                   f"{RECONNECT_MIN_S} s doubling up to {RECONNECT_MAX_S} s), settled readings are dropped meanwhile")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        self._connected.clear()
        if not self._closing.is_set():
            why = "" if str(reason_code) in _UNINFORMATIVE else f" ({reason_code})"
            self._away(f"lost the connection to the MQTT broker at {self.describe()}{why}; reconnecting in the "
                       f"background (waits of {RECONNECT_MIN_S} s doubling up to {RECONNECT_MAX_S} s), settled "
                       "readings are dropped meanwhile")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any = None,
                    properties: Any = None) -> None:
        if not _failed(reason_code):
            with self._lock:
                self._published += 1

    def _away(self, message: str) -> None:
        if not self._away_warned:
            self._away_warned = True
            self._warn(message)

    # the run loop's side

    def _drop(self) -> None:
        with self._lock:
            self._dropped += 1

    def wants_display(self) -> bool:
        """Readings only: the camera's display stream is never needed."""
        return False

    def frame(self, live: LiveFrame) -> None:
        """Queue the settled reading when it changed; drop and count it when the queue is full or the broker
        away. Returns at once."""
        settled = live.shown
        if settled == self._last or self._closing.is_set():
            return
        self._last = list(settled)
        with self._lock:
            self._offered += 1
        if not self._connected.is_set():
            self._drop()
            return
        try:
            self._queue.put_nowait(reading_payload(self.source, live))
        except queue.Full:
            self._drop()
            if not self._full_warned:
                self._full_warned = True
                self._warn(f"the MQTT broker at {self.describe()} is not keeping up: the queue of "
                           f"{self._queue_size} readings is full, new readings are dropped")

    def _publish_loop(self) -> None:
        """The publisher thread: take messages off the queue and hand them to paho until the sentinel."""
        while True:
            message = self._queue.get()
            if message is None:
                return
            if not self._connected.is_set():
                self._drop()
                continue
            payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
            try:
                info = self._client.publish(self.target.topic, payload, qos=QOS)
            except Exception as exc:   # a thread that died would silently drop every later reading
                self._drop()
                self._warn(f"publishing to {self.describe()} failed: {exc}")
                continue
            if getattr(info, "rc", 0) == _ERR_QUEUE_SIZE:
                self._drop()
            else:   # paho holds it until the broker acknowledges it, across a reconnection too
                with self._lock:
                    self._handed += 1

    def close(self) -> dict[str, object]:
        """Flush what can go out within ``FLUSH_TIMEOUT_S``, disconnect, stop paho's thread; the run's figures.

        A reading handed to paho but not acknowledged by then counts as
        dropped: ``published + dropped`` is the number of changes seen.
        Safe to call twice.
        """
        if self._figures is not None:
            return self._figures
        self._closing.set()
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        try:
            self._queue.put(None, timeout=FLUSH_TIMEOUT_S)
        except queue.Full:
            pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():   # stuck in a publish that does not return: empty the queue, so that the
            self._empty_queue()       # thread ends when the publish does (it is a daemon meanwhile)
        while self._connected.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self._published >= self._handed:
                    break
            time.sleep(0.02)
        self._stop_client(max(0.5, deadline - time.monotonic()))
        with self._lock:
            self._figures = {"published": self._published, "dropped": self._offered - self._published,
                             "reconnects": self._reconnects}
        return self._figures

    def _empty_queue(self) -> None:
        """Leave only the sentinel on the queue (what was on it counts as dropped)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(None)

    def _stop_client(self, timeout: float) -> None:
        """Disconnect and stop paho's thread, waiting at most ``timeout`` (loop_stop itself has no limit)."""
        try:
            self._client.disconnect()
        except Exception:   # closing must finish whatever state the client is in
            pass
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)


def _paho_client() -> Any:
    """A paho-mqtt client (MQTT 3.1.1, a clean session, a client id of its own), or MqttError without paho."""
    try:
        from paho.mqtt import client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
    except ImportError as exc:
        raise MqttError("paho-mqtt is not installed: pip install 'edge-digits[mqtt]'") from exc
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-digits-{uuid.uuid4().hex[:8]}",
                       protocol=mqtt.MQTTv311)


def start_publisher(url: str, source: str, queue_size: int = 1000, on_warning: Callable[[str], None] | None = None,
                    client_factory: Callable[[], Any] | None = None) -> MqttPublisher:
    """A started publisher of the settled readings of ``source`` to ``url`` (``mqtt://HOST[:PORT]/TOPIC``).

    A malformed URL, a host name that does not resolve or a missing
    paho-mqtt is an MqttError here, before the run reads a frame; a broker
    that does not answer yet is a warning (``on_warning``), and paho keeps
    trying. It waits up to ``CONNECT_WAIT_S`` for the broker's first answer,
    so that the run's first readings find it connected. ``client_factory`` makes the client (a paho ``Client`` unless
    given, e.g. a fake in tests).
    """
    target = parse_mqtt_url(url)
    if queue_size < 1:
        raise MqttError(f"the MQTT queue must hold at least 1 reading, not {queue_size}")
    client = (client_factory or _paho_client)()
    try:
        socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise MqttError(f"cannot find the MQTT broker's host {target.host!r} ({reason}); check the host in "
                        f"{target.url}") from exc
    publisher = MqttPublisher(target, source, client, queue_size, on_warning)
    publisher.start()
    publisher.wait_connected(CONNECT_WAIT_S)
    return publisher
