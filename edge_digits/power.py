"""Power meters behind one small interface, and a sampler that runs in its own thread.

Drivers: INA219 and INA260 over I2C (smbus2), the Raspberry Pi 5 PMIC through
``vcgencmd pmic_read_adc``, Intel/AMD RAPL energy counters and hwmon power
sensors in sysfs, and ``none``. Each driver takes its hardware access as an
argument (an SMBus object, a sysfs root, a command runner) so tests drive it
with fakes that follow the real interfaces.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class PowerMeterError(RuntimeError):
    """A meter is absent or unreadable; the message names the fix."""


class PowerMeter(Protocol):
    """Anything that reports the power it measures now, in watts."""

    name: str

    def read_watts(self) -> float: ...

    def close(self) -> None: ...


class SMBusLike(Protocol):
    """The part of smbus2.SMBus the INA drivers use."""

    def read_word_data(self, addr: int, register: int) -> int: ...

    def write_word_data(self, addr: int, register: int, value: int) -> None: ...


def _swap16(word: int) -> int:
    """SMBus words arrive little-endian; the INA chips send the high byte first."""
    return ((word & 0xFF) << 8) | (word >> 8)


def _signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class _InaMeter:
    """What the INA chips share: power from volts x amps, and closing the bus."""

    bus: SMBusLike

    def volts_amps(self) -> tuple[float, float]:
        raise NotImplementedError

    def read_watts(self) -> float:
        volts, amps = self.volts_amps()
        return volts * amps

    def close(self) -> None:
        close = getattr(self.bus, "close", None)
        if close is not None:
            close()


class Ina219Meter(_InaMeter):
    """TI INA219: bus voltage (4 mV LSB) and shunt voltage (10 uV LSB) across a known shunt resistor."""

    def __init__(self, bus: SMBusLike, address: int = 0x40, shunt_ohms: float = 0.1) -> None:
        self.bus, self.address, self.shunt_ohms = bus, address, shunt_ohms
        self.name = f"ina219@{address:#04x}"
        try:
            # 32 V range, +-320 mV shunt range, 12-bit, continuous shunt and bus conversions.
            bus.write_word_data(address, 0x00, _swap16(0x399F))
        except OSError as exc:
            raise PowerMeterError(f"no INA219 answers at I2C address {address:#04x}: {exc}") from exc

    def volts_amps(self) -> tuple[float, float]:
        shunt = _signed16(_swap16(self.bus.read_word_data(self.address, 0x01))) * 10e-6
        bus_v = (_swap16(self.bus.read_word_data(self.address, 0x02)) >> 3) * 4e-3
        return bus_v, shunt / self.shunt_ohms


class Ina260Meter(_InaMeter):
    """TI INA260 (shunt built in): current (1.25 mA LSB) and bus voltage (1.25 mV LSB)."""

    def __init__(self, bus: SMBusLike, address: int = 0x40) -> None:
        self.bus, self.address = bus, address
        self.name = f"ina260@{address:#04x}"
        try:
            manufacturer = _swap16(bus.read_word_data(address, 0xFE))
        except OSError as exc:
            raise PowerMeterError(f"no INA260 answers at I2C address {address:#04x}: {exc}") from exc
        if manufacturer != 0x5449:
            raise PowerMeterError(f"the chip at {address:#04x} is not an INA260 (manufacturer id {manufacturer:#06x})")

    def volts_amps(self) -> tuple[float, float]:
        amps = _signed16(_swap16(self.bus.read_word_data(self.address, 0x01))) * 1.25e-3
        volts = _swap16(self.bus.read_word_data(self.address, 0x02)) * 1.25e-3
        return volts, amps


_PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-\d.eE+]+)[AV]\s*$")


def parse_pmic_adc(text: str) -> dict[str, float]:
    """Watts per rail from ``vcgencmd pmic_read_adc``: rails with both a current and a voltage line.

    >>> parse_pmic_adc("  VDD_CORE_A current(7)=2.0A\\n  VDD_CORE_V volt(15)=0.8V\\n  EXT5V_V volt(24)=5.1V\\n")
    {'VDD_CORE': 1.6}
    """
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        found = _PMIC_LINE.match(line)
        if found:
            rail, unit, value = found.groups()
            (amps if unit == "A" else volts)[rail] = float(value)
    return {rail: amps[rail] * volts[rail] for rail in amps if rail in volts}


class Pi5PmicMeter:
    """The Raspberry Pi 5's PMIC: the sum of voltage x current over its rails (the board, not the USB input)."""

    name = "pi5-pmic"

    def __init__(self, runner: Callable[[Sequence[str]], str] | None = None) -> None:
        self._run = runner or _run_command
        self.read_watts()

    def rails(self) -> dict[str, float]:
        try:
            text = self._run(["vcgencmd", "pmic_read_adc"])
        except FileNotFoundError as exc:
            raise PowerMeterError("vcgencmd is not installed: this is not a Raspberry Pi (or install "
                                  "libraspberrypi-bin)") from exc
        except subprocess.CalledProcessError as exc:
            raise PowerMeterError(f"vcgencmd pmic_read_adc failed ({exc.returncode}): a Raspberry Pi 5 is needed; "
                                  "add your user to the 'video' group if it is a permission error") from exc
        rails = parse_pmic_adc(text)
        if not rails:
            raise PowerMeterError("vcgencmd pmic_read_adc printed no rails: only the Raspberry Pi 5 has this PMIC")
        return rails

    def read_watts(self) -> float:
        return sum(self.rails().values())

    def close(self) -> None:
        pass


def _run_command(cmd: Sequence[str]) -> str:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=True, timeout=5).stdout


class RaplMeter:
    """Intel/AMD RAPL package energy counters (microjoules) in /sys/class/powercap, differentiated over time."""

    def __init__(self, root: Path = Path("/sys/class/powercap"), clock: Callable[[], float] = time.monotonic) -> None:
        zones = sorted(p for p in Path(root).glob("intel-rapl:*") if ":" in p.name and p.name.count(":") == 1)
        if not zones:
            raise PowerMeterError(f"no RAPL package zones under {root}: the CPU or kernel does not expose RAPL")
        self.zones = zones
        self.name = f"rapl ({len(zones)} package{'s' if len(zones) > 1 else ''})"
        self._clock = clock
        self._ranges = [int((z / "max_energy_range_uj").read_text()) for z in zones]
        self._last = self._energy()
        self._last_t = clock()

    def _energy(self) -> list[int]:
        try:
            return [int((z / "energy_uj").read_text()) for z in self.zones]
        except PermissionError as exc:
            raise PowerMeterError(
                f"{exc.filename} is readable by root only: run as root, or `sudo chmod o+r "
                f"{self.zones[0]}/energy_uj` (and the other zones) for this boot"
            ) from exc

    def read_watts(self) -> float:
        """Average power since the previous read (0 on the first call if no time passed)."""
        now, energy = self._clock(), self._energy()
        joules = 0.0
        for before, after, span in zip(self._last, energy, self._ranges):
            delta = after - before
            joules += (delta if delta >= 0 else delta + span) * 1e-6
        elapsed = now - self._last_t
        self._last, self._last_t = energy, now
        return joules / elapsed if elapsed > 0 else 0.0

    def close(self) -> None:
        pass


class HwmonMeter:
    """``power*_input`` sensors (microwatts) in /sys/class/hwmon, summed."""

    def __init__(self, root: Path = Path("/sys/class/hwmon")) -> None:
        self.sensors = sorted(Path(root).glob("hwmon*/power*_input"))
        if not self.sensors:
            raise PowerMeterError(f"no power*_input sensors under {root}: this machine's hwmon reports no power")
        labels = [(s.parent / "name").read_text().strip() if (s.parent / "name").exists() else s.parent.name
                  for s in self.sensors]
        self.name = f"hwmon ({', '.join(sorted(set(labels)))})"
        self.read_watts()

    def read_watts(self) -> float:
        try:
            return sum(int(s.read_text()) for s in self.sensors) * 1e-6
        except PermissionError as exc:
            raise PowerMeterError(f"{exc.filename} is not readable: run as root or add a udev rule") from exc
        except OSError as exc:
            raise PowerMeterError(f"reading {self.sensors[0].parent}: {exc}") from exc

    def close(self) -> None:
        pass


def _smbus(bus: int) -> SMBusLike:
    try:
        from smbus2 import SMBus
    except ImportError as exc:
        raise PowerMeterError("I2C meters need smbus2: pip install 'edge-digits[pi]'") from exc
    try:
        bus_device: SMBusLike = SMBus(bus)
        return bus_device
    except (FileNotFoundError, PermissionError) as exc:
        raise PowerMeterError(f"cannot open /dev/i2c-{bus}: enable I2C (raspi-config) and join the 'i2c' group") \
            from exc


# The one list of meters (the CLI's --power-meter choices read it): kind -> opener(i2c_bus, address, shunt_ohms).
METER_OPENERS: dict[str, Callable[[int, int, float], PowerMeter]] = {
    "ina219": lambda bus, address, shunt: Ina219Meter(_smbus(bus), address, shunt),
    "ina260": lambda bus, address, shunt: Ina260Meter(_smbus(bus), address),
    "pi5-pmic": lambda bus, address, shunt: Pi5PmicMeter(),
    "rapl": lambda bus, address, shunt: RaplMeter(),
    "hwmon": lambda bus, address, shunt: HwmonMeter(),
}
AUTO_ORDER = ("pi5-pmic", "ina260", "ina219", "rapl", "hwmon")   # what ``auto`` tries, best first
METERS = ("auto", "none", *METER_OPENERS)


def open_meter(kind: str, i2c_bus: int = 1, address: int = 0x40, shunt_ohms: float = 0.1) -> PowerMeter | None:
    """The meter ``kind`` (None for ``none``); ``auto`` tries each in turn and returns the first that reads."""
    if kind == "none":
        return None
    if kind == "auto":
        errors = []
        for candidate in AUTO_ORDER:
            if candidate.startswith("ina") and not Path(f"/dev/i2c-{i2c_bus}").exists():
                errors.append(f"{candidate}: no /dev/i2c-{i2c_bus}")
                continue
            try:
                return open_meter(candidate, i2c_bus, address, shunt_ohms)
            except PowerMeterError as exc:
                errors.append(f"{candidate}: {exc}")
        raise PowerMeterError("no power meter works here:\n  " + "\n  ".join(errors))
    if kind in METER_OPENERS:
        return METER_OPENERS[kind](i2c_bus, address, shunt_ohms)
    raise PowerMeterError(f"unknown power meter {kind!r}: choose from {', '.join(METERS)}")


@dataclass
class PowerTrace:
    """Samples (seconds since start, watts) and the labelled windows of load."""

    meter: str
    rate_hz: float
    samples: list[tuple[float, float]] = field(default_factory=list)
    windows: list[tuple[str, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def mean(self, start: float, end: float) -> float | None:
        values = [w for t, w in self.samples if start <= t <= end]
        return sum(values) / len(values) if values else None

    def count(self, start: float, end: float) -> int:
        return sum(1 for t, _ in self.samples if start <= t <= end)


class PowerSampler:
    """Reads a meter at a fixed rate in a background thread while the load runs."""

    def __init__(self, meter: PowerMeter, rate_hz: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_hz <= 0:
            raise ValueError("sampling rate must be positive")
        self.meter = meter
        self.trace = PowerTrace(meter.name, rate_hz)
        self._clock = clock
        self._t0 = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)

    def now(self) -> float:
        return self._clock() - self._t0

    def _loop(self) -> None:
        period = 1.0 / self.trace.rate_hz
        while not self._stop.is_set():
            t = self.now()
            try:
                self.trace.samples.append((t, float(self.meter.read_watts())))
            except (PowerMeterError, OSError) as exc:
                self.trace.errors.append(f"{t:.3f}s: {exc}")
            self._stop.wait(max(0.0, period - (self.now() - t)))

    def __enter__(self) -> PowerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def mark(self, label: str, start: float, end: float) -> None:
        self.trace.windows.append((label, start, end))


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per inference from idle and active power: (active - idle) x time / inferences."""

    idle_watts: float
    active_watts: float
    seconds: float
    inferences: int
    joules_per_inference: float
    idle_samples: int
    active_samples: int


def energy_per_inference(trace: PowerTrace, idle: tuple[float, float], active: tuple[float, float],
                         inferences: int) -> EnergyEstimate | None:
    """None when either window has no samples or nothing ran."""
    idle_w, active_w = trace.mean(*idle), trace.mean(*active)
    if idle_w is None or active_w is None or inferences <= 0:
        return None
    seconds = active[1] - active[0]
    return EnergyEstimate(idle_w, active_w, seconds, inferences, (active_w - idle_w) * seconds / inferences,
                          trace.count(*idle), trace.count(*active))
