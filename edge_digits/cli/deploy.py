"""The deployment commands: ``convert`` (int8 .tflite, TFLM arrays, ONNX) and ``service-unit`` (systemd)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_digits.cli.common import EdgeDigitsError, cache_option, check_out_dir, check_out_file, main, resolve_model_arg


@main.command("convert")
@click.argument("model")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, required=True,
              help="Folder for model.tflite, model_data.h/.cc, model_ops.h and manifest.json.")
@click.option("--name", default="model", show_default=True, help="C identifier used to name the arrays.")
@click.option("--calibration", type=click.IntRange(1), default=500, show_default=True,
              help="MNIST training images for post-training quantization (Keras/SavedModel input only).")
@click.option("--verify", type=click.IntRange(0), default=200, show_default=True,
              help="MNIST test images run through TFLM and the desktop interpreter (0: skip).")
@click.option("--arena-margin", type=click.FloatRange(0, 10), default=0.10, show_default=True,
              help="Share added to the measured TFLM arena for the recommended size.")
@click.option("--format", "fmt", type=click.Choice(["tflm", "onnx"]), default="tflm", show_default=True,
              help="tflm: .tflite and C arrays for TFLM; onnx: model.onnx (tf2onnx) checked on onnxruntime.")
@cache_option
def convert(model: str, out: Path, name: str, calibration: int, verify: int, arena_margin: float, fmt: str,
            cache_dir: Path | None) -> None:
    """Turn MODEL (.tflite, .keras, .h5, SavedModel, or standard/micro) into an int8 model and C arrays for TFLM
    (or, with --format onnx, an int8 ONNX model)."""
    from edge_digits.data import DataError
    from edge_digits.deploy import convert as conv
    from edge_digits.runtime.tflm import TflmError

    if fmt == "onnx":
        _convert_onnx(resolve_model_arg(model, "standard"), out, calibration, verify, cache_dir)
        return
    try:
        result = conv.convert_model(resolve_model_arg(model, "standard"), out, name=name, calibration=calibration,
                                    verify=verify,
                                    arena_margin=arena_margin, cache_dir=cache_dir)
    except (conv.ConvertError, TflmError, DataError, ValueError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    m = result.manifest
    click.echo(f"wrote {', '.join(result.files)} to {result.out_dir}")
    click.echo(f"model: {m['flatbuffer_bytes']} bytes, sha256 {m['sha256']}")
    click.echo(f"ops ({len(m['ops'])}): {', '.join(m['ops'])}")
    click.echo(f"TFLM arena: {m['tflm_arena_bytes']} bytes measured, "
               f"{m['tflm_arena_recommended_bytes']} recommended (+{m['tflm_arena_margin']:.0%})")
    v = result.verification
    if v is not None:
        click.echo(f"verified on {v.count} MNIST test images: TFLM accuracy {v.tflm_accuracy:.2%}, "
                   f"{v.desktop_backend} accuracy {v.desktop_accuracy:.2%}, "
                   f"identical int8 outputs {v.identical_share:.2%} (max difference {v.max_abs_diff})")


def _convert_onnx(model: Path, out: Path, calibration: int, verify: int, cache_dir: Path | None) -> None:
    from edge_digits.data import DataError
    from edge_digits.deploy import convert as conv
    from edge_digits.deploy.onnx import OnnxError, export_onnx

    try:
        result = export_onnx(model, out, calibration=calibration, verify=verify, cache_dir=cache_dir)
    except (conv.ConvertError, OnnxError, DataError, ValueError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    m = result.manifest
    click.echo(f"wrote {', '.join(result.files)} to {result.out_dir}")
    click.echo(f"model.onnx: {m['onnx_bytes']} bytes (opset {m['opset']}), sha256 {m['sha256']}")
    click.echo("ops: " + ", ".join(f"{k} x{v}" for k, v in m["ops"].items()))
    v = result.verification
    if v is not None:
        click.echo(f"verified on {v.count} MNIST test images: onnxruntime accuracy {v.onnx_accuracy:.2%}, LiteRT "
                   f"{v.litert_accuracy:.2%}, identical int8 outputs {v.identical_share:.2%} "
                   f"(max difference {v.max_abs_diff})")


@main.command("service-unit", context_settings={"ignore_unknown_options": True})
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=check_out_file,
              help="Write the unit here (default: print it).")
@click.option("--user", default="pi", show_default=True, help="The user the service runs as.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def service_unit(out: Path | None, user: str, run_args: tuple[str, ...]) -> None:
    """A systemd unit that runs `edge-digits run RUN_ARGS` unattended (default: the camera, a daily log).

    Put the run options after `--`: edge-digits service-unit --out edge-digits.service -- --camera --rotate 90
    """
    from edge_digits.deploy.service import ServiceError, make_unit
    from edge_digits.fileio import atomic_write_text

    try:
        unit = make_unit(run_args, user)
    except ServiceError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    if out is None:
        click.echo(unit.text(), nl=False)
        return
    atomic_write_text(out, unit.text())
    click.echo(f"wrote {out}; install it with: sudo cp {out} /etc/systemd/system/ && "
               f"sudo systemctl daemon-reload && sudo systemctl enable --now {out.stem}")
