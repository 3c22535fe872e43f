"""The firmware targets and boards, read from one description per target: ``csrc/targets/<name>/target.toml``.

Each description gives a core and its compiler flags, the engine kernels it
builds (scalar C, the DSP extension or Helium), the board code, the memory map, the
image format and the boards of that target (QEMU machine, probe, clock and
datasheet current). ``firmware build|run``, ``flash`` and the CLI's choices
read the registry here; the firmware ``Makefile`` reads the same files
through :func:`write_make_config` (``csrc/target_config.py``), so a new board
is one new folder with its ``target.toml`` (and its board code).
Standard library only: the Makefile runs this without numpy.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGETS_DIR = Path(__file__).resolve().parent / "csrc" / "targets"
KERNELS = ("scalar", "dsp", "mve")
IMAGES = ("bin", "uf2")
FLASH_METHODS = ("openocd", "stlink", "pyocd", "uf2-copy", "picotool")
_SIZE = re.compile(r"^(\d+)\s*([KM]?)$")


class TargetError(ValueError):
    """A target description is malformed: the message names the file and the key."""


@dataclass(frozen=True)
class Memory:
    """Where the image goes: flash and RAM regions (bytes) and the stack reserved at the top of RAM."""

    flash_origin: int
    flash_size: int
    ram_origin: int
    ram_size: int
    stack_size: int
    # the linker script with the SECTIONS (relative to csrc/), which the generated MEMORY block includes
    sections: str = "common/common.ld"


@dataclass(frozen=True)
class Power:
    """A datasheet's typical run current at a clock: what an energy estimate per inference is made from."""

    supply_v: float
    current_ma: float
    clock_hz: int
    source: str


@dataclass(frozen=True)
class Board:
    """A board of a target: the QEMU machine that emulates it (if any), how it is flashed, its clock and current."""

    name: str
    target: str
    qemu_machine: str | None
    pyocd_target: str | None
    summary: str
    # which of the machine's serial ports carries the protocol (QEMU's -serial order)
    qemu_serial_index: int = 0
    flash_methods: tuple[str, ...] = ()
    config: dict[str, int | str] = field(default_factory=dict)
    power: Power | None = None


@dataclass(frozen=True)
class Target:
    """A core type and memory map the firmware Makefile builds for, from its ``target.toml``."""

    name: str
    core: str
    summary: str
    # the part number in the core's CPUID register (bits 15:4), which the firmware reports in INFO
    cpuid_partno: int
    cpu_flags: tuple[str, ...]
    kernels: str
    sources: tuple[str, ...]
    image: str
    default_board: str
    memory: Memory
    config: dict[str, int | str]
    folder: Path
    # target-specific extras the image writer reads (e.g. the UF2 family and flash base of an RP2040)
    extra: dict[str, Any] = field(default_factory=dict)

    def kernel_choices(self) -> tuple[str, ...]:
        """The kernel sets this core can build: its own and the simpler ones (a Helium core has DSP too)."""
        return KERNELS[:KERNELS.index(self.kernels) + 1]


def parse_size(value: int | str, where: str) -> int:
    """``512K``, ``2M`` or a number of bytes.

    >>> parse_size("512K", "x"), parse_size(2048, "x")
    (524288, 2048)
    """
    if isinstance(value, int) and value >= 0:
        return value
    m = _SIZE.match(str(value).strip())
    if not m:
        raise TargetError(f"{where}: {value!r} is not a size (bytes, or a number with K or M)")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2)]


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise TargetError(f"{where}: missing key {key!r}")
        return default
    value = table.pop(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TargetError(f"{where}: {key} = {value!r} has the wrong type")
    return value


def _config(table: Any, where: str) -> dict[str, int | str]:
    if not isinstance(table, dict):
        raise TargetError(f"{where}: expected a table of C macros")
    for key, value in table.items():
        if not re.fullmatch(r"ED_[A-Z0-9_]+", key) or not isinstance(value, (int, str)) or isinstance(value, bool):
            raise TargetError(f"{where}: {key} = {value!r}: macros are ED_NAME = integer or string")
    return dict(table)


def _no_more(table: dict[str, Any], where: str) -> None:
    if table:
        raise TargetError(f"{where}: unknown key(s) {', '.join(sorted(table))}")


def _power(table: Any, where: str) -> Power:
    if not isinstance(table, dict):
        raise TargetError(f"{where}: expected a table")
    t = dict(table)
    power = Power(supply_v=float(_take(t, "supply_v", (int, float), where)),
                  current_ma=float(_take(t, "current_ma", (int, float), where)),
                  clock_hz=_take(t, "clock_hz", int, where), source=_take(t, "source", str, where))
    _no_more(t, where)
    return power


def _board(table: Any, target: str, where: str) -> Board:
    if not isinstance(table, dict):
        raise TargetError(f"{where}: each [[board]] must be a table")
    t = dict(table)
    name = _take(t, "name", str, where)
    where = f"{where} board {name}"
    methods = tuple(_take(t, "flash_methods", list, where, []))
    for m in methods:
        if m not in FLASH_METHODS:
            raise TargetError(f"{where}: flash method {m!r} is not one of {', '.join(FLASH_METHODS)}")
    board = Board(
        name=name, target=target, qemu_machine=_take(t, "qemu_machine", str, where, None),
        pyocd_target=_take(t, "pyocd_target", str, where, None), summary=_take(t, "summary", str, where),
        qemu_serial_index=_take(t, "qemu_serial_index", int, where, 0), flash_methods=methods,
        config=_config(t.pop("config", {}), f"{where} [board.config]"),
        power=_power(t.pop("power"), f"{where} [board.power]") if "power" in t else None)
    _no_more(t, where)
    if board.qemu_machine is None and not board.flash_methods:
        raise TargetError(f"{where}: a board with no QEMU machine needs flash_methods")
    return board


def load_target(path: Path) -> tuple[Target, list[Board]]:
    """One ``target.toml``, checked: a wrong key or type is an error naming the file."""
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{where}: not valid TOML: {e}") from None
    name = _take(data, "name", str, where)
    if name != path.parent.name:
        raise TargetError(f"{where}: name {name!r} must be the folder's name {path.parent.name!r}")
    mem = dict(_take(data, "memory", dict, where))
    mwhere = f"{where} [memory]"
    memory = Memory(
        flash_origin=_take(mem, "flash_origin", int, mwhere),
        flash_size=parse_size(_take(mem, "flash_size", (int, str), mwhere), mwhere),
        ram_origin=_take(mem, "ram_origin", int, mwhere),
        ram_size=parse_size(_take(mem, "ram_size", (int, str), mwhere), mwhere),
        stack_size=parse_size(_take(mem, "stack_size", (int, str), mwhere), mwhere),
        sections=_take(mem, "sections", str, mwhere, "common/common.ld"))
    _no_more(mem, mwhere)
    kernels = _take(data, "kernels", str, where)
    if kernels not in KERNELS:
        raise TargetError(f"{where}: kernels = {kernels!r} is not one of {', '.join(KERNELS)}")
    image = _take(data, "image", str, where)
    if image not in IMAGES:
        raise TargetError(f"{where}: image = {image!r} is not one of {', '.join(IMAGES)}")
    target = Target(
        name=name, core=_take(data, "core", str, where), summary=_take(data, "summary", str, where),
        cpuid_partno=_take(data, "cpuid_partno", int, where),
        cpu_flags=tuple(_take(data, "cpu_flags", list, where)), kernels=kernels,
        sources=tuple(_take(data, "sources", list, where)), image=image,
        default_board=_take(data, "default_board", str, where), memory=memory,
        config=_config(data.pop("config", {}), f"{where} [config]"), folder=path.parent,
        extra=dict(data.pop(image, {})) if image != "bin" else {})
    boards = [_board(b, name, where) for b in _take(data, "board", list, where)]
    _no_more(data, where)
    if target.default_board not in {b.name for b in boards}:
        raise TargetError(f"{where}: default_board {target.default_board!r} is not one of its boards")
    for src in target.sources:
        if not (TARGETS_DIR.parent / src).is_file():
            raise TargetError(f"{where}: source {src} does not exist under {TARGETS_DIR.parent}")
    return target, boards


def _load_all(folder: Path) -> tuple[dict[str, Target], dict[str, Board]]:
    targets: dict[str, Target] = {}
    boards: dict[str, Board] = {}
    for path in sorted(folder.glob("*/target.toml")):
        target, its_boards = load_target(path)
        targets[target.name] = target
        for b in its_boards:
            if b.name in boards:
                raise TargetError(f"{path}: board {b.name!r} is also a board of {boards[b.name].target}")
            boards[b.name] = b
    return targets, boards


TARGETS, BOARDS = _load_all(TARGETS_DIR)


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


def _c_value(name: str, value: int | str) -> str:
    """A macro's value as C: strings quoted, addresses (``*_BASE``, ``*_ADDR``) in hex, other numbers decimal."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{value:#010x}u" if name.endswith(("_BASE", "_ADDR")) else f"{value}u"


def target_header(target: Target, board: Board) -> str:
    """``target.h``: the target's and board's ``config`` macros and their names, for the board code."""
    macros: dict[str, int | str] = {"ED_TARGET_NAME": target.name, "ED_BOARD_NAME": board.name,
                                    **target.config, **board.config}
    lines = [f"/* Generated from targets/{target.name}/target.toml (board {board.name}); do not edit. */",
             "#ifndef ED_TARGET_H", "#define ED_TARGET_H", ""]
    lines += [f"#define {k} {_c_value(k, v)}" for k, v in macros.items()]
    return "\n".join([*lines, "", "#endif /* ED_TARGET_H */", ""])


def linker_script(target: Target) -> str:
    """The target's MEMORY and stack size, then its SECTIONS script (``memory.sections``)."""
    m = target.memory
    return (f"/* Generated from targets/{target.name}/target.toml; do not edit. */\n"
            "MEMORY\n{\n"
            f"  FLASH (rx) : ORIGIN = {m.flash_origin:#010x}, LENGTH = {m.flash_size}\n"
            f"  RAM (rwx)  : ORIGIN = {m.ram_origin:#010x}, LENGTH = {m.ram_size}\n"
            "}\n"
            f"STACK_SIZE = {m.stack_size};\n"
            f"INCLUDE {Path(m.sections).name}\n")


def make_fragment(target: Target, board: Board, kernels: str, config_dir: Path) -> str:
    """The make variables for one build: flags, kernel set, board sources, linker script, image format."""
    sections_dir = Path(target.memory.sections).parent
    return "\n".join([
        f"# Generated from targets/{target.name}/target.toml (board {board.name}); do not edit.",
        f"ED_CPU := {' '.join(target.cpu_flags)}",
        f"ED_KERNELS := {kernels}",
        f"ED_KERNEL_FLAGS := -DED_KERNELS_{kernels.upper()}",
        f"ED_TARGET_SRC := {' '.join(target.sources)}",
        f"ED_LINKER_SCRIPT := {config_dir / 'link.ld'}",
        f"ED_LINKER_DIRS := -L{sections_dir} -Ltargets/{target.name}",
        f"ED_IMAGE := {target.image}",
        "",
    ])


def resolve(target: str, board: str | None = None, kernels: str | None = None) -> tuple[Target, Board, str]:
    """The target, board and kernel set of a build, each checked against the descriptions."""
    if target not in TARGETS:
        raise TargetError(f"unknown target {target!r}: choose from {', '.join(TARGETS)}")
    t = TARGETS[target]
    board = board or t.default_board
    if board not in boards_of(target):
        raise TargetError(f"unknown {target} board {board!r}: choose from {', '.join(boards_of(target))}")
    kernels = kernels or t.kernels
    if kernels not in t.kernel_choices():
        raise TargetError(f"{target} ({t.core}) cannot build {kernels!r} kernels: choose from "
                          f"{', '.join(t.kernel_choices())}")
    return t, BOARDS[board], kernels


def _write_if_changed(path: Path, text: str) -> None:
    """Leave an unchanged file alone, so make does not restart on a config it already read."""
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_make_config(target: str, board: str | None, kernels: str | None, config_dir: Path) -> Path:
    """Write ``target.mk``, ``target.h`` and ``link.ld`` for one build into ``config_dir``; returns target.mk."""
    t, b, k = resolve(target, board, kernels)
    config_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(config_dir / "target.h", target_header(t, b))
    _write_if_changed(config_dir / "link.ld", linker_script(t))
    _write_if_changed(config_dir / "target.mk", make_fragment(t, b, k, config_dir))
    return config_dir / "target.mk"
