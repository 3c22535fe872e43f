"""Flashing a built image onto a board: a debug probe (openocd, st-flash, pyocd), or a UF2 copied to the
boot drive of a Raspberry Pi Pico (or loaded with picotool). Which methods a board has, and the probe's
names for its chip, come from the board's entry in its ``target.toml``."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edge_digits.firmware.targets import BOARDS, FLASH_METHODS, TARGETS

PROBES: dict[str, dict[str, str]] = {
    "openocd": {"tool": "openocd", "install": "apt-get install openocd"},
    "stlink": {"tool": "st-flash", "install": "apt-get install stlink-tools"},
    "pyocd": {"tool": "pyocd", "install": "pip install pyocd"},
    "picotool": {"tool": "picotool", "install": "apt-get install picotool (Debian 13) or build it from the Pico SDK"},
    "uf2-copy": {"tool": "cp", "install": "coreutils"},
}
assert set(PROBES) == set(FLASH_METHODS)
# the label a Pico's boot ROM gives its USB drive (hold BOOTSEL while plugging it in)
UF2_DRIVE_LABELS = ("RPI-RP2", "RP2350")


class FlashError(RuntimeError):
    """The probe tool is missing, the board has no such method, or the write failed."""


@dataclass(frozen=True)
class FlashResult:
    probe: str
    command: list[str]
    output: str


def find_uf2_drive(media_roots: tuple[Path, ...] = (Path("/media"), Path("/run/media"), Path("/mnt"))) -> Path:
    """The mounted boot drive of a Pico in BOOTSEL mode (its INFO_UF2.TXT names the board)."""
    for root in media_roots:
        if not root.is_dir():
            continue
        for info in sorted(root.glob("*/INFO_UF2.TXT")) + sorted(root.glob("*/*/INFO_UF2.TXT")):
            if info.parent.name in UF2_DRIVE_LABELS or "RP2" in info.read_text(errors="replace"):
                return info.parent
    raise FlashError("no Pico boot drive is mounted (looked for INFO_UF2.TXT under /media, /run/media, /mnt): "
                     "hold BOOTSEL while plugging the board in, or give the drive with --drive")


def flash_command(probe: str, elf: Path, image: Path, board: str, drive: Path | None = None) -> list[str]:
    """The command line that writes the image with ``probe`` (image: the .bin, or the .uf2 of a UF2 target).

    >>> flash_command("stlink", Path("f.elf"), Path("f.bin"), "nucleo-f446re")
    ['st-flash', '--reset', 'write', 'f.bin', '0x08000000']
    """
    if board not in BOARDS:
        raise FlashError(f"unknown board {board!r}: choose from {', '.join(BOARDS)}")
    b = BOARDS[board]
    if probe not in PROBES:
        raise FlashError(f"unknown probe {probe!r}: choose from {', '.join(PROBES)}")
    if probe not in b.flash_methods:
        raise FlashError(f"board {board} is not flashed with {probe}: use {', '.join(b.flash_methods) or 'QEMU'}")
    target = TARGETS[b.target]
    if probe == "openocd":
        interface = str(b.config.get("ED_OPENOCD_INTERFACE", "interface/stlink.cfg"))
        chip = str(b.config.get("ED_OPENOCD_TARGET", "target/stm32f4x.cfg"))
        return ["openocd", "-f", interface, "-f", chip, "-c", f"program {elf} verify reset exit"]
    if probe == "stlink":
        return ["st-flash", "--reset", "write", str(image), f"{target.memory.flash_origin:#010x}"]
    if probe == "pyocd":
        if b.pyocd_target is None:
            raise FlashError(f"pyocd does not know board {board!r}: give it a pyocd_target in its target.toml")
        return ["pyocd", "flash", "--target", b.pyocd_target, str(elf)]
    if image.suffix != ".uf2":
        raise FlashError(f"{probe} writes a .uf2 image; {image} is not one")
    if probe == "picotool":
        return ["picotool", "load", "-x", "-t", "uf2", str(image)]
    return ["cp", str(image), str((drive or find_uf2_drive()) / image.name)]


def flash(probe: str, elf: Path, image: Path, board: str, drive: Path | None = None) -> FlashResult:
    """Run the probe's tool; a missing tool gives the command that installs it."""
    cmd = flash_command(probe, elf, image, board, drive)
    if probe == "uf2-copy":
        # the boot ROM writes each UF2 block to flash as it lands, whatever the file is called, and reboots
        # after the last one: a plain copy (no temp file to rename, the drive is gone by then)
        try:
            shutil.copyfile(image, cmd[2])
        except OSError as e:
            raise FlashError(f"copying {image} to the boot drive failed: {e}") from e
        return FlashResult(probe, cmd, f"copied {image.name} to {Path(cmd[2]).parent}")
    if shutil.which(cmd[0]) is None:
        raise FlashError(f"{cmd[0]} is not on PATH: {PROBES[probe]['install']}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise FlashError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-1500:]}")
    return FlashResult(probe, cmd, output)
