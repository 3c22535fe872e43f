"""Flashing a built image onto an STM32F4 board with openocd, st-flash or pyocd."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edge_digits.firmware.targets import BOARDS

PROBES: dict[str, dict[str, str]] = {
    "openocd": {"tool": "openocd", "install": "apt-get install openocd"},
    "stlink": {"tool": "st-flash", "install": "apt-get install stlink-tools"},
    "pyocd": {"tool": "pyocd", "install": "pip install pyocd"},
}


class FlashError(RuntimeError):
    """The probe tool is missing or reported a failure."""


@dataclass(frozen=True)
class FlashResult:
    probe: str
    command: list[str]
    output: str


def flash_command(probe: str, elf: Path, binary: Path, board: str) -> list[str]:
    """The command line that writes the image with ``probe``.

    >>> flash_command("stlink", Path("f.elf"), Path("f.bin"), "nucleo-f446re")
    ['st-flash', '--reset', 'write', 'f.bin', '0x08000000']
    """
    if probe == "openocd":
        return ["openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg",
                "-c", f"program {elf} verify reset exit"]
    if probe == "stlink":
        return ["st-flash", "--reset", "write", str(binary), "0x08000000"]
    if probe == "pyocd":
        chip = BOARDS[board].pyocd_target if board in BOARDS else None
        if chip is None:
            raise FlashError(f"pyocd does not know board {board!r}: use openocd or stlink")
        return ["pyocd", "flash", "--target", chip, str(elf)]
    raise FlashError(f"unknown probe {probe!r}: choose from {', '.join(PROBES)}")


def flash(probe: str, elf: Path, binary: Path, board: str) -> FlashResult:
    """Run the probe's tool; a missing tool gives the command that installs it."""
    cmd = flash_command(probe, elf, binary, board)
    if shutil.which(cmd[0]) is None:
        raise FlashError(f"{cmd[0]} is not on PATH: {PROBES[probe]['install']}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise FlashError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-1500:]}")
    return FlashResult(probe, cmd, output)
