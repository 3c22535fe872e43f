"""The one list of firmware targets and boards: what ``firmware build|run``, ``flash`` and the CLI's
``--target``/``--board``/``--probe`` choices read.

A target is a core and memory map the firmware Makefile knows (``TARGET=``);
a board is a concrete board of a target (``BOARD=``), run under QEMU where
QEMU has it and flashed through a probe where it is hardware. A new board is
one entry here plus its board file under ``edge_digits/firmware/csrc/targets/``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A core type and memory map the firmware Makefile builds for."""

    name: str
    cpu: str
    default_board: str
    summary: str
    # The part number in the core's CPUID register (bits 15:4), which the firmware reports in INFO
    cpuid_partno: int


@dataclass(frozen=True)
class Board:
    """A board of a target: the QEMU machine that emulates it (if any) and pyocd's name for its chip."""

    name: str
    target: str
    qemu_machine: str | None
    pyocd_target: str | None
    summary: str


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("microbit", "Cortex-M0", "microbit", "BBC micro:bit v1 (nRF51822, Cortex-M0, 16 KB RAM), QEMU's microbit",
           0xC20),
    Target("mps2-an385", "Cortex-M3", "mps2-an385", "QEMU's Arm MPS2 AN385 (Cortex-M3, no FPU)", 0xC23),
    Target("mps2-an386", "Cortex-M4F", "mps2-an386", "QEMU's Arm MPS2 AN386 (Cortex-M4F)", 0xC24),
    Target("mps2-an500", "Cortex-M7", "mps2-an500", "QEMU's Arm MPS2 AN500 (Cortex-M7, FPU)", 0xC27),
    Target("mps2-an505", "Cortex-M33", "mps2-an505", "QEMU's Arm MPS2 AN505 (Cortex-M33, FPU, Secure state)", 0xD21),
    Target("mps3-an547", "Cortex-M55", "mps3-an547", "QEMU's Arm MPS3 AN547 (Cortex-M55, FPU and MVE, Secure state)",
           0xD22),
    Target("stm32f4", "Cortex-M4F", "netduinoplus2", "STM32F4 boards (Nucleo-F446RE, Black Pill F411, QEMU's "
           "netduinoplus2)", 0xC24),
)}
BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("microbit", "microbit", "microbit", None, "BBC micro:bit v1 (nRF51822), QEMU's microbit"),
    Board("mps2-an385", "mps2-an385", "mps2-an385", None, "QEMU machine mps2-an385"),
    Board("mps2-an386", "mps2-an386", "mps2-an386", None, "QEMU machine mps2-an386"),
    Board("mps2-an500", "mps2-an500", "mps2-an500", None, "QEMU machine mps2-an500"),
    Board("mps2-an505", "mps2-an505", "mps2-an505", None, "QEMU machine mps2-an505"),
    Board("mps3-an547", "mps3-an547", "mps3-an547", None, "QEMU machine mps3-an547"),
    Board("netduinoplus2", "stm32f4", "netduinoplus2", "stm32f405rg", "Netduino Plus 2 (STM32F405), QEMU's "
          "netduinoplus2"),
    Board("nucleo-f446re", "stm32f4", None, "stm32f446retx", "ST Nucleo-F446RE"),
    Board("blackpill-f411", "stm32f4", None, "stm32f411ceux", "WeAct Black Pill (STM32F411)"),
)}


def boards_of(target: str) -> tuple[str, ...]:
    """The boards of ``target``, its default first."""
    names = [b.name for b in BOARDS.values() if b.target == target]
    default = TARGETS[target].default_board
    return (default, *[n for n in names if n != default])


def hardware_boards() -> tuple[str, ...]:
    """The boards that are hardware only (no QEMU machine): the ones ``flash`` writes to."""
    return tuple(b.name for b in BOARDS.values() if b.qemu_machine is None)


def target_help() -> str:
    """One line per target for ``--help``."""
    return "; ".join(f"{t.name}: {t.summary}" for t in TARGETS.values())
