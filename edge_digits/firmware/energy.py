"""Energy per inference, estimated from a board's datasheet run current: E = V x I x cycles / f.

An estimate, and marked as one: the current is the datasheet's typical figure for code running from
flash (its ``[board.power]`` in the target description), not a measurement of this code. Under QEMU the
count is instructions (``-icount``), which stand in for cycles on the hardware boards of the same core
type; a real core needs somewhat more cycles than instructions (wait states, taken branches, multi-cycle
loads), so these estimates are low rather than high. MLPerf Tiny's published figures are kept beside for
scale: they are other models (keyword spotting, image classification) measured with an energy monitor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edge_digits.firmware.targets import BOARDS, TARGETS


@dataclass(frozen=True)
class EnergyEstimate:
    """One board's estimated time and energy for one inference."""

    board: str
    core: str
    clock_hz: int
    supply_v: float
    current_ma: float
    count: float
    count_is: str          # "cycles" (measured on this board) or "instructions" (QEMU, same core type)
    time_ms: float
    energy_uj: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReferenceFigure:
    """A published MLPerf Tiny result (closed division), for scale."""

    version: str
    system: str
    processor: str
    software: str
    benchmark: str
    latency_ms: float
    energy_uj: float
    source: str


_RESULTS = "github.com/mlcommons/tiny_results_{v} (closed division), {s}, {b}: median energy per inference"
MLPERF_TINY: tuple[ReferenceFigure, ...] = (
    ReferenceFigure("v0.5", "reference, Nucleo-L4R5ZI", "Cortex-M4F at 120 MHz, 1.8 V", "TFLM 2.3.1",
                    "keyword spotting (DS-CNN)", 181.9, 7373.7,
                    _RESULTS.format(v="v0.5", s="Nucleo-L4R5ZI", b="kws")),
    ReferenceFigure("v0.5", "reference, Nucleo-L4R5ZI", "Cortex-M4F at 120 MHz, 1.8 V", "TFLM 2.3.1",
                    "image classification (ResNet-8, CIFAR-10)", 704.2, 29207.0,
                    _RESULTS.format(v="v0.5", s="Nucleo-L4R5ZI", b="ic")),
    ReferenceFigure("v1.0", "ST NUCLEO-U575ZI-Q", "Cortex-M33 at 160 MHz, 1.8 V SMPS", "X-CUBE-AI 7.3.0",
                    "keyword spotting (DS-CNN)", 44.23, 1138.5,
                    _RESULTS.format(v="v1.0", s="NUCLEO-U575ZI-Q", b="kws")),
    ReferenceFigure("v0.7", "Renesas EK-RA6M4", "Cortex-M33 at 200 MHz, 3.0 V", "TFLM + CMSIS-NN",
                    "keyword spotting (DS-CNN)", 50.57, 3797.0,
                    _RESULTS.format(v="v0.7", s="EK-RA6M4", b="kws")),
)


def estimate(board: str, count: float, count_is: str) -> EnergyEstimate | None:
    """``count`` cycles (or instructions) on ``board`` at its datasheet clock and current; None without figures."""
    b = BOARDS.get(board)
    if b is None or b.power is None:
        return None
    p = b.power
    time_ms = count / p.clock_hz * 1e3
    return EnergyEstimate(board=board, core=TARGETS[b.target].core, clock_hz=p.clock_hz, supply_v=p.supply_v,
                          current_ma=p.current_ma, count=count, count_is=count_is, time_ms=time_ms,
                          energy_uj=p.supply_v * p.current_ma * time_ms, source=p.source)


def estimates_for_run(ran_on: str, count: float, under_qemu: bool) -> list[EnergyEstimate]:
    """Estimates for a validation run: on hardware, that board's own; under QEMU, every board with datasheet
    figures whose core is the emulated one (the instruction count standing in for cycles)."""
    if not under_qemu:
        own = estimate(ran_on, count, "cycles")
        return [own] if own else []
    if ran_on not in BOARDS:
        return []
    core = TARGETS[BOARDS[ran_on].target].core
    same_core = [b.name for b in BOARDS.values() if b.power is not None and TARGETS[b.target].core == core]
    return [e for e in (estimate(name, count, "instructions") for name in same_core) if e is not None]
