"""The device protocol: Python framing, the C parser against it, the fuzzer, and the retrying client."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_digits.firmware import device
from edge_digits.firmware import protocol as proto

ROOT = Path(__file__).resolve().parents[1]
COMMON = ROOT / "edge_digits" / "firmware" / "csrc" / "common"   # the firmware's sources, package data
HOST = ROOT / "firmware" / "host"


def test_frame_round_trip_and_noise() -> None:
    frames = proto.encode(proto.INFO) + proto.encode(proto.INFER, bytes(range(200)) * 3)
    reader = proto.FrameReader()
    got = []
    for i in range(0, len(b"\x00\xff" + frames), 7):
        got += reader.feed((b"\x00\xff" + frames)[i:i + 7])
    assert [f.command for f in got] == [proto.INFO, proto.INFER]
    assert got[1].payload == bytes(range(200)) * 3


def test_reader_drops_bad_crc_and_oversized_headers() -> None:
    bad = bytearray(proto.encode(proto.INFO, b"x"))
    bad[-1] ^= 0xFF
    oversized = b"\xed\x1a\x02\xff\xff"
    frames = proto.FrameReader().feed(bytes(bad) + oversized + proto.encode(proto.BENCH, b"\x02\x00"))
    assert [(f.command, f.payload) for f in frames] == [(proto.BENCH, b"\x02\x00")]


def test_payload_limit() -> None:
    with pytest.raises(ValueError, match="over the 1024-byte limit"):
        proto.encode(proto.INFER, bytes(1025))


@pytest.fixture(scope="module")
def proto_feed(tmp_path_factory) -> Path:
    """The C parser built for the host with sanitizers, reading bytes on stdin."""
    exe = tmp_path_factory.mktemp("proto") / "proto_feed"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-g", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{COMMON}", str(HOST / "proto_feed.c"),
                    str(COMMON / "ed_proto.c"), "-o", str(exe)], check=True)
    return exe


def _feed(exe: Path, data: bytes) -> list[str]:
    run = subprocess.run([str(exe)], input=data, capture_output=True, check=True)
    return run.stdout.decode().splitlines()


def test_c_parser_accepts_python_frames(proto_feed: Path) -> None:
    image = np.arange(784, dtype=np.int64).astype(np.int8).tobytes()
    data = proto.encode(proto.INFO) + proto.encode(proto.INFER, image) + proto.encode(proto.BENCH, b"\x10\x00")
    lines = _feed(proto_feed, b"noise\xed" + data)
    assert lines == ["frame 1 0 ", f"frame 2 784 {image.hex()}", "frame 3 2 1000"]


def test_c_parser_reports_bad_crc_and_too_long_then_recovers(proto_feed: Path) -> None:
    bad = bytearray(proto.encode(proto.INFER, b"\x01\x02"))
    bad[-2] ^= 0x55
    too_long = b"\xed\x1a\x02" + struct.pack("<H", 4000)
    lines = _feed(proto_feed, bytes(bad) + too_long + proto.encode(proto.INFO))
    assert lines == ["error 1", "error 2", "frame 1 0 "]


def test_crc_matches_between_c_and_python(proto_feed: Path) -> None:
    rng = np.random.default_rng(3)
    for size in (0, 1, 17, 1024):
        payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert _feed(proto_feed, proto.encode(0x42, payload)) == [f"frame 66 {size} {payload.hex()}"]


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is installed by `make setup-system`")
@pytest.mark.slow
def test_fuzz_the_parser_for_a_bounded_time(tmp_path: Path) -> None:
    exe = tmp_path / "fuzz_proto"
    subprocess.run(["clang", "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
                    f"-I{COMMON}", str(HOST / "fuzz_proto.c"), str(COMMON / "ed_proto.c"), "-o", str(exe)],
                   check=True)
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "firmware" / "fuzz" / "corpus", corpus)
    run = subprocess.run([str(exe), str(corpus), "-max_total_time=15", "-max_len=2100", "-print_final_stats=1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    executed = [line for line in run.stderr.splitlines() if "stat::number_of_executed_units" in line]
    assert executed and int(executed[0].split(":")[-1]) > 10000


class FakeFirmware:
    """A Port that answers like the firmware, with faults injected on chosen requests."""

    def __init__(self, drop: set[int] = frozenset(), corrupt: set[int] = frozenset(), silent: bool = False) -> None:
        self.drop, self.corrupt, self.silent = drop, corrupt, silent
        self.requests = 0
        self.pending = b""
        self.reader = proto.FrameReader()

    def write(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            self.requests += 1
            if self.silent or self.requests in self.drop:
                continue
            reply = self._answer(frame)
            if self.requests in self.corrupt:
                reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
            self.pending += b"\x00garbage" + reply

    def _answer(self, frame: proto.Frame) -> bytes:
        if frame.command == proto.INFO:
            return proto.encode(proto.INFO | proto.RESPONSE, b'{"board":"fake","clock_hz":1000000}')
        if frame.command == proto.INFER and len(frame.payload) == 784:
            scores = np.full(10, -128, np.int8)
            label = int(np.frombuffer(frame.payload, np.int8).astype(int).sum()) % 10
            scores[label] = 127
            payload = bytes([label]) + scores.tobytes() + struct.pack("<I", 5000)
            return proto.encode(proto.INFER | proto.RESPONSE, payload)
        return proto.encode(proto.ERROR, b"\x04unknown command")

    def read(self, timeout: float) -> bytes:
        data, self.pending = self.pending, b""
        return data

    def close(self) -> None:
        pass


def test_client_retries_lost_and_corrupt_replies() -> None:
    fake = FakeFirmware(drop={2}, corrupt={4})
    client = device.DeviceClient(fake, timeout=0.05, retries=2)
    assert client.info()["board"] == "fake"
    image = np.ones(784, np.int8)
    first = client.infer(image)
    second = client.infer(image)
    assert first.label == second.label == 784 % 10 and first.cycles == 5000
    assert client.stats.retries == 2 and client.stats.timeouts == 2


def test_client_gives_up_on_a_silent_device() -> None:
    client = device.DeviceClient(FakeFirmware(silent=True), timeout=0.05, retries=2)
    with pytest.raises(device.PortError, match="failed after 3 tries"):
        client.info()


def test_device_errors_are_raised_not_retried() -> None:
    client = device.DeviceClient(FakeFirmware(), timeout=0.05, retries=3)
    with pytest.raises(proto.DeviceError, match="unknown command"):
        client._exchange(0x33, b"", 0.05)
    assert client.stats.retries == 0


def test_bad_port_spec() -> None:
    with pytest.raises(device.PortError, match="bad port"):
        device.open_port("tcp:nohostport")
    with pytest.raises(device.PortError, match="cannot connect"):
        device.TcpPort("127.0.0.1", 9, connect_timeout=0.2)
