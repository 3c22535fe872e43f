"""Targets as data: every target.toml loads and checks, the Makefile reads the same description, a new board
is one new folder, and the flash commands come from each board's entry."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.firmware import targets
from edge_digits.firmware.flash import FlashError, flash_command
from edge_digits.firmware.targets import TargetError, load_target, resolve

CSRC = Path(targets.__file__).resolve().parent / "csrc"
HAVE_ARM_GCC = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("make") is not None

MINIMAL = """
name = "{name}"
core = "Cortex-M4F"
summary = "a test board"
cpuid_partno = 0xC24
cpu_flags = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
kernels = "dsp"
sources = ["common/cmsdk_board.c", "common/cmsdk_uart.c"]
image = "bin"
default_board = "{name}"

[memory]
flash_origin = 0x00000000
flash_size = "512K"
ram_origin = 0x20000000
ram_size = "128K"
stack_size = "8K"

[config]
ED_CLOCK_HZ = 25_000_000
ED_UART_CLOCK_HZ = 25_000_000
ED_UART0_BASE = 0x40004000

[[board]]
name = "{name}"
summary = "the test board under QEMU"
qemu_machine = "mps2-an386"
"""


def test_every_target_folder_is_in_the_registry_with_its_boards() -> None:
    folders = {p.parent.name for p in (CSRC / "targets").glob("*/target.toml")}
    assert folders == set(targets.TARGETS) >= {"microbit", "mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505",
                                                "mps3-an547", "stm32f4"}
    for name, t in targets.TARGETS.items():
        assert t.folder.name == name and targets.boards_of(name)[0] == t.default_board
        assert t.memory.stack_size < t.memory.ram_size and t.memory.flash_size >= 64 * 1024
        assert t.cpu_flags[0].startswith("-mcpu=") and "-mthumb" in t.cpu_flags
    assert targets.TARGETS["microbit"].kernels == "scalar" and targets.TARGETS["mps2-an385"].kernels == "scalar"
    assert {targets.TARGETS[n].kernels for n in ("mps2-an386", "mps2-an500", "mps2-an505", "stm32f4",
                                                 "rp2350")} == {"dsp"}
    assert targets.TARGETS["mps3-an547"].kernels == "mve"
    assert targets.TARGETS["mps3-an547"].kernel_choices() == ("scalar", "dsp", "mve")
    assert targets.BOARDS["netduinoplus2"].qemu_serial_index == 1
    assert set(targets.hardware_boards()) >= {"nucleo-f446re", "blackpill-f411"}


def test_the_make_config_carries_the_description(tmp_path: Path) -> None:
    mk = targets.write_make_config("stm32f4", "blackpill-f411", None, tmp_path)
    text = mk.read_text()
    assert "ED_CPU := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16" in text
    assert "ED_KERNEL_FLAGS := -DED_KERNELS_DSP" in text and "ED_TARGET_SRC := targets/stm32f4/board.c" in text
    header = (tmp_path / "target.h").read_text()
    assert '#define ED_BOARD_NAME "blackpill-f411"' in header and "#define ED_SYSCLK_HZ 100000000u" in header
    link = (tmp_path / "link.ld").read_text()
    assert "ORIGIN = 0x08000000, LENGTH = 524288" in link and "STACK_SIZE = 8192;" in link
    before = mk.stat().st_mtime_ns
    targets.write_make_config("stm32f4", "blackpill-f411", None, tmp_path)
    assert mk.stat().st_mtime_ns == before, "an unchanged config is not rewritten (make would restart)"
    targets.write_make_config("stm32f4", "blackpill-f411", "scalar", tmp_path)
    assert "-DED_KERNELS_SCALAR" in mk.read_text()


@pytest.mark.parametrize(("edit", "says"), [
    (lambda s: s.replace('kernels = "dsp"', 'kernels = "neon"'), "kernels = 'neon' is not one of scalar, dsp, mve"),
    (lambda s: s.replace('image = "bin"', 'image = "bin"\ncolour = "red"'), "unknown key(s) colour"),
    (lambda s: s.replace('stack_size = "8K"', 'stack_size = "8 kB"'), "'8 kB' is not a size"),
    (lambda s: s.replace('default_board = "{name}"', 'default_board = "other"'), "default_board 'other'"),
    (lambda s: s.replace('cpuid_partno = 0xC24', 'cpuid_partno = "C24"'), "cpuid_partno = 'C24' has the wrong type"),
    (lambda s: s.replace('ED_CLOCK_HZ = 25_000_000', 'CLOCK = 25_000_000'), "macros are ED_NAME"),
    (lambda s: s.replace('qemu_machine = "mps2-an386"', ''), "needs flash_methods"),
    (lambda s: s.replace('"common/cmsdk_uart.c"', '"common/nope.c"'), "source common/nope.c does not exist"),
    (lambda s: s.replace("[memory]", "[memory\n"), "not valid TOML"),
])
def test_a_malformed_description_is_an_error_naming_file_and_key(tmp_path: Path, edit, says: str) -> None:
    path = tmp_path / "my-board" / "target.toml"
    path.parent.mkdir()
    path.write_text(edit(MINIMAL).format(name="my-board"))
    with pytest.raises(TargetError) as err:
        load_target(path)
    assert str(path) in str(err.value) and says in str(err.value), str(err.value)


def test_a_folder_name_that_differs_from_the_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "folder" / "target.toml"
    path.parent.mkdir()
    path.write_text(MINIMAL.format(name="my-board"))
    with pytest.raises(TargetError, match="must be the folder's name 'folder'"):
        load_target(path)


def test_builds_are_checked_against_the_descriptions() -> None:
    assert resolve("mps3-an547", None, "scalar")[2] == "scalar" and resolve("mps3-an547")[2] == "mve"
    with pytest.raises(TargetError, match=r"microbit \(Cortex-M0\) cannot build 'dsp' kernels: choose from scalar"):
        resolve("microbit", None, "dsp")
    with pytest.raises(TargetError, match="unknown stm32f4 board 'microbit'"):
        resolve("stm32f4", "microbit")
    result = CliRunner().invoke(main, ["firmware", "build", "--target", "mps2-an385", "--kernels", "dsp"])
    assert result.exit_code == 1 and "cannot build 'dsp' kernels" in result.output, result.output


@pytest.mark.skipif(not HAVE_ARM_GCC, reason="the Cortex-M toolchain comes from `make setup-system`")
def test_a_new_board_is_one_folder_with_its_description(tmp_path: Path) -> None:
    """A copy of the firmware sources plus one new targets/<name>/target.toml builds with the plain Makefile:
    its flags, memory map and config reach the compiler and linker."""
    from edge_digits.engine.generate import generate
    from edge_digits.firmware.build import info_header
    from edge_digits.models import bundled_model

    src = tmp_path / "csrc"
    shutil.copytree(CSRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "targets" / "my-board").mkdir()
    (src / "targets" / "my-board" / "target.toml").write_text(
        MINIMAL.format(name="my-board").replace('ED_CLOCK_HZ = 25_000_000', 'ED_CLOCK_HZ = 12_345_678'))
    gen = tmp_path / "gen"
    engine = generate(bundled_model("micro"), gen, simd="dsp")
    (gen / "ed_info.h").write_text(info_header(engine.model_sha256, [1, 28, 28, 1], engine.input_scale,
                                               engine.input_zero_point, 10, "my-board", "-Os", "dsp"))
    # the copied target_config.py imports the targets module beside the copy: point it at the copy's tree
    pkg = tmp_path / "edge_digits" / "firmware"
    pkg.mkdir(parents=True)
    (tmp_path / "edge_digits" / "__init__.py").write_text("__version__ = 'test'\n")
    (pkg / "__init__.py").write_text("")
    shutil.copy(Path(targets.__file__), pkg / "targets.py")
    shutil.move(str(src), pkg / "csrc")
    src = pkg / "csrc"
    out = tmp_path / "out"
    proc = subprocess.run(["make", "-s", "-C", str(src), "TARGET=my-board", f"GEN_DIR={gen}", f"OUT={out}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "firmware.elf").is_file() and (out / "firmware.bin").stat().st_size > 10_000
    assert "#define ED_CLOCK_HZ 12345678u" in (out / "config" / "target.h").read_text()
    assert b"my-board" in (out / "firmware.bin").read_bytes()
    disasm = subprocess.run(["arm-none-eabi-objdump", "-d", str(out / "firmware.elf")], capture_output=True,
                            text=True).stdout
    assert "smlad" in disasm, "the description's DSP kernels were built"
    bad = subprocess.run(["make", "-s", "-C", str(src), "TARGET=nope", f"GEN_DIR={gen}", f"OUT={out}"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown TARGET 'nope'" in bad.stderr and "my-board" in bad.stderr


def test_flash_commands_come_from_the_board_entries(tmp_path: Path) -> None:
    elf, image = Path("f.elf"), Path("f.bin")
    assert flash_command("stlink", elf, image, "blackpill-f411")[-1] == "0x08000000"
    assert flash_command("pyocd", elf, image, "nucleo-f446re") == ["pyocd", "flash", "--target", "stm32f446retx",
                                                                  "f.elf"]
    assert flash_command("openocd", elf, image, "nucleo-f446re")[:5] == ["openocd", "-f", "interface/stlink.cfg",
                                                                        "-f", "target/stm32f4x.cfg"]
    with pytest.raises(FlashError, match="board mps2-an386 is not flashed with stlink: use QEMU"):
        flash_command("stlink", elf, image, "mps2-an386")
    with pytest.raises(FlashError, match="unknown board 'nope'"):
        flash_command("stlink", elf, image, "nope")


def test_energy_estimates_come_from_the_datasheet_figures_of_the_description() -> None:
    from edge_digits.firmware import energy

    e = energy.estimate("blackpill-f411", 2_000_000, "instructions")
    assert e is not None and e.clock_hz == 100_000_000 and e.current_ma == 11.6
    assert e.time_ms == pytest.approx(20.0) and e.energy_uj == pytest.approx(3.3 * 11.6 * 20.0)
    assert "DS10314" in e.source
    assert energy.estimate("mps2-an386", 1e6, "instructions") is None, "an FPGA board has no datasheet current"
    # under QEMU the emulated core's count applies to every board of that core with figures
    m4 = {x.board for x in energy.estimates_for_run("mps2-an386", 3e6, under_qemu=True)}
    assert m4 == {"blackpill-f411", "netduinoplus2"}
    assert [x.board for x in energy.estimates_for_run("mps2-an505", 3e6, under_qemu=True)] == ["pico2"]
    assert energy.estimates_for_run("microbit", 3e6, under_qemu=True) == []
    own = energy.estimates_for_run("blackpill-f411", 5e6, under_qemu=False)
    assert [(x.board, x.count_is) for x in own] == [("blackpill-f411", "cycles")]
    assert all(r.energy_uj > 0 and r.latency_ms > 0 and "tiny_results" in r.source for r in energy.MLPERF_TINY)


def test_bench_shows_a_device_runs_energy_estimates_beside_mlperf_tiny() -> None:
    from dataclasses import asdict

    from edge_digits.firmware import energy
    from edge_digits.measure import bench

    est = [e.to_dict() for e in energy.estimates_for_run("mps2-an386", 2.5e6, under_qemu=True)]
    summary = bench.device_summary({"clock_hz": 25_000_000, "count": 10, "accuracy": 1.0, "agreement": 1.0,
                                    "cycles_median": 62_500, "cycles_p99": 62_500, "cycle_note": "QEMU -icount",
                                    "instructions_median": 2.5e6, "info": {"board": "mps2-an386"},
                                    "energy_estimates": est,
                                    "energy_references": [asdict(r) for r in energy.MLPERF_TINY]})
    report = bench.BenchReport(bench.system_facts(), [], None, summary, [])
    text = bench.markdown(report, "seed-cnn_int8")
    assert "ESTIMATED from datasheet run current" in text and "| blackpill-f411 | Cortex-M4F | 100 MHz |" in text
    assert "MLPerf Tiny" in text and "7,374 uJ" in text
