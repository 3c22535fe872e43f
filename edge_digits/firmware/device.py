"""Talking to a board (or QEMU) over the framed protocol, and validating it against TFLM.

A ``Port`` moves bytes: ``TcpPort`` for QEMU's socket-bridged UART, ``SerialPort``
for a real USB-serial device (pyserial, imported only when used). The client
on top never hangs: every read has a deadline, and a lost or broken reply is
retried a bounded number of times.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

import numpy as np

from edge_digits.firmware import protocol as proto

if TYPE_CHECKING:
    from edge_digits.runtime.tflm import TflmModel


class PortError(RuntimeError):
    """The port could not be opened, or the device stopped answering."""


class Port(TypingProtocol):
    """A byte pipe to a device."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """Whatever bytes arrive within ``timeout`` seconds (b"" when none)."""
        ...

    def close(self) -> None: ...


class TcpPort:
    """A UART bridged to TCP, as QEMU's ``-serial tcp:HOST:PORT,server=on`` offers."""

    def __init__(self, host: str, port: int, connect_timeout: float = 10.0) -> None:
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self._sock = socket.create_connection((host, port), timeout=2.0)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise PortError(f"cannot connect to tcp:{host}:{port}: {exc}") from exc
                time.sleep(0.1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise PortError(f"write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        self._sock.settimeout(max(timeout, 0.001))
        try:
            data = self._sock.recv(4096)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise PortError(f"read failed: {exc}") from exc
        if not data:
            raise PortError("the device closed the connection")
        return data

    def close(self) -> None:
        self._sock.close()


class SerialPort:
    """A serial device such as /dev/ttyACM0 (ST-Link's virtual COM port) or a USB-serial adapter."""

    def __init__(self, device: str, baud: int = 115200) -> None:
        try:
            import serial
        except ImportError as exc:
            raise PortError("serial ports need pyserial: pip install 'edge-digits[micro]'") from exc
        try:
            self._serial = serial.Serial(device, baudrate=baud, timeout=0.1)
        except (OSError, serial.SerialException) as exc:
            raise PortError(f"cannot open {device}: {exc}") from exc

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def read(self, timeout: float) -> bytes:
        self._serial.timeout = max(timeout, 0.001)
        first = self._serial.read(1)
        return first + self._serial.read(self._serial.in_waiting) if first else b""

    def close(self) -> None:
        self._serial.close()


def open_port(spec: str, baud: int = 115200) -> Port:
    """``tcp:HOST:PORT`` or a serial device path."""
    if spec.startswith("tcp:"):
        try:
            host, port = spec[4:].rsplit(":", 1)
            return TcpPort(host, int(port))
        except ValueError as exc:
            raise PortError(f"bad port {spec!r}: use tcp:HOST:PORT or a serial device like /dev/ttyACM0") from exc
    return SerialPort(spec, baud)


@dataclass
class ClientStats:
    retries: int = 0
    timeouts: int = 0
    device_errors: list[str] = field(default_factory=list)


class DeviceClient:
    """Request/reply over a Port with deadlines and bounded retries."""

    def __init__(self, port: Port, timeout: float = 5.0, retries: int = 3) -> None:
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.stats = ClientStats()
        self._reader = proto.FrameReader()

    def _exchange(self, command: int, payload: bytes, timeout: float) -> bytes:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                self._reader = proto.FrameReader()
            self.port.write(proto.encode(command, payload))
            deadline = time.monotonic() + timeout
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.stats.timeouts += 1
                        raise PortError(f"no reply to command {command:#04x} within {timeout:.1f} s")
                    frames = self._reader.feed(self.port.read(left))
                    for frame in frames:
                        if frame.command == proto.ERROR and frame.payload[:1] == bytes([6]):
                            continue  # the device timed out a frame fragment left over from before
                        return proto.check_reply(frame, command)
            except proto.DeviceError as exc:
                self.stats.device_errors.append(str(exc))
                if exc.code not in (1, 6):  # only CRC and timeout errors are worth sending again
                    raise
                last = exc
            except (PortError, proto.ProtocolError) as exc:
                if isinstance(exc, PortError) and "closed" in str(exc):
                    raise
                last = exc
        raise PortError(f"command {command:#04x} failed after {self.retries + 1} tries: {last}")

    def info(self) -> dict[str, Any]:
        return proto.parse_info(self._exchange(proto.INFO, b"", self.timeout))

    def infer(self, image: np.ndarray, outputs: int = 10) -> proto.InferReply:
        return proto.parse_infer(self._exchange(proto.INFER, np.asarray(image, np.int8).tobytes(), self.timeout),
                                 outputs)

    def bench(self, count: int) -> proto.BenchReply:
        return proto.parse_bench(self._exchange(proto.BENCH, struct.pack("<H", count), self.timeout + count))


@dataclass(frozen=True)
class ValidationResult:
    """What ``validate`` measured on the device against the host TFLM reference."""

    port: str
    count: int
    accuracy: float
    reference_accuracy: float
    agreement: float
    cycles_median: float
    cycles_p99: float
    clock_hz: int
    latency_ms_median: float
    cycle_source: str
    cycle_note: str
    instructions_median: float | None
    stack_used_bytes: int | None
    retries: int
    timeouts: int
    device_errors: list[str]
    info: dict[str, Any]
    # estimated energy per inference on the boards this count applies to (firmware.energy), marked estimates
    energy_estimates: list[dict[str, Any]]
    # MLPerf Tiny's published figures for scale, beside the estimates (firmware.energy.MLPERF_TINY)
    energy_references: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cycle_note(info: dict[str, Any], icount_shift: int | None) -> str:
    """How to read the cycle counts: real cycles on hardware, virtual time under QEMU."""
    if icount_shift is not None:
        return (f"QEMU with -icount shift={icount_shift}: deterministic; each instruction advances virtual time "
                f"by 2^{icount_shift} ns, so counts stand for instructions x clock_hz / 1e9 x 2^{icount_shift}")
    if str(info.get("board", "")).startswith(("mps2", "netduino")):
        return "QEMU without -icount: counts follow host time and vary from run to run"
    return f"{info.get('cycle_source', '?')} cycles of the core clock"


def reference_model(model: Path) -> TflmModel:
    """``model`` in the TFLM reference interpreter, the oracle ``validate`` holds a device to.

    Raises ``TflmError`` (a ``RuntimeError``) naming the extra to install where TFLM is missing, so a caller
    can load it before it talks to a device.
    """
    from edge_digits.runtime import tflm

    return tflm.TflmModel(Path(model).read_bytes())


def validate(
    client: DeviceClient,
    model: Path,
    count: int,
    port_name: str = "",
    cache_dir: Path | None = None,
    icount_shift: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    reference: TflmModel | None = None,
) -> ValidationResult:
    """Send ``count`` MNIST test images and compare every int8 output with the TFLM reference
    (``reference``, else ``model`` loaded by ``reference_model``)."""
    import hashlib

    from edge_digits import int8
    from edge_digits.data import load_mnist

    model_bytes = Path(model).read_bytes()
    if reference is None:
        reference = reference_model(Path(model))
    info = client.info()
    sha = hashlib.sha256(model_bytes).hexdigest()
    if info.get("model_sha256") and info["model_sha256"] != sha:
        raise PortError(f"the device runs model {info['model_sha256'][:12]}…, not {Path(model).name} "
                        f"({sha[:12]}…): pass the model it was built from with --model")
    _, _, x_test, y_test = load_mnist(cache_dir)
    count = min(count, len(x_test))
    inputs = int8.quantize_images(x_test[:count], reference.input_scale, reference.input_zero_point)
    golden = reference.invoke_raw(inputs)
    outputs = golden.shape[1]
    labels, cycles, same = [], [], []
    for i in range(count):
        reply = client.infer(inputs[i], outputs)
        scores = np.frombuffer(reply.scores, np.int8)
        labels.append(reply.label)
        cycles.append(reply.cycles)
        same.append(bool(np.array_equal(scores, golden[i])))
        if progress is not None:
            progress(i + 1, count)
    after = client.info()
    clock = int(info.get("clock_hz", 0))
    median = float(np.median(cycles)) if cycles else 0.0
    instructions = median * 1e9 / (clock * 2 ** icount_shift) if icount_shift is not None and clock else None
    energy = _energy(str(info.get("board", "")), median, instructions)
    return ValidationResult(
        port=port_name,
        count=count,
        accuracy=float(np.mean(np.array(labels) == y_test[:count])) if count else 0.0,
        reference_accuracy=float(np.mean(golden.argmax(axis=1) == y_test[:count])) if count else 0.0,
        agreement=float(np.mean(same)) if same else 0.0,
        cycles_median=median,
        cycles_p99=float(np.percentile(cycles, 99)) if cycles else 0.0,
        clock_hz=clock,
        latency_ms_median=median / clock * 1000.0 if clock else 0.0,
        cycle_source=str(info.get("cycle_source", "")),
        cycle_note=cycle_note(info, icount_shift),
        instructions_median=instructions,
        stack_used_bytes=after.get("stack_used_bytes"),
        retries=client.stats.retries,
        timeouts=client.stats.timeouts,
        device_errors=list(client.stats.device_errors),
        info=info,
        energy_estimates=[e.to_dict() for e in energy],
        energy_references=_energy_references() if energy else [],
    )


def _energy_references() -> list[dict[str, Any]]:
    from dataclasses import asdict

    from edge_digits.firmware.energy import MLPERF_TINY

    return [asdict(r) for r in MLPERF_TINY]


def _energy(board: str, cycles: float, instructions: float | None) -> list[Any]:
    """Energy estimates: from instructions under QEMU -icount, from cycles on a hardware board, else none
    (QEMU without -icount counts host time)."""
    from edge_digits.firmware import energy
    from edge_digits.firmware.targets import BOARDS

    if instructions is not None:
        return energy.estimates_for_run(board, instructions, under_qemu=True)
    if board in BOARDS and BOARDS[board].qemu_machine is None and cycles:
        return energy.estimates_for_run(board, cycles, under_qemu=False)
    return []
