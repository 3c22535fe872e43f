"""The microcontroller commands: ``firmware generate|build|run``, ``flash`` and ``validate``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_digits.cli.common import EdgeDigitsError, cache_option, check_out_dir, check_out_file, main, resolve_model_arg
from edge_digits.firmware import targets
from edge_digits.firmware.flash import PROBES

if TYPE_CHECKING:
    from edge_digits.firmware.build import FirmwareBuild


@main.group()
def firmware() -> None:
    """Generate the native C engine, build microcontroller firmware, run it under QEMU."""


_target_option = click.option("--target", type=click.Choice(list(targets.TARGETS)), required=True,
                              help=targets.target_help() + ".")

_board_option = click.option("--board", type=click.Choice(list(targets.BOARDS)), default=None,
                             help="The board of the target (default: the target's QEMU board).")


def _default_fw_out(target: str, board: str | None) -> Path:
    return Path("build") / "firmware" / (board or target)


def _build(target: str, model: Path | None, out: Path | None, board: str | None, opt: str,
           kernels: str | None = None) -> FirmwareBuild:
    from edge_digits.engine.graph import UnsupportedModelError
    from edge_digits.firmware.build import FirmwareBuildError, build_firmware

    try:
        return build_firmware(target, resolve_model_arg(model, "micro"), out or _default_fw_out(target, board),
                              board=board, opt=opt, kernels=kernels)
    except (FirmwareBuildError, UnsupportedModelError, OSError) as exc:
        raise EdgeDigitsError(str(exc)) from exc


@firmware.command("generate")
@click.argument("model")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir,
              required=True,
              help="Folder to write model.c, model.h, the kernel sources and summary.json into (replaced).")
def firmware_generate(model: str, out_dir: Path) -> None:
    """Write C code for MODEL (.tflite, or standard/micro): weights in flash, one static scratch buffer, ed_invoke()."""
    from edge_digits.engine.generate import generate
    from edge_digits.engine.graph import UnsupportedModelError

    try:
        result = generate(resolve_model_arg(model, "micro"), out_dir)
    except (UnsupportedModelError, FileNotFoundError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    for layer in result.layers:
        click.echo(f"layer {layer.index:>2} {layer.op:<18} -> {str(layer.output_shape):<18} "
                   f"MACs {layer.macs:>9,}  weights {layer.weight_bytes:>7,} B")
    click.echo(f"input {result.input_size} B, output {result.output_size} B, "
               f"scratch RAM {result.scratch_bytes:,} B (without in-place overlap at least "
               f"{result.scratch_disjoint_bound:,} B), "
               f"weights flash {result.weight_bytes:,} B, {result.macs:,} MACs per inference")
    click.echo(f"wrote {', '.join(result.files)} to {result.out_dir}")


@firmware.command("build")
@_target_option
@_board_option
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="int8 .tflite (default: the bundled micro model).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, default=None,
              help="Output folder (default: build/firmware/TARGET).")
@click.option("--opt", type=click.Choice(["-Os", "-O2"]), default="-Os", show_default=True)
@click.option("--kernels", type=click.Choice(list(targets.KERNELS)), default=None,
              help="The engine's inner loops: scalar C, the DSP extension (SMLAD; M4/M7/M33/M55) or Helium "
                   "(MVE; M55). Default: the target's own (its target.toml).")
def firmware_build(target: str, board: str | None, model: Path | None, out: Path | None, opt: str,
                   kernels: str | None) -> None:
    """Build firmware.elf and firmware.bin with the native engine for MODEL."""
    result = _build(target, model, out, board, opt, kernels)
    click.echo(f"built {result.elf} and {result.bin} ({result.target}/{result.board}, {result.opt}, "
               f"{result.kernels} kernels)")
    click.echo(f"flash {result.flash_bytes} bytes (text+rodata {result.text_bytes}, data {result.data_bytes}); "
               f"static RAM {result.ram_static_bytes} bytes (data+bss, engine scratch "
               f"{result.engine_scratch_bytes}) + {result.stack_reserved_bytes} bytes of stack reserved")


@firmware.command("run")
@_target_option
@_board_option
@click.option("--elf", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Image to run (default: build the bundled micro model into build/firmware/TARGET).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Loopback TCP port for the UART.")
@click.option("--icount", type=click.IntRange(0, 10), default=None,
              help="Run QEMU with -icount shift=N: deterministic cycle counts that stand for instructions.")
def firmware_run(target: str, board: str | None, elf: Path | None, port: int | None, icount: int | None) -> None:
    """Start QEMU with the firmware; its UART listens on tcp:127.0.0.1:PORT until Ctrl-C (or SIGTERM)."""
    import signal

    from edge_digits.firmware.build import FirmwareBuildError
    from edge_digits.firmware.qemu import run_qemu

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt   # SIGTERM (kill, systemd) stops QEMU as Ctrl-C does, not leaving it running

    if elf is None:
        elf = Path(_build(target, None, None, board, "-Os").elf)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with run_qemu(target, elf, port=port, icount_shift=icount) as session:
            click.echo(f"QEMU {session.machine} runs {elf}; UART at {session.spec}")
            click.echo(f"try: edge-digits validate --port {session.spec} --count 100")
            try:
                session.process.wait()
            except KeyboardInterrupt:
                click.echo("stopping QEMU")
    except FirmwareBuildError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)


@main.command("validate")
@click.option("--port", "port_spec", required=True, help="tcp:HOST:PORT (QEMU) or a serial device (/dev/ttyACM0).")
@click.option("--baud", type=int, default=115200, show_default=True)
@click.option("--count", type=click.IntRange(1, 10000), default=100, show_default=True)
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The .tflite the firmware was built from (default: the bundled micro model).")
@click.option("--timeout", type=click.FloatRange(0.1), default=5.0, show_default=True, help="Seconds per reply.")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True)
@click.option("--icount", type=click.IntRange(0, 10), default=None,
              help="The -icount shift QEMU runs with, so the report says what the cycles mean.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), callback=check_out_file,
              default=None,
              help="Also write the result as JSON.")
@cache_option
def validate_cmd(port_spec: str, baud: int, count: int, model: Path | None, timeout: float, retries: int,
                 icount: int | None, json_out: Path | None, cache_dir: Path | None) -> None:
    """Send COUNT MNIST test images to a device and compare its outputs with the TFLM reference."""
    from edge_digits.fileio import atomic_write_json
    from edge_digits.firmware import device

    model_path = resolve_model_arg(model, "micro")
    try:
        reference = device.reference_model(model_path)   # TFLM first: a missing extra is said before any I/O
        port = device.open_port(port_spec, baud)
    except (device.PortError, RuntimeError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    try:
        client = device.DeviceClient(port, timeout=timeout, retries=retries)
        with click.progressbar(length=count, label="validating", file=None) as bar:
            result = device.validate(client, model_path, count, port_spec, cache_dir, icount,
                                     progress=lambda done, total: bar.update(1), reference=reference)
    except (device.PortError, RuntimeError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    finally:
        port.close()
    click.echo(f"device: {result.info.get('board')} ({result.info.get('firmware')}), clock {result.clock_hz} Hz")
    click.echo(f"images: {result.count}; accuracy {result.accuracy:.2%} (host TFLM {result.reference_accuracy:.2%}); "
               f"identical int8 outputs {result.agreement:.2%}")
    click.echo(f"cycles per inference: median {result.cycles_median:.0f}, p99 {result.cycles_p99:.0f} "
               f"({result.cycle_source}); {result.latency_ms_median:.3f} ms at {result.clock_hz / 1e6:.0f} MHz")
    if result.instructions_median is not None:
        click.echo(f"instructions per inference (QEMU -icount): {result.instructions_median:,.0f}")
    if result.stack_used_bytes is not None:
        click.echo(f"stack high-water mark after the run: {result.stack_used_bytes} bytes")
    click.echo(f"note: {result.cycle_note}")
    for e in result.energy_estimates:
        counted = f"{e['count']:,.0f} {e['count_is']}" + (" taken as cycles" if e["count_is"] != "cycles" else "")
        click.echo(f"energy per inference, ESTIMATE for {e['board']} ({e['core']} at {e['clock_hz'] / 1e6:.0f} MHz, "
                   f"{e['current_ma']:g} mA at {e['supply_v']:g} V from its datasheet; {counted}): "
                   f"{e['time_ms']:.2f} ms, {e['energy_uj']:.1f} uJ")
    if result.energy_estimates:
        from edge_digits.firmware.energy import MLPERF_TINY

        ref = MLPERF_TINY[0]
        click.echo(f"for scale, MLPerf Tiny {ref.version} {ref.system} ({ref.processor}, {ref.software}), "
                   f"{ref.benchmark}: {ref.latency_ms:g} ms, {ref.energy_uj:,.0f} uJ per inference (measured)")
    click.echo(f"retries {result.retries}, timeouts {result.timeouts}, device errors {len(result.device_errors)}")
    if json_out is not None:
        atomic_write_json(json_out, result.to_dict())
        click.echo(f"wrote {json_out}")


@main.command("flash")
@click.option("--target", type=click.Choice(sorted({targets.BOARDS[b].target for b in targets.hardware_boards()})),
              default="stm32f4", show_default=True)
@click.option("--board", type=click.Choice(list(targets.hardware_boards())), default="nucleo-f446re",
              show_default=True)
@click.option("--probe", type=click.Choice(list(PROBES)), required=True,
              help="How to write it: a debug probe (openocd, stlink, pyocd), or for a Pico the UF2 copied to "
                   "its boot drive (uf2-copy) or loaded with picotool. The board's target.toml lists its methods.")
@click.option("--drive", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="uf2-copy: the mounted boot drive (default: found by its INFO_UF2.TXT under /media).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, default=None)
def flash_cmd(target: str, board: str, probe: str, drive: Path | None, model: Path | None, out: Path | None) -> None:
    """Build (if needed) and write the firmware onto a board."""
    from edge_digits.firmware.flash import FlashError, flash

    if targets.BOARDS[board].target != target:
        raise EdgeDigitsError(f"board {board} is a board of target {targets.BOARDS[board].target}, not {target}")
    out = out or _default_fw_out(target, board)
    elf, image = out / "firmware.elf", out / f"firmware.{targets.TARGETS[target].image}"
    if model is not None or not image.exists():
        build = _build(target, model, out, board, "-Os")
        elf, image = Path(build.elf), Path(build.image)
    try:
        result = flash(probe, elf, image, board, drive)
    except FlashError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    click.echo(f"flashed {elf.name} with {' '.join(result.command)}")
