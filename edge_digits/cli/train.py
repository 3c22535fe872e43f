"""The training commands: ``train``, ``train-reject`` and ``tune``."""

from __future__ import annotations

from pathlib import Path

import click

from edge_digits.cli.common import EdgeDigitsError, cache_option, check_out_dir, main, parse_size


@main.command("train")
@click.option("--recipe", "recipe_name", required=True,
              help="A recipe name from training/recipes (standard, micro, seed-cnn, logreg) or a .yaml path "
                   "(such as training/recipes/lab/micro-distilled.yaml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, required=True,
              help="Folder for the models, report.json and plots.")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes the run repeatable.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUT from its last checkpoint.")
@click.option("--epochs", type=click.IntRange(1, 500), default=None, help="Override the recipe's epochs.")
@cache_option
def train_cmd(recipe_name: str, out: Path, seed: int, resume: bool, epochs: int | None,
              cache_dir: Path | None) -> None:
    """Train a recipe: quantization-aware int8 model, float model, report and plots."""
    from edge_digits.data import DataError, load_mnist
    from edge_digits.train.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(recipe_name)
        data = load_mnist(cache_dir)
    except (RecipeError, DataError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    from edge_digits.train.techniques import TeacherError
    from edge_digits.train.trainer import train

    try:
        result = train(recipe, out, seed=seed, resume=resume, data=data, epochs=epochs)
    except TeacherError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    r = result.report
    acc = r["accuracy"]
    click.echo(f"wrote {', '.join(result.files)} to {out}")
    click.echo(f"{recipe.name}: {r['parameters']} parameters, {r['macs']} MACs, int8 .tflite {r['tflite_int8_bytes']} "
               f"bytes ({r['tflite_int8_zlib_bytes']} zlib-compressed, {r['weight_sparsity_int8']:.0%} zero "
               f"weights), trained in {r['training_seconds']:.0f} s")
    if r["techniques"]:
        click.echo("techniques: " + "; ".join(f"{k} {v}" for k, v in r["techniques"].items()))
    qat = f", QAT {acc['qat_keras']:.2%}" if acc.get("qat_keras") is not None else ""
    click.echo(f"test accuracy: float {acc['float_keras']:.2%}{qat}, int8 TFLite {acc['int8_tflite']:.2%}")


@main.command("train-reject")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, required=True,
              help="Folder for reject_int8.tflite, report.json and report.md.")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes the run repeatable.")
@click.option("--positives", type=click.IntRange(100, 55000), default=50000, show_default=True,
              help="MNIST training digits to learn from.")
@click.option("--negatives", type=click.IntRange(100, 1000000), default=50000, show_default=True,
              help="Generated glyphs that are not digits.")
@click.option("--epochs", type=click.IntRange(1, 200), default=12, show_default=True)
def train_reject_cmd(out: Path, seed: int, positives: int, negatives: int, epochs: int) -> None:
    """Train the rejection model that drops glyphs which are not handwritten digits (needs [train])."""
    try:
        from edge_digits.train.reject import RejectConfig, train_reject
    except ImportError as exc:
        raise EdgeDigitsError(f"training needs the train extra: pip install 'edge-digits[train]' ({exc})") from exc
    try:
        result = train_reject(out, RejectConfig(positives=positives, negatives=negatives, epochs=epochs, seed=seed))
    except ModuleNotFoundError as exc:
        raise EdgeDigitsError(f"training needs the train extra: pip install 'edge-digits[train]' ({exc})") from exc
    t = result.report["test"]
    for name in ("normal", "strict"):
        r = t[name]
        click.echo(f"{name}: threshold {r['threshold']}, rejection precision {r['rejection_precision']:.2%}, "
                   f"recall {r['rejection_recall']:.2%}, digits kept {r['digits_kept']:.2%}")
    click.echo(f"wrote {out / 'reject_int8.tflite'} and {out / 'report.md'}")


@main.command("tune")
@click.option("--base", default="micro", show_default=True,
              help="Recipe whose training, augmentation and QAT every trial keeps (name or .yaml path).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, required=True,
              help="Folder for the trials, study.db (default storage), tune.md/json, pareto.png, best.yaml.")
@click.option("--trials", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="Trials this worker adds to the study.")
@click.option("--epochs", type=click.IntRange(1, 500), default=None,
              help="Float epochs per trial (default: the base recipe's); best.yaml keeps the base's.")
@click.option("--max-flash", callback=parse_size, help="Budget for the int8 .tflite, e.g. 24KB.")
@click.option("--max-arena", callback=parse_size, help="Budget for the TFLM arena, e.g. 12KB.")
@click.option("--max-macs", type=click.IntRange(1), default=None, help="Budget for MACs per inference.")
@click.option("--max-latency-ratio", type=click.FloatRange(0, min_open=True), default=None,
              help="Budget for per-image latency over --latency-reference's (XNNPACK, one thread, the worse of "
                   "batch 1 and 20, measured side by side), e.g. 0.5.")
@click.option("--latency-reference", default="seed-cnn", show_default=True,
              help="The model the latency budget is relative to (a bundled name or a .tflite).")
@click.option("--space", type=click.Choice(["micro", "pi"]), default="micro", show_default=True,
              help="Search space: micro (3x3 convs between max pools) or pi (stride-2 convs to 7x7, global "
                   "average pooling).")
@click.option("--storage", help="Optuna storage URL shared by workers, e.g. postgresql://user:pw@host/db "
                                "(default: sqlite:///OUT/study.db).")
@click.option("--study-name", default="edge-digits", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Training seed (data split, initial weights) of every trial, so trials compare.")
@click.option("--sampler-seed", type=int, default=None,
              help="Seed of the TPE sampler (give each worker its own; default: random).")
@click.option("--no-base-trial", is_flag=True, help="Do not start a new study with the base recipe's own network.")
@cache_option
def tune_cmd(base: str, out: Path, trials: int, epochs: int | None, max_flash: int | None, max_arena: int | None,
             max_macs: int | None, max_latency_ratio: float | None, latency_reference: str, space: str,
             storage: str | None, study_name: str, seed: int, sampler_seed: int | None, no_base_trial: bool,
             cache_dir: Path | None) -> None:
    """Search int8 CNNs with Optuna's TPE sampler under flash, arena, MAC and latency budgets."""
    from edge_digits.data import DataError, load_mnist
    from edge_digits.train.tune import Budget, TuneError, run_tune

    try:
        data = load_mnist(cache_dir)
        budget = Budget(max_flash, max_arena, max_macs, max_latency_ratio, latency_reference)
        result = run_tune(base, out, trials, budget, epochs=epochs, storage=storage, study_name=study_name,
                          seed=seed, sampler_seed=sampler_seed, data=data, include_base=not no_base_trial,
                          space=space)
    except (TuneError, DataError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    trained = [t for t in result.trials if t.val_accuracy is not None]
    click.echo(f"study {result.study_name}: {len(result.trials)} trials, {len(trained)} trained, "
               f"{sum(1 for t in result.trials if not t.feasible)} over budget; "
               f"Pareto front: trials {', '.join(str(t.number) for t in result.pareto) or 'none'}")
    if result.best:
        b = result.best
        click.echo(f"best: trial {b.number} {b.params}: val int8 {b.val_accuracy:.2%}, test int8 "
                   f"{b.test_accuracy:.2%}, flash {b.flash_bytes} B, arena {b.arena_bytes} B, {b.macs} MACs"
                   + (f", latency {b.latency_ratio:.2f}x {latency_reference}'s" if b.latency_ratio else ""))
    else:
        click.echo("no trial met the budgets: loosen them or change --base")
    click.echo(f"wrote {', '.join(str(f) for f in result.files)}")
