"""The measuring commands: ``eval`` (accuracy, robustness) and ``bench`` (latency, throughput, power)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_digits.cli.common import (
    BACKEND_CHOICES,
    EdgeDigitsError,
    cache_option,
    check_out_dir,
    main,
    open_meter_or_warn,
    parse_int_list,
    resolve_model_arg,
    with_power_options,
)


@main.command("eval")
@click.argument("models", nargs=-1)
@click.option("--backend", type=click.Choice(BACKEND_CHOICES),
              default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--limit", type=click.IntRange(0, 10000), default=0, help="Only the first N test images (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--robustness", is_flag=True,
              help="Accuracy curves under noise, rotation, blur, thickness, contrast, translation and FGSM.")
@click.option("--perturbation", "perturbations", multiple=True,
              help="With --robustness: only these (repeatable; default all).")
@click.option("--keras", "keras_models", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="With --robustness: the Keras model behind each MODEL, in order, for FGSM "
                   "(default: model_qat.h5 or model.keras beside the .tflite, as a training run writes them).")
@click.option("--seed", type=int, default=0, show_default=True, help="With --robustness: seed of the perturbations.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir,
              help="With --robustness: folder for robustness.json, robustness.md and the plots.")
@cache_option
def eval_cmd(models: tuple[str, ...], backend: str, threads: int, limit: int, as_json: bool, robustness: bool,
             perturbations: tuple[str, ...], keras_models: tuple[Path, ...], seed: int, out: Path | None,
             cache_dir: Path | None) -> None:
    """Accuracy and confusion matrix of each MODEL (a .tflite, or a bundled name; default standard) on MNIST test.

    With --robustness, the accuracy of the models side by side under growing perturbations.
    """
    import json

    from edge_digits.data import DataError
    from edge_digits.measure.evaluate import evaluate_tflite
    from edge_digits.runtime import InferenceError
    from edge_digits.runtime.tflm import TflmError

    paths = [resolve_model_arg(m, "standard") for m in models] or [resolve_model_arg(None, "standard")]
    if robustness:
        _robustness(models or ("standard",), paths, keras_models, perturbations, seed, backend, limit, out,
                    as_json, cache_dir)
        return
    if perturbations or keras_models or out:
        raise EdgeDigitsError("--perturbation, --keras and --out go with --robustness")
    try:
        results = [evaluate_tflite(p, backend=backend, threads=threads, limit=limit, cache_dir=cache_dir)
                   for p in paths]
    except (InferenceError, TflmError, DataError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    if as_json:
        dicts = [r.to_dict() for r in results]
        click.echo(json.dumps(dicts[0] if len(dicts) == 1 else dicts, indent=2))
        return
    for result in results:
        click.echo(f"model: {result.model}")
        click.echo(f"backend: {result.backend}, {result.count} MNIST test images in {result.seconds:.2f} s")
        click.echo(f"accuracy: {result.accuracy:.2%} ({round(result.accuracy * result.count)}/{result.count})")
        click.echo("confusion (rows: true digit, columns: predicted):")
        click.echo("     " + "".join(f"{d:>6}" for d in range(10)))
        for digit, row in enumerate(result.confusion):
            click.echo(f"{digit:>4} " + "".join(f"{v:>6}" for v in row))


def _model_label(given: str, path: Path) -> str:
    """A short name for a model in tables: the bundled name, else the run folder or the file's stem."""
    if given == path.stem or "/" not in given and not given.endswith(".tflite"):
        return given
    return path.parent.name if path.stem in ("model_int8", "model") else path.stem


def _robustness(given: tuple[str, ...], paths: list[Path], keras_models: tuple[Path, ...],
                perturbations: tuple[str, ...], seed: int, backend: str, limit: int, out: Path | None,
                as_json: bool, cache_dir: Path | None) -> None:
    import json

    from edge_digits import plots
    from edge_digits.data import DataError, load_mnist
    from edge_digits.runtime import InferenceError
    from edge_digits.train import robustness

    if keras_models and len(keras_models) != len(paths):
        raise EdgeDigitsError(f"--keras was given {len(keras_models)} times for {len(paths)} models: "
                              "give one Keras model per MODEL, in the same order, or none")
    keras: list[Path | None] = [*keras_models] or [robustness.keras_beside(p) for p in paths]
    models = [(_model_label(g, p), p, k) for g, p, k in zip(given, paths, keras)]
    try:
        _, _, x, y = load_mnist(cache_dir)
        if limit:
            x, y = x[:limit], y[:limit]
        report = robustness.evaluate_robustness(models, x, y, list(perturbations) or None, seed, backend,
                                                progress=lambda s: click.echo(f"  {s}", err=True))
    except (robustness.RobustnessError, InferenceError, DataError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    if out is not None:
        files = robustness.write_report(report, out)
        click.echo(f"wrote {', '.join(f.name for f in files)} to {out}", err=True)
        if (why := plots.missing()) is not None:
            click.echo(f"note: no plots: {why}", err=True)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else robustness.report_markdown(report))


def _default_bench_models() -> list[Path]:
    from edge_digits.models import MODEL_DIR

    names = ("standard", "micro", "seed-cnn")
    return [MODEL_DIR / f"{n}_int8.tflite" for n in names if (MODEL_DIR / f"{n}_int8.tflite").is_file()]


@main.group("bench", invoke_without_command=True)
@click.option("--model", "models", multiple=True,
              help="A .tflite, or standard/micro (repeatable; default: the bundled models and the seed-cnn yardstick).")
@click.option("--backend", "backends", multiple=True,
              type=click.Choice(BACKEND_CHOICES),
              help="Interpreter backend (repeatable; default auto).")
@click.option("--threads", default="1,2", show_default=True, callback=parse_int_list, help="Thread counts, e.g. 1,2,4.")
@click.option("--batch", "batches", default="1", show_default=True, callback=parse_int_list,
              help="Batch sizes, e.g. 1,8,32.")
@click.option("--warmup", type=click.IntRange(0), default=20, show_default=True)
@click.option("--runs", type=click.IntRange(0), default=0, help="Calls per configuration (0: use --duration).")
@click.option("--duration", type=click.FloatRange(0.1), default=3.0, show_default=True,
              help="Seconds per configuration when --runs is 0.")
@with_power_options
@click.option("--power-rate", type=click.FloatRange(1, 1000), default=20.0, show_default=True,
              help="Samples per second.")
@click.option("--from-device", "device_json", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A RESULT.json from `edge-digits validate --json` to show beside the host figures.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, default=None,
              help="Folder for bench.json, bench.md and plots.")
@cache_option
@click.pass_context
def bench(ctx: click.Context, models: tuple[str, ...], backends: tuple[str, ...], threads: list[int],
          batches: list[int], warmup: int, runs: int, duration: float, power_meter: str, i2c_bus: int,
          i2c_address: int, shunt_ohms: float, power_rate: float, device_json: Path | None, out: Path | None,
          cache_dir: Path | None) -> None:
    """Latency, throughput, CPU time and energy per inference, as JSON, Markdown and plots."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from edge_digits import plots
    from edge_digits.data import DataError
    from edge_digits.measure import bench as b
    from edge_digits.runtime import InferenceError

    if out is None:
        raise click.UsageError("give --out DIR for the report")
    paths = [resolve_model_arg(m, "standard") for m in models] or _default_bench_models()
    meter = open_meter_or_warn(power_meter, i2c_bus, i2c_address, shunt_ohms)
    configs = len(paths) * len(backends or ("auto",)) * len(threads) * len(batches)
    device_result = json.loads(device_json.read_text()) if device_json else None
    try:
        with click.progressbar(length=configs, label="benchmarking") as bar:
            report = b.run_bench(paths, backends or ("auto",), threads, batches, warmup, runs, duration, meter,
                                 power_rate=power_rate, cache_dir=cache_dir, device_result=device_result,
                                 progress=lambda config: bar.update(1))
    except (InferenceError, DataError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    finally:
        if meter is not None:
            meter.close()
    files = b.write_report(report, out)
    click.echo(b.markdown(report))
    click.echo("wrote " + ", ".join(str(f) for f in files))
    if (why := plots.missing()) is not None:
        click.echo(f"note: no plots: {why}", err=True)


@bench.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def bench_compare(a: Path, b: Path) -> None:
    """Ratios of report B over report A for the configurations both measured."""
    import json

    from edge_digits.measure.bench import compare

    rows = compare(json.loads(a.read_text()), json.loads(b.read_text()))
    if not rows:
        raise EdgeDigitsError("the two reports share no configuration (same model, backend, threads and batch)")
    click.echo("| model | backend | threads | batch | p50 latency B/A | throughput B/A |")
    click.echo("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        tp = f"{r['throughput_ratio']:.2f}x" if r["throughput_ratio"] else "-"
        click.echo(f"| {r['model']} | {r['backend']} | {r['threads']} | {r['batch']} | {r['p50_ratio']:.2f}x | {tp} |")
