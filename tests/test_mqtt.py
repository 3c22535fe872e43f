"""`edge-digits run --mqtt`: the URL, the payload, a publisher that never blocks the run, and real runs publishing
to a real Mosquitto broker that the tests start, stop and restart (skipped without mosquitto or paho-mqtt,
except in CI, where that fails)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.live import mqtt
from edge_digits.live.mqtt import MqttError, MqttTarget, parse_mqtt_url, reading_payload, start_publisher
from edge_digits.vision.observe import LiveFrame
from edge_digits.vision.reader import Digit, FrameReading
from edge_digits.vision.segment import Box

MOSQUITTO = Path("/usr/sbin/mosquitto")
TOPIC = "edge-digits/test"
FRAME_LINE = re.compile(r"^frame (\d+): (.*?)  \[")
SUMMARY = re.compile(r"^mqtt: published (\d+), dropped (\d+), reconnects (\d+)$")


def _require(mosquitto: bool = True) -> None:
    """Skip without paho-mqtt (and mosquitto, when asked); in CI (``$CI`` set) a missing one fails."""
    missing = [name for name, here in (("paho-mqtt (the [mqtt] extra)", importlib.util.find_spec("paho") is not None),
                                       (f"mosquitto ({MOSQUITTO})", not mosquitto or MOSQUITTO.exists())) if not here]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{' and '.join(missing)} missing in CI: make setup installs them")
        pytest.skip(f"{' and '.join(missing)} not installed (make setup installs them)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A real Mosquitto broker on a free loopback port, that a test can stop and start again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    _require()
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Subscriber:
    """A paho subscriber to TOPIC: every message with the time it came; it resubscribes after a reconnection."""

    def __init__(self, port: int) -> None:
        from paho.mqtt import client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.subscriptions = 0
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-digits-test-{uuid.uuid4().hex[:8]}")
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, userdata, flags, rc, props: client.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda client, userdata, msg: self.messages.append(
            (time.monotonic(), json.loads(msg.payload.decode("utf-8"))))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the test's subscriber did not get its subscription"

    def _on_subscribe(self, *args: object) -> None:
        self.subscriptions += 1
        self._subscribed.set()

    def wait_for(self, frame: int, timeout: float = 10) -> None:
        """Wait until the message of ``frame`` came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and all(m["frame"] != frame for _, m in self.messages):
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    try:
        yield sub
    finally:
        sub.close()


@dataclass(frozen=True)
class Change:
    """A change of the settled reading as the run printed it: when the line came, its frame, its strings."""

    t: float
    frame: int
    lines: list[str]


class CliRun:
    """A real `edge-digits run` in a subprocess; its stdout and stderr lines, each with the time it came."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_digits", "run", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[tuple[float, str]]) -> None:
        for line in stream:
            into.append((time.monotonic(), line.rstrip("\n")))

    def wait(self, timeout: float = 120) -> int:
        rc = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return rc

    def wait_for_frame(self, frame: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any((m := FRAME_LINE.match(line)) and int(m[1]) >= frame for _, line in self.out):
                return
            time.sleep(0.02)
        raise AssertionError(f"the run did not reach frame {frame}: {self.stderr}")

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.err)

    def frame_times(self) -> list[float]:
        return [t for t, line in self.out if FRAME_LINE.match(line)]

    def changes(self) -> list[Change]:
        """The distinct settled readings the run printed, in order (``(no digits)``: none)."""
        out: list[Change] = []
        for t, line in self.out:
            m = FRAME_LINE.match(line)
            if m is None:
                continue
            lines = [] if m[2] == "(no digits)" else m[2].split(" ")
            if not out or out[-1].lines != lines:
                out.append(Change(t, int(m[1]), lines))
        return out

    def figures(self) -> dict[str, int]:
        """``mqtt: published N, dropped M, reconnects K`` from the run's summary."""
        found = [m for _, line in self.err if (m := SUMMARY.match(line))]
        assert len(found) == 1, self.stderr
        return {"published": int(found[0][1]), "dropped": int(found[0][2]), "reconnects": int(found[0][3])}


def _texts(message: dict[str, Any]) -> list[str]:
    return [line["text"] for line in message["lines"]]


# --- the URL ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, target", [
    ("mqtt://127.0.0.1/edge-digits/readings", MqttTarget("127.0.0.1", 1883, "edge-digits/readings")),
    ("mqtt://broker.local:1884/desk", MqttTarget("broker.local", 1884, "desk")),
    ("MQTT://pi:s%40cret@broker:1/a/b/c", MqttTarget("broker", 1, "a/b/c", "pi", "s@cret")),
    ("mqtt://reader@broker/t", MqttTarget("broker", 1883, "t", "reader")),
    ("mqtt://[::1]/t", MqttTarget("::1", 1883, "t")),
    ("mqtt://[fe80::1]:65535/desk/2", MqttTarget("fe80::1", 65535, "desk/2")),
    ("mqtt://h/with%20space", MqttTarget("h", 1883, "with space")),
])
def test_good_urls(url: str, target: MqttTarget) -> None:
    assert parse_mqtt_url(url) == target


@pytest.mark.parametrize("url, message", [
    ("http://x/t", "the scheme must be mqtt://, not http://"),
    ("mqtts://x/t", "TLS is not supported"),
    ("127.0.0.1/t", "not a URL: write mqtt://"),
    ("mqtt:///t", "no broker host"),
    ("mqtt://:1883/t", "no broker host"),
    ("mqtt://x:0/t", "the port '0' is not a number from 1 to 65535"),
    ("mqtt://127.0.0.1:99999/t", "the port '99999' is not a number from 1 to 65535"),
    ("mqtt://x:abc/t", "the port 'abc' is not a number"),
    ("mqtt://x:/t", "the port '' is not a number"),
    ("mqtt://127.0.0.1/", "no topic: add one after the host"),
    ("mqtt://127.0.0.1", "no topic"),
    ("mqtt://x/desk/+/readings", "the topic 'desk/+/readings' has the wildcard '+'"),
    ("mqtt://x/desk/#", "the topic 'desk/#' has the wildcard '#'"),
    ("mqtt://x/desk/%23", "has the wildcard '#'"),
    ("mqtt://x/$SYS/mine", "starts with '$'"),
    ("mqtt://x/t?qos=1", "a query (?...) is not understood"),
    ("mqtt://::1/t", "write an IPv6 address in brackets"),
    ("mqtt://[::1/t", "is not closed with ]"),
    ("mqtt://[zz]/t", "[zz] is not an IPv6 address"),
    ("mqtt://@x/t", "an empty user name"),
])
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(MqttError, match=re.escape(message)):
        parse_mqtt_url(url)


def test_a_password_never_shows() -> None:
    target = parse_mqtt_url("mqtt://pi:hunter2@broker/t")
    assert "hunter2" not in repr(target) and "hunter2" not in target.url
    with pytest.raises(MqttError) as info:
        parse_mqtt_url("mqtt://pi:hunter2@broker:x/t")
    assert "hunter2" not in str(info.value) and "pi:***@broker:x" in str(info.value)


def test_without_paho_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paho", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt", None)
    with pytest.raises(MqttError, match=re.escape("paho-mqtt is not installed: pip install 'edge-digits[mqtt]'")):
        start_publisher("mqtt://127.0.0.1/t", "test")


# --- the payload and a publisher that never blocks ---------------------------------------------------------------

def _digit(label: int, confidence: float, line: int, x: int) -> Digit:
    return Digit(Box(x, 10 + 40 * line, 20, 30), label, confidence, line)


def _live(index: int, stable: list[str] | None, digits: list[Digit] | None = None) -> LiveFrame:
    digits = digits or []
    lines: dict[int, str] = {}
    for d in digits:
        lines[d.line] = lines.get(d.line, "") + str(d.label)
    reading = FrameReading([lines[k] for k in sorted(lines)], digits, 0)
    record: dict[str, object] = {"frame": index, "time": round(time.time(), 3)}
    return LiveFrame(np.zeros((8, 8), np.uint8), None, reading, stable, record, 20.0)


def test_a_line_carries_the_lowest_confidence_of_the_frame_line_that_read_it() -> None:
    digits = [_digit(1, 0.99, 0, 0), _digit(2, 0.71, 0, 25), _digit(3, 0.9, 1, 0), _digit(4, 0.8, 1, 25)]
    payload = reading_payload("demo:0", _live(7, ["12", "35"], digits))
    assert payload["lines"] == [{"text": "12", "confidence": 0.71}, {"text": "35", "confidence": None}]
    assert payload["frame_lines"] == ["12", "34"] and payload["frame"] == 7 and payload["source"] == "demo:0"
    files = reading_payload("images", _live(0, None, digits))   # image files: the frame's own lines
    assert files["lines"] == [{"text": "12", "confidence": 0.71}, {"text": "34", "confidence": 0.8}]
    json.dumps(payload)


class BlockingClient:
    """Follows the paho Client methods the publisher uses; it connects at once, and its publish blocks until
    ``release`` is set (a broker that stopped taking messages), then is acknowledged."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.published = 0
        self.on_connect: Callable[..., None] | None = None
        self.on_connect_fail: Callable[..., None] | None = None
        self.on_disconnect: Callable[..., None] | None = None
        self.on_publish: Callable[..., None] | None = None
        self.delays: tuple[int, int] | None = None

    def username_pw_set(self, username: str, password: str | None) -> None: ...

    def reconnect_delay_set(self, min_delay: int, max_delay: int) -> None:
        self.delays = (min_delay, max_delay)

    def max_queued_messages_set(self, size: int) -> None: ...

    def connect_async(self, host: str, port: int, keepalive: int = 60) -> None: ...

    def loop_start(self) -> None:
        assert self.on_connect is not None
        self.on_connect(self, None, None, 0, None)

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> SimpleNamespace:
        self.published += 1
        self.release.wait()
        assert self.on_publish is not None
        self.on_publish(self, None, self.published, 0, None)
        return SimpleNamespace(rc=0, mid=self.published)

    def disconnect(self) -> None: ...

    def loop_stop(self) -> None: ...


def test_frame_never_blocks_and_counts_what_it_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt, "FLUSH_TIMEOUT_S", 0.5)
    client = BlockingClient()
    warnings: list[str] = []
    publisher = start_publisher("mqtt://127.0.0.1/t", "test", queue_size=5, on_warning=warnings.append,
                                client_factory=lambda: client)
    try:
        assert client.delays == (mqtt.RECONNECT_MIN_S, mqtt.RECONNECT_MAX_S)
        worst, t0 = 0.0, time.perf_counter()
        for i in range(2000):
            t = time.perf_counter()
            publisher.frame(_live(i, [f"{i:04d}"]))
            worst = max(worst, time.perf_counter() - t)
        total = time.perf_counter() - t0
        assert worst < 0.05 and total < 1.0, (worst, total)
        assert client.published == 1   # one publish in hand, blocked; five on the queue; the rest dropped
        assert any("not keeping up" in w for w in warnings)
        t = time.perf_counter()
        figures = publisher.close()
        assert time.perf_counter() - t < mqtt.FLUSH_TIMEOUT_S + 1.5
        assert figures == {"published": 0, "dropped": 2000, "reconnects": 0}
        assert publisher.close() == figures
    finally:
        client.release.set()


def test_an_unchanged_reading_is_not_sent_again() -> None:
    client = BlockingClient()
    client.release.set()
    publisher = start_publisher("mqtt://127.0.0.1/t", "test", client_factory=lambda: client)
    for i, lines in enumerate([[], [], ["1"], ["1"], ["1", "2"], ["1"], ["1"]]):
        publisher.frame(_live(i, lines))
    figures = publisher.close()
    assert client.published == 4 and figures == {"published": 4, "dropped": 0, "reconnects": 0}
    assert publisher.describe() == "mqtt://127.0.0.1:1883/t"


# --- a real broker ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("http://x/t", "the scheme must be mqtt://, not http://"),
    ("mqtt://127.0.0.1/", "no topic"),
    ("mqtt://127.0.0.1:99999/t", "the port '99999' is not a number from 1 to 65535"),
    ("mqtt://no-such-host.invalid/t", "cannot find the MQTT broker's host 'no-such-host.invalid'"),
])
def test_a_wrong_url_stops_the_run_before_its_first_frame(url: str, message: str) -> None:
    _require(mosquitto=False)
    result = CliRunner().invoke(main, ["run", "--mqtt", url, "--demo-frames", "5"])
    assert result.exit_code == 1, result.output
    assert f"Error: MQTT URL '{url}': {message}" in result.output or f"Error: {message}" in result.output
    assert "frame 0" not in result.output and "done:" not in result.output


@pytest.mark.slow   # paho's first retry comes 3 s after the first failure
def test_a_broker_that_is_not_up_yet_is_a_warning_then_it_connects(tmp_path: Path) -> None:
    _require()
    broker = Broker(tmp_path)
    warnings: list[str] = []
    publisher = start_publisher(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", "test", on_warning=warnings.append)
    try:
        assert len(warnings) == 1 and "cannot reach the MQTT broker" in warnings[0], warnings
        publisher.frame(_live(0, ["1"]))   # dropped: nobody to take it
        broker.start()
        assert publisher.wait_connected(0) or _eventually(lambda: publisher.wait_connected(0), 10)
        sub = Subscriber(broker.port)
        publisher.frame(_live(1, ["12"]))
        sub.wait_for(1)
        assert [m["frame"] for _, m in sub.messages] == [1]
        sub.close()
        assert "connected to the MQTT broker" in warnings[-1] and "readings dropped so far: 1" in warnings[-1]
    finally:
        figures = publisher.close()
        broker.stop()
    assert figures == {"published": 1, "dropped": 1, "reconnects": 0}


def _eventually(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_a_run_publishes_each_settled_reading(broker: Broker, subscriber: Subscriber) -> None:
    run = CliRun("--mqtt", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", "--max-fps", "20", "--demo-frames", "80")
    assert run.wait() == 0, run.stderr
    changes = run.changes()
    assert len(changes) >= 5
    assert f"mqtt: publishing settled readings to mqtt://127.0.0.1:{broker.port}/{TOPIC}" in run.stderr
    assert run.figures() == {"published": len(changes), "dropped": 0, "reconnects": 0}
    subscriber.wait_for(changes[-1].frame)
    received = [m for _, m in subscriber.messages]
    assert [m["frame"] for m in received] == [c.frame for c in changes]
    assert [_texts(m) for m in received] == [c.lines for c in changes]
    for m in received:
        assert m["source"] == "demo:0" and abs(m["time"] - time.time()) < 600
        assert all(isinstance(s, str) for s in m["frame_lines"])
        assert all(c is None or 0 < c <= 1 for c in (line["confidence"] for line in m["lines"]))
    assert any(line["confidence"] is not None for m in received for line in m["lines"])


@pytest.mark.slow
def test_a_broker_restart_costs_only_the_readings_of_the_outage(broker: Broker, subscriber: Subscriber) -> None:
    frames, fps = 300, 20
    run = CliRun("--mqtt", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", "--max-fps", str(fps),
                 "--demo-frames", str(frames))
    run.wait_for_frame(60)
    broker.stop()
    stopped = time.monotonic()
    time.sleep(2)
    broker.start()
    restarted = time.monotonic()
    assert run.wait() == 0, run.stderr
    changes = run.changes()
    figures = run.figures()
    assert figures["published"] + figures["dropped"] == len(changes)
    assert figures["reconnects"] >= 1
    back = [t for t, line in run.err if "connected to the MQTT broker" in line and "again" in line]
    assert back and back[0] > restarted, run.stderr
    during = [c for c in changes if stopped - 0.3 <= c.t <= back[0] + 0.3]
    assert figures["dropped"] <= len(during), (figures, len(during))
    subscriber.wait_for(changes[-1].frame)
    texts = {c.frame: c.lines for c in changes}
    received = {m["frame"]: m for _, m in subscriber.messages}   # by frame: a resent message may come twice
    assert all(_texts(m) == texts[f] for f, m in received.items())
    assert any(t > restarted for t, _ in subscriber.messages)   # readings arrive again after the restart
    times = run.frame_times()   # the run went on at its pace through the outage
    assert len(times) == frames
    assert max(b - a for a, b in zip(times, times[1:])) < 1.5
    assert times[-1] - times[0] < 1.5 * frames / fps
