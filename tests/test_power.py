"""Power meters against fakes of their hardware: sysfs trees, an I2C bus, recorded vcgencmd output."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from edge_digits import power

DATA = Path(__file__).parent / "data"


class FakeInaBus:
    """An SMBus whose INA registers hold the datasheet encodings of known volts and amps."""

    def __init__(self, chip: str, volts: float, amps: float, shunt_ohms: float = 0.1, address: int = 0x40) -> None:
        self.address, self.writes = address, []
        if chip == "ina219":
            shunt_raw = round(amps * shunt_ohms / 10e-6) & 0xFFFF
            bus_raw = (round(volts / 4e-3) << 3) | 0x2  # conversion-ready bit set, as the chip does
            self.registers = {0x01: shunt_raw, 0x02: bus_raw}
        else:
            self.registers = {0x01: round(amps / 1.25e-3) & 0xFFFF, 0x02: round(volts / 1.25e-3), 0xFE: 0x5449}

    def read_word_data(self, addr: int, register: int) -> int:
        if addr != self.address:
            raise OSError(121, "Remote I/O error")
        value = self.registers[register]
        return ((value & 0xFF) << 8) | (value >> 8)  # SMBus delivers the low byte first

    def write_word_data(self, addr: int, register: int, value: int) -> None:
        if addr != self.address:
            raise OSError(121, "Remote I/O error")
        self.writes.append((register, value))


@pytest.mark.parametrize("volts, amps", [(5.1, 0.62), (12.0, 1.5), (3.3, -0.2)])
def test_ina219_reads_volts_and_amps(volts: float, amps: float) -> None:
    bus = FakeInaBus("ina219", volts, amps)
    meter = power.Ina219Meter(bus, shunt_ohms=0.1)
    got_v, got_a = meter.volts_amps()
    assert got_v == pytest.approx(volts, abs=4e-3) and got_a == pytest.approx(amps, abs=1e-4)
    assert meter.read_watts() == pytest.approx(volts * amps, rel=2e-3)
    assert bus.writes == [(0x00, 0x9F39)]


@pytest.mark.parametrize("volts, amps", [(5.05, 0.75), (24.0, 2.5), (5.0, -0.1)])
def test_ina260_reads_volts_and_amps(volts: float, amps: float) -> None:
    meter = power.Ina260Meter(FakeInaBus("ina260", volts, amps))
    assert meter.volts_amps() == pytest.approx((volts, amps), abs=1.3e-3)


def test_ina_absent_or_wrong_chip() -> None:
    with pytest.raises(power.PowerMeterError, match="no INA219 answers at I2C address 0x41"):
        power.Ina219Meter(FakeInaBus("ina219", 5, 1), address=0x41)
    bus = FakeInaBus("ina260", 5, 1)
    bus.registers[0xFE] = 0x1234
    with pytest.raises(power.PowerMeterError, match="not an INA260"):
        power.Ina260Meter(bus)


def test_pi5_pmic_from_recorded_output() -> None:
    text = (DATA / "pmic_read_adc_pi5.txt").read_text()
    meter = power.Pi5PmicMeter(runner=lambda cmd: text)
    rails = meter.rails()
    assert len(rails) == 12 and "EXT5V" not in rails and "BATT" not in rails
    assert rails["VDD_CORE"] == pytest.approx(6.22421 * 0.861733)
    assert meter.read_watts() == pytest.approx(7.2398, abs=1e-3)


def test_pi5_pmic_absent() -> None:
    def missing(cmd):
        raise FileNotFoundError(cmd[0])

    with pytest.raises(power.PowerMeterError, match="vcgencmd is not installed"):
        power.Pi5PmicMeter(runner=missing)

    def fails(cmd):
        raise subprocess.CalledProcessError(255, cmd)

    with pytest.raises(power.PowerMeterError, match="Raspberry Pi 5 is needed"):
        power.Pi5PmicMeter(runner=fails)
    with pytest.raises(power.PowerMeterError, match="printed no rails"):
        power.Pi5PmicMeter(runner=lambda cmd: "error=1 error_msg=\"Command not registered\"\n")


def _rapl_tree(root: Path, energy: int, max_range: int = 262143328850) -> Path:
    zone = root / "intel-rapl:0"
    (zone / "intel-rapl:0:0").mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    (zone / "intel-rapl:0:0" / "energy_uj").write_text("5\n")
    return zone


def test_rapl_differentiates_energy_and_handles_wrap(tmp_path: Path) -> None:
    zone = _rapl_tree(tmp_path, energy=1_000_000, max_range=10_000_000)
    now = [100.0]
    meter = power.RaplMeter(tmp_path, clock=lambda: now[0])
    assert meter.zones == [zone]
    now[0] += 2.0
    (zone / "energy_uj").write_text("9000000\n")
    assert meter.read_watts() == pytest.approx(4.0)
    now[0] += 1.0
    (zone / "energy_uj").write_text("2000000\n")  # wrapped past 10 J
    assert meter.read_watts() == pytest.approx(3.0)


def test_rapl_absent_and_root_only(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(power.PowerMeterError, match="no RAPL package zones"):
        power.RaplMeter(tmp_path)
    _rapl_tree(tmp_path, 1)
    real = Path.read_text

    def deny(self: Path, *args, **kwargs):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(power.PowerMeterError, match="readable by root only.*chmod o\\+r"):
        power.RaplMeter(tmp_path)


def test_hwmon_sums_power_sensors(tmp_path: Path) -> None:
    for i, (name, uw) in enumerate([("ina3221", 1_500_000), ("amdgpu", 2_250_000)]):
        d = tmp_path / f"hwmon{i}"
        d.mkdir()
        (d / "name").write_text(name + "\n")
        (d / "power1_input").write_text(f"{uw}\n")
    meter = power.HwmonMeter(tmp_path)
    assert meter.read_watts() == pytest.approx(3.75) and "amdgpu" in meter.name
    with pytest.raises(power.PowerMeterError, match="no power\\*_input sensors"):
        power.HwmonMeter(tmp_path / "empty")


def test_sampler_and_energy_per_inference() -> None:
    class Stepped:
        name = "stepped"

        def __init__(self) -> None:
            self.watts = 2.0

        def read_watts(self) -> float:
            return self.watts

        def close(self) -> None:
            pass

    meter = Stepped()
    with power.PowerSampler(meter, rate_hz=200) as sampler:
        time.sleep(0.15)
        idle = (0.0, sampler.now())
        meter.watts = 5.0
        time.sleep(0.02)
        start = sampler.now()
        time.sleep(0.2)
        active = (start, sampler.now())
        sampler.mark("load", *active)
    estimate = power.energy_per_inference(sampler.trace, idle, active, inferences=100)
    assert estimate is not None and estimate.idle_samples >= 5 and estimate.active_samples >= 5
    assert estimate.idle_watts == pytest.approx(2.0) and estimate.active_watts == pytest.approx(5.0)
    assert estimate.joules_per_inference == pytest.approx(3.0 * (active[1] - active[0]) / 100)
    assert sampler.trace.windows == [("load", *active)]


def test_open_meter_none_and_unknown() -> None:
    assert power.open_meter("none") is None
    with pytest.raises(power.PowerMeterError, match="unknown power meter"):
        power.open_meter("joulescope")
