"""The reading commands: ``run`` (camera, video, images), ``eval-photos``, ``eval-scenes``, ``compose-scenes``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge_digits.cli.common import (
    EdgeDigitsError,
    check_out_dir,
    load_digit_classifier,
    main,
    open_meter_or_warn,
    page_options,
    parse_size,
    with_model_options,
    with_power_options,
)

if TYPE_CHECKING:
    from edge_digits.vision.observe import RunObserver
    from edge_digits.vision.reader import DigitClassifier


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
@click.option("--max-fps", type=click.FloatRange(0.1), default=None,
              help="Read at most this many frames a second (play a video or the demo clip at camera speed).")
@click.option("--demo-frames", type=click.IntRange(1), default=60, show_default=True,
              help="Length of the demo clip (read when there is no source and no camera).")
@click.option("--http", "http_address", default=None, metavar="[HOST:]PORT",
              help="Serve a live view (annotated video, settled strings, FPS, latency) on this address; "
                   "127.0.0.1 unless a HOST is given (0.0.0.0: every interface).")
@click.option("--http-fps", type=click.FloatRange(0.5, 60), default=10.0, show_default=True,
              help="Most video frames a second the live view encodes (only while someone watches).")
@click.option("--mqtt", "mqtt_url", default=None, metavar="mqtt://HOST[:PORT]/TOPIC",
              help="Publish each settled reading as JSON to an MQTT broker (needs edge-digits[mqtt]).")
@page_options
@with_model_options
@with_power_options
def run(camera: str | None, video: Path | None, images: str | None, rotate: str, as_json: bool, quiet: bool,
        log: Path | None,
        log_every: str, log_rotate: str | None, log_keep: int, disk_full: str, save_frames: Path | None,
        save_video: Path | None, show: bool, max_frames: int | None, max_fps: float | None, demo_frames: int,
        http_address: str | None, http_fps: float, mqtt_url: str | None, page: str, reject: str,
        stable: tuple[int, int], model: Path | None, backend: str, threads: int, power_meter: str, i2c_bus: int,
        i2c_address: int, shunt_ohms: float) -> None:
    """Read handwritten digits from a camera, a video or images (no source, no camera: the demo clip).

    On a camera or a video the printed and drawn reading is the settled one
    (strings read in K of the last N frames); --json keeps each frame's own
    lines and adds stable_lines.
    """
    import json

    from edge_digits.vision import camera as cam
    from edge_digits.vision.page import PageError, parse_page
    from edge_digits.vision.reader import ReaderError, make_rejector
    from edge_digits.vision.runloop import RunOptions
    from edge_digits.vision.runloop import run as run_reader

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
        source = cam.open_source(spec, demo_frames=demo_frames)
    except cam.CameraError as exc:
        raise EdgeDigitsError(str(exc)) from exc
    clf = load_digit_classifier(model, backend, threads)
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
    max_bytes = None if log_rotate is None or daily else parse_size(click.get_current_context(), None, log_rotate)
    options = RunOptions(rotate=int(rotate) if rotate != "auto" else "auto", page=page_mode, stable_k=k,
                         stable_n=n, max_frames=max_frames, log=log, log_every=log_every, log_max_bytes=max_bytes,
                         log_daily=daily, log_keep=log_keep, stop_on_disk_error=disk_full == "stop",
                         save_frames=save_frames, save_video=save_video, show=show, max_fps=max_fps)
    meter = open_meter_or_warn(power_meter, i2c_bus, i2c_address, shunt_ohms)
    observers = _start_observers(http_address, http_fps, mqtt_url, source.name, clf,
                                 meter.name if meter is not None else None)
    try:
        summary = run_reader(source, clf, options, on_frame=on_frame,
                             on_warning=lambda msg: click.echo(f"warning: {msg}", err=True), meter=meter,
                             rejector=rejector, observers=observers)
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
    for name, figures in summary.observers.items():
        click.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()), err=True)
    if summary.frames_lost:
        click.echo(f"saved frames: {summary.frames_lost} could not be written", err=True)
    if summary.video_stopped:
        click.echo("video: stopped early, the disk was nearly full (what it holds plays)", err=True)
    if summary.stopped_by is not None:   # the shell's convention: 128 + the signal's number
        click.get_current_context().exit({"SIGINT": 130, "SIGTERM": 143}.get(summary.stopped_by, 1))


def _start_observers(http_address: str | None, http_fps: float, mqtt_url: str | None, source: str,
                     clf: DigitClassifier, meter: str | None) -> list[RunObserver]:
    """The live view and the MQTT publisher the options ask for, started (an error in either stops both).
    Each module is imported only when its option is given."""
    observers: list[RunObserver] = []
    info: dict[str, object] = {
        "source": source, "model": Path(str(getattr(clf, "model_path", "model"))).name,
        "backend": str(getattr(clf, "backend", "?")), "delegate": str(getattr(clf, "delegate", "")),
        "power_meter": meter}
    try:
        if http_address is not None:
            from edge_digits.live.view import LiveViewError, start_live_view

            try:
                view = start_live_view(http_address, max_fps=http_fps, info=info)
            except LiveViewError as exc:
                raise EdgeDigitsError(str(exc)) from exc
            observers.append(view)
            click.echo(f"live view: {view.url}", err=True)
        if mqtt_url is not None:
            from edge_digits.live.mqtt import MqttError, start_publisher

            try:
                publisher = start_publisher(mqtt_url, source=source,
                                            on_warning=lambda msg: click.echo(f"warning: {msg}", err=True))
            except MqttError as exc:
                raise EdgeDigitsError(str(exc)) from exc
            observers.append(publisher)
            click.echo(f"mqtt: publishing settled readings to {publisher.describe()}", err=True)
    except EdgeDigitsError:
        for observer in observers:
            observer.close()
        raise
    return observers


@main.command("eval-photos")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--rotate", type=click.Choice(["truth", "auto"]), default="truth", show_default=True,
              help="Turn each photo by its truth.json rotate_cw, or let the reader find the orientation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--page", default="auto", show_default=True, metavar="auto|off",
              help="Find the page in each frame, or read the whole frame.")
@click.option("--reject", default="auto", show_default=True, metavar="auto|off|MODEL",
              help="Drop glyphs that are not digits (the bundled rejection model), or not.")
@with_model_options
def eval_photos(folder: Path | None, rotate: str, as_json: bool, page: str, reject: str, model: Path | None,
                backend: str, threads: int) -> None:
    """Read the frames in FOLDER (default: shared/data/photos) and score them against its truth.json.

    Any folder with a truth.json works (composed scenes too): digit accuracy,
    exact lines, phantom digits on frames whose truth has no lines, and page
    corners where the truth gives them.
    """
    import json

    from edge_digits.vision import photos
    from edge_digits.vision.page import PageError, parse_page
    from edge_digits.vision.reader import ReaderError, make_rejector

    clf = load_digit_classifier(model, backend, threads)
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
@with_model_options
def eval_scenes(folder: Path | None, as_json: bool, reject: str, model: Path | None, backend: str,
                threads: int) -> None:
    """Page finding and digits read on uncropped frames with the page cut out by a person (NAME_page.png).

    Default FOLDER: shared/data/scenes. The true corners come from matching
    the crop into its frame (SIFT, RANSAC homography); a found corner must lie
    within 3% of the page diagonal. Every digit read counts (these sheets
    hold writing that is not handwritten digits).
    """
    import json

    from edge_digits.vision import scenes
    from edge_digits.vision.reader import FrameReader, ReaderError, make_rejector

    clf = load_digit_classifier(model, backend, threads)
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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), callback=check_out_dir, required=True,
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
    from edge_digits.vision import photos, scenes

    try:
        path = scenes.compose_set(out, kind, count, seed, Path(backgrounds) if backgrounds else None,
                                  tilt_deg=tilt, size=size)
    except (scenes.SceneError, photos.PhotoError, OSError) as exc:
        raise EdgeDigitsError(str(exc)) from exc
    click.echo(f"wrote {count} frames and truth.json to {path}")
