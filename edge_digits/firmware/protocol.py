"""The device protocol's Python side: the same frames as ``edge_digits/firmware/csrc/common/ed_proto.c``.

A frame is magic ``ED 1A``, a command byte, a little-endian 16-bit payload
length, the payload, and a CRC-16/CCITT-FALSE (little-endian) over command,
length and payload.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"\xed\x1a"
MAX_PAYLOAD = 1024
OVERHEAD = 7

INFO, INFER, BENCH, ERROR = 0x01, 0x02, 0x03, 0x7F
RESPONSE = 0x80
ERROR_NAMES = {1: "bad CRC", 2: "payload too long", 3: "bad length", 4: "unknown command", 5: "inference failed",
               6: "frame timeout"}


class ProtocolError(RuntimeError):
    """Bytes from the device that are not a valid frame, or an unexpected reply."""


class DeviceError(RuntimeError):
    """The device answered with an error frame."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"device error {code} ({ERROR_NAMES.get(code, 'unknown')}): {message}")
        self.code = code


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection).

    >>> hex(crc16(b"123456789"))
    '0x29b1'
    """
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode(command: int, payload: bytes = b"") -> bytes:
    """One frame.

    >>> encode(INFO).hex()
    'ed1a010000acfb'
    """
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    body = struct.pack("<BH", command, len(payload)) + payload
    return MAGIC + body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class Frame:
    command: int
    payload: bytes


class FrameReader:
    """Collects bytes and yields whole frames, skipping noise before a magic pair."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf.extend(data)
        frames: list[Frame] = []
        while True:
            start = self._buf.find(MAGIC)
            if start < 0:
                del self._buf[:-1]
                return frames
            del self._buf[:start]
            if len(self._buf) < 5:
                return frames
            command, length = struct.unpack_from("<BH", self._buf, 2)
            if length > MAX_PAYLOAD:
                del self._buf[:2]
                continue
            if len(self._buf) < OVERHEAD + length:
                return frames
            body = bytes(self._buf[2:5 + length])
            (crc,) = struct.unpack_from("<H", self._buf, 5 + length)
            if crc != crc16(body):
                del self._buf[:2]
                continue
            frames.append(Frame(command, body[3:]))
            del self._buf[:OVERHEAD + length]


@dataclass(frozen=True)
class InferReply:
    label: int
    scores: bytes
    cycles: int


@dataclass(frozen=True)
class BenchReply:
    count: int
    total_cycles: int
    min_cycles: int
    max_cycles: int


def check_reply(frame: Frame, request: int) -> bytes:
    """The payload of a reply to ``request``; raises DeviceError for an error frame."""
    if frame.command == ERROR:
        code = frame.payload[0] if frame.payload else 0
        raise DeviceError(code, frame.payload[1:].decode("utf-8", "replace"))
    if frame.command != request | RESPONSE:
        raise ProtocolError(f"expected a reply to command {request:#04x}, got command {frame.command:#04x}")
    return frame.payload


def parse_info(payload: bytes) -> dict[str, Any]:
    try:
        info: dict[str, Any] = json.loads(payload.decode("utf-8"))
        return info
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"INFO reply is not JSON: {exc}") from exc


def parse_infer(payload: bytes, outputs: int = 10) -> InferReply:
    if len(payload) != 1 + outputs + 4:
        raise ProtocolError(f"INFER reply has {len(payload)} bytes, expected {1 + outputs + 4}")
    (cycles,) = struct.unpack_from("<I", payload, 1 + outputs)
    return InferReply(payload[0], payload[1:1 + outputs], cycles)


def parse_bench(payload: bytes) -> BenchReply:
    if len(payload) != 18:
        raise ProtocolError(f"BENCH reply has {len(payload)} bytes, expected 18")
    count, lo, hi, cmin, cmax = struct.unpack("<HIIII", payload)
    return BenchReply(count, lo | (hi << 32), cmin, cmax)
