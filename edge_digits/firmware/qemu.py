"""Running firmware under QEMU, with the protocol UART bridged to a loopback TCP port.

The same host tools that talk to a board over a serial port then talk to the
emulator: ``edge-digits validate --port tcp:127.0.0.1:PORT``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_digits.firmware.build import FirmwareBuildError
from edge_digits.firmware.targets import BOARDS, TARGETS

QEMU_HINT = "apt install qemu-system-arm"   # Debian's package (in a clone, `make setup-system` installs it)


@dataclass(frozen=True)
class QemuSession:
    target: str
    machine: str
    port: int
    command: list[str]
    process: subprocess.Popen[bytes]

    @property
    def spec(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_machine(target: str) -> str:
    """The QEMU machine that runs ``target``'s firmware: its default board's."""
    if target not in TARGETS:
        raise FirmwareBuildError(f"unknown target {target!r}: choose from {', '.join(TARGETS)}")
    machine = BOARDS[TARGETS[target].default_board].qemu_machine
    if machine is None:
        raise FirmwareBuildError(f"target {target} has no QEMU machine: flash it onto a board instead")
    return machine


def qemu_command(target: str, elf: Path, port: int, icount_shift: int | None = None) -> list[str]:
    """The qemu-system-arm command line for ``target``: the protocol UART on tcp:127.0.0.1:PORT.

    >>> qemu_command("stm32f4", Path("f.elf"), 5000)[:4]
    ['qemu-system-arm', '-machine', 'netduinoplus2', '-nographic']
    """
    machine = qemu_machine(target)
    tcp = f"tcp:127.0.0.1:{port},server=on,wait=on"
    # the serial ports before the protocol's (the board's qemu_serial_index) go nowhere
    index = BOARDS[TARGETS[target].default_board].qemu_serial_index
    serials = [*(["-serial", "null"] * index), "-serial", tcp]
    cmd = ["qemu-system-arm", "-machine", machine, "-nographic", "-monitor", "none", *serials, "-kernel", str(elf)]
    if icount_shift is not None:
        cmd += ["-icount", f"shift={icount_shift}"]
    return cmd


@contextmanager
def run_qemu(target: str, elf: Path, port: int | None = None, icount_shift: int | None = None,
             start_timeout: float = 10.0) -> Iterator[QemuSession]:
    """Start QEMU, wait until its UART socket listens, and stop it when the block ends."""
    if shutil.which("qemu-system-arm") is None:
        raise FirmwareBuildError(f"qemu-system-arm is not on PATH: {QEMU_HINT}")
    if not Path(elf).is_file():
        raise FirmwareBuildError(f"{elf} does not exist: run `edge-digits firmware build --target {target}` first")
    port = port or free_port()
    cmd = qemu_command(target, Path(elf), port, icount_shift)
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_listening(process, port, start_timeout)
        yield QemuSession(target, qemu_machine(target), port, cmd, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise FirmwareBuildError(f"QEMU exited at start ({process.returncode}): {output.strip()[-500:]}")
        with open("/proc/net/tcp") as f:
            if any(line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A" for line in f.readlines()[1:]):
                return
        time.sleep(0.05)
    raise FirmwareBuildError(f"QEMU did not open its UART socket on port {port} within {timeout:.0f} s")
