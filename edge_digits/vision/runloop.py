"""The run loop of ``edge-digits run``: frames from a source, read, settled, logged, drawn, summarised.

Each frame goes through :class:`reader.FrameReader` (page tracking,
rejection); on a live source (camera, video, demo clip) the printed and
drawn reading is the settled one (:mod:`stable`): the strings seen in
``k`` of the last ``n`` frames. Logs and outputs are flushed and closed
however the run ends.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_digits.fileio import atomic_write_bytes
from edge_digits.power import PowerMeter, PowerMeterError
from edge_digits.scoring import score_lines
from edge_digits.vision.camera import CameraError, FrameError, FrameSource
from edge_digits.vision.framelog import FrameLog
from edge_digits.vision.observe import LiveFrame, RunObserver, draw_reading
from edge_digits.vision.page import Quad
from edge_digits.vision.reader import DigitClassifier, FrameReader, FrameReading, ReaderError
from edge_digits.vision.reject import Rejector
from edge_digits.vision.stable import STABLE_K, STABLE_N, StableLines, line_positions


@dataclass
class RunOptions:
    """How ``run`` reads, logs and shows; defaults read until the source ends, with no output files."""

    rotate: int | str = 0
    page: str | Quad = "auto"
    stable_k: int = STABLE_K
    stable_n: int = STABLE_N
    line_filter: bool = True
    max_frames: int | None = None
    log: Path | None = None
    log_every: str = "frame"          # "frame": a row per frame; "change": only when the reading changes
    log_max_bytes: int | None = None  # rotate the log past this size
    log_daily: bool = False           # rotate the log at midnight
    log_keep: int = 7                 # rotated files kept
    stop_on_disk_error: bool = False  # end the run when the log or saved frames cannot be written
    save_frames: Path | None = None
    save_video: Path | None = None
    show: bool = False
    retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    max_fps: float | None = None      # pace the source: at most this many frames a second (video, demo clip)


@dataclass
class RunSummary:
    """What a run did: frames read and skipped, camera failures, speed, and accuracy where truth is known."""

    source: str
    backend: str
    frames: int = 0
    digits: int = 0
    skipped: int = 0
    camera_failures: int = 0
    interrupted: bool = False
    stopped_by: str | None = None   # "SIGINT" (Ctrl-C), "SIGTERM", or "disk" (stop_on_disk_error)
    log_failed: str | None = None   # why the log stopped taking rows (a full disk), if it did
    log_rows_lost: int = 0
    log_rotations: int = 0
    frames_lost: int = 0             # annotated frames --save-frames could not write
    video_stopped: bool = False      # --save-video stopped early: the disk was nearly full
    seconds: float = 0.0
    truth_digits: int = 0
    truth_errors: int = 0
    stable_errors: int = 0
    line_changes: int = 0
    stable_changes: int = 0
    blank_frames: int = 0
    phantom_digits: int = 0
    pages_found: int = 0
    page_detections: int = 0
    rejected: int = 0
    log: str | None = None
    power_readings: int = 0
    power_sum_w: float = 0.0
    observers: dict[str, dict[str, object]] = dataclasses.field(default_factory=dict)   # each observer's figures

    @property
    def mean_power_w(self) -> float | None:
        return self.power_sum_w / self.power_readings if self.power_readings else None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def digit_accuracy(self) -> float | None:
        return 1.0 - self.truth_errors / self.truth_digits if self.truth_digits else None

    @property
    def stable_accuracy(self) -> float | None:
        """Digit accuracy of the settled reading (live sources with truth)."""
        return 1.0 - self.stable_errors / self.truth_digits if self.truth_digits else None

    @property
    def phantoms_per_blank_frame(self) -> float | None:
        return self.phantom_digits / self.blank_frames if self.blank_frames else None

    def as_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["fps"] = round(self.fps, 2)
        d["digit_accuracy"] = self.digit_accuracy
        d["phantoms_per_blank_frame"] = self.phantoms_per_blank_frame
        d["stable_accuracy"] = self.stable_accuracy
        d["mean_power_w"] = self.mean_power_w
        return d


class _Outputs:
    """The optional annotated outputs of a run: window, video file, PNG frames."""

    def __init__(self, options: RunOptions, warn: Callable[[str], None] = lambda msg: None) -> None:
        self.options = options
        self.warn = warn
        self.frames_lost = 0
        self.video_stopped = False
        self._video: cv2.VideoWriter | None = None
        self._video_size = (0, 0)
        if options.show:
            try:
                cv2.namedWindow("edge-digits", cv2.WINDOW_NORMAL)
            except cv2.error as exc:
                raise ReaderError("--show needs OpenCV with a GUI (pip install opencv-python, "
                                  "not opencv-python-headless) and a display") from exc

    @property
    def wanted(self) -> bool:
        o = self.options
        return o.show or o.save_video is not None or o.save_frames is not None

    def write(self, index: int, view: np.ndarray) -> None:
        o = self.options
        if o.save_frames is not None:
            ok, png = cv2.imencode(".png", view)
            if ok:
                try:
                    atomic_write_bytes(Path(o.save_frames) / f"frame{index:06d}.png", png.tobytes())
                except OSError as exc:
                    if not self.frames_lost:
                        self.warn(f"cannot save frames in {o.save_frames} any more: {exc.strerror or exc}; "
                                  "the reading goes on")
                    self.frames_lost += 1
        if o.save_video is not None and not self.video_stopped and index % 15 == 0 and \
                _free_bytes(Path(o.save_video).parent) < VIDEO_RESERVE:
            self.video_stopped = True
            self.close_video()
            self.warn(f"the disk under {o.save_video} is nearly full: the video stops here, with room left for "
                      "its index; the reading goes on")
        if o.save_video is not None and not self.video_stopped:
            if self._video is None:
                path = Path(o.save_video)
                path.parent.mkdir(parents=True, exist_ok=True)
                fourcc = cv2.VideoWriter.fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
                self._video_size = (view.shape[1], view.shape[0])
                self._video = cv2.VideoWriter(str(path), fourcc, 15.0, self._video_size)
                if not self._video.isOpened():
                    raise ReaderError(f"cannot write video {path}: OpenCV could not open it (use .avi or .mp4)")
            if (view.shape[1], view.shape[0]) != self._video_size:
                view = cv2.resize(view, self._video_size)
            self._video.write(view)
        if o.show:
            cv2.imshow("edge-digits", view)
            if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                raise KeyboardInterrupt

    def close_video(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None

    def close(self) -> None:
        self.close_video()
        if self.options.show:
            cv2.destroyAllWindows()


VIDEO_RESERVE = 4 * 1024 * 1024   # a video stops while this much is free, so its index can still be written


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return VIDEO_RESERVE   # unknown: let the writer find out
    return st.f_bavail * st.f_frsize


def check_outputs(options: RunOptions) -> None:
    """Fail before any work when an output cannot be written: one line naming the path and the reason."""
    for flag, path, is_dir in (("--log", options.log, False), ("--save-frames", options.save_frames, True),
                               ("--save-video", options.save_video, False)):
        if path is None:
            continue
        folder = Path(path) if is_dir else Path(path).parent
        if not is_dir and Path(path).is_dir():
            raise ReaderError(f"{flag} {path} is a folder; give a file name")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReaderError(f"{flag} {path}: cannot create the folder {folder}: {exc.strerror or exc}") from exc
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ReaderError(f"{flag} {path}: the folder {folder} is not writable")
    if options.save_video is not None and Path(options.save_video).suffix.lower() not in (".avi", ".mp4"):
        raise ReaderError(f"--save-video {options.save_video}: use a .avi or .mp4 file name")


_STAGES = ("capture", "page", "preprocess", "segmentation", "rejection", "inference", "drawing")


class _Reconnect:
    """Back-off state for a failing camera: doubling waits, reset by every good frame."""

    def __init__(self, options: RunOptions, sleep: Callable[[float], None], warn: Callable[[str], None]) -> None:
        self.options, self.sleep, self.warn = options, sleep, warn
        self.failures, self.wait = 0, options.backoff_s

    def good_frame(self) -> None:
        self.failures, self.wait = 0, self.options.backoff_s

    def failed(self, source: FrameSource, exc: CameraError) -> None:
        """Close, wait, reopen; raise CameraError once ``retries`` failures came in a row."""
        self.failures += 1
        if self.failures > self.options.retries:
            raise CameraError(f"{source.name} failed {self.failures} times in a row, giving up: {exc}") from exc
        self.warn(f"{exc}; reopening in {self.wait:.1f} s (retry {self.failures}/{self.options.retries})")
        source.close()
        self.sleep(self.wait)
        self.wait = min(self.wait * 2, self.options.backoff_max_s)
        try:
            source.open()
        except CameraError as reopen_exc:
            self.warn(f"reopening {source.name} failed: {reopen_exc}")


def _annotated(source: FrameSource, frame: np.ndarray, reading: FrameReading, fps: float,
               stable: list[str] | None) -> np.ndarray:
    """The annotated view: on the source's display stream when it has one, else on the frame itself."""
    display = source.display
    base = display if display is not None else frame
    return draw_reading(base, reading, fps, base.shape[1] / frame.shape[1], stable)


def _record(source: FrameSource, index: int, now: float, reading: FrameReading,
            timings: dict[str, float], stable: list[str] | None) -> dict[str, object]:
    record: dict[str, object] = {
        "source": source.name, "frame": index, "time": round(now, 3), "rotation": reading.rotation,
        "lines": reading.lines, "digits": [d.as_dict() for d in reading.digits],
        "page": reading.page.as_list() if reading.page is not None else None, "rejected": reading.rejected,
        "timings_ms": {k: round(v, 3) for k, v in timings.items()}}
    if stable is not None:
        record["stable_lines"] = stable
    return record


def _log_row(index: int, now: float, reading: FrameReading, timings: dict[str, float],
             power_w: float | None, stable: list[str] | None) -> dict[str, object]:
    return {"frame": index, "time": round(now, 3),
            **{f"{k}_ms": round(timings.get(k, 0.0), 3) for k in _STAGES},
            "digits": len(reading.digits), "rejected": reading.rejected, "lines": " ".join(reading.lines),
            "stable_lines": " ".join(stable) if stable is not None else "",
            "power_w": None if power_w is None else round(power_w, 4)}


class _PowerReadings:
    """One power reading per frame from an optional meter; a meter that fails is warned about once, then left."""

    def __init__(self, meter: PowerMeter | None, warn: Callable[[str], None]) -> None:
        self.meter, self.warn = meter, warn

    def read(self) -> float | None:
        if self.meter is None:
            return None
        try:
            return float(self.meter.read_watts())
        except (PowerMeterError, OSError) as exc:
            self.warn(f"power meter {self.meter.name} failed, the run goes on without it: {exc}")
            self.meter = None
            return None


class _Signals:
    """SIGTERM (systemd ``stop``, ``docker stop``) ends the run like Ctrl-C, but between frames: the frame
    in hand is finished, then every output is flushed and closed. SIGHUP (``systemctl reload``, logrotate)
    starts a new log file between frames. Only the main thread can take signals; elsewhere nothing is
    installed."""

    def __init__(self) -> None:
        self.requested = False
        self.reopen = False
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._stop)
            if hasattr(signal, "SIGHUP"):
                self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._reopen)

    def _stop(self, signum: int, frame: object) -> None:
        self.requested = True

    def _reopen(self, signum: int, frame: object) -> None:
        self.reopen = True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous = {}


def run(source: FrameSource, classifier: DigitClassifier, options: RunOptions | None = None,
        on_frame: Callable[[dict[str, object]], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep, meter: PowerMeter | None = None,
        rejector: Rejector | None = None, observers: Sequence[RunObserver] = ()) -> RunSummary:
    """Read frames from ``source`` until it ends, ``max_frames`` or Ctrl-C; returns what happened.

    Each frame is read by a :class:`reader.FrameReader` (the page found and
    tracked as ``options.page`` says, glyphs dropped by ``rejector``);
    ``on_frame`` gets its record (source, frame, time, lines, digits with
    boxes in frame pixels, page outline, per-stage timings and, on a live
    source, ``stable_lines``). Image files are read one by one: no tracking
    and no settling across files. On the demo clip a sheet whose truth is
    empty counts every digit read as a phantom. A bad frame is
    skipped with a warning; a failing camera is closed and reopened with
    doubling back-off, up to ``retries`` failures in a row. Logs and outputs
    are flushed and closed however the run ends, Ctrl-C and SIGTERM included
    (``stopped_by`` says which). With a
    power ``meter``, each frame's record and log row carry ``power_w``, read
    as the frame ends. Each of ``observers`` gets every frame as a
    :class:`LiveFrame` and is closed when the run ends; what each says on
    closing is in ``summary.observers``. ``options.max_fps`` paces the
    source (frames no closer than 1/max_fps seconds, waited with ``sleep``).
    """
    options = options if options is not None else RunOptions()
    warn = on_warning or (lambda msg: None)
    power = _PowerReadings(meter, warn)
    summary = RunSummary(source.name, str(getattr(classifier, "backend", type(classifier).__name__)))
    check_outputs(options)
    if options.log_every not in ("frame", "change"):
        raise ReaderError(f"log_every must be frame or change, not {options.log_every!r}")
    log = FrameLog(options.log, options.log_max_bytes, options.log_daily, options.log_keep) \
        if options.log is not None else None
    logged: list[str] | None = None
    summary.log = str(options.log) if options.log is not None else None
    outputs = _Outputs(options, warn)
    reconnect = _Reconnect(options, sleep, warn)
    truth_of = getattr(source, "truth", None)
    live = bool(getattr(source, "live", True))
    reader = FrameReader(classifier, options.rotate, options.page, rejector, options.line_filter)
    settle = StableLines(options.stable_k, options.stable_n) if live else None
    fps = 0.0
    last_lines: list[str] | None = None
    last_stable: list[str] | None = None
    start = time.perf_counter()
    stop = _Signals()
    source.want_display = outputs.wanted
    try:
        source.open()
        while not stop.requested and (options.max_frames is None or summary.frames < options.max_frames):
            t0 = time.perf_counter()
            if observers:
                source.want_display = outputs.wanted or any(o.wants_display() for o in observers)
            try:
                frame = source.read()
            except FrameError as exc:
                summary.skipped += 1
                warn(f"skipped a frame: {exc}")
                continue
            except CameraError as exc:
                summary.camera_failures += 1
                reconnect.failed(source, exc)
                continue
            if frame is None:
                break
            reconnect.good_frame()
            index = summary.frames
            t1 = time.perf_counter()
            if not live:
                reader.reset()
            reading = reader.read(frame)
            if settle is not None and reading.page_moved:
                settle.reset()
            stable = settle.push(reading.lines, line_positions(reading)) if settle is not None else None
            if index:
                summary.line_changes += reading.lines != last_lines
                summary.stable_changes += stable != last_stable
            last_lines, last_stable = reading.lines, stable
            t2 = time.perf_counter()
            if outputs.wanted:
                outputs.write(index, _annotated(source, frame, reading, fps, stable))
            t3 = time.perf_counter()
            fps = 1.0 / max(t3 - t0, 1e-9) if fps == 0 else 0.9 * fps + 0.1 / max(t3 - t0, 1e-9)
            timings = {"capture": (t1 - t0) * 1e3, **reading.timings_ms, "drawing": (t3 - t2) * 1e3}
            now = time.time()
            power_w = power.read()
            record = _record(source, index, now, reading, timings, stable)
            if meter is not None:
                record["power_w"] = None if power_w is None else round(power_w, 4)
            if power_w is not None:
                summary.power_readings += 1
                summary.power_sum_w += power_w
            if callable(truth_of):
                truth = truth_of(index)
                score = score_lines(truth, reading.lines)
                record["truth"] = truth
                if truth:
                    summary.truth_digits += score.digits
                    summary.truth_errors += score.errors
                    if stable is not None:
                        summary.stable_errors += score_lines(truth, stable).errors
                else:
                    summary.blank_frames += 1
                    summary.phantom_digits += len(reading.digits)
            shown = stable if stable is not None else reading.lines
            if log is not None and stop.reopen:
                stop.reopen = False
                log.rotate_now()
            if log is not None and (options.log_every == "frame" or shown != logged):
                log.write(_log_row(index, now, reading, timings, power_w, stable))
                logged = shown
                if log.failed is not None and not summary.log_failed:
                    summary.log_failed = log.failed
                    goes_on = "the run stops" if options.stop_on_disk_error else "the reading goes on"
                    warn(f"cannot write the log {log.path} any more: {log.failed}; it keeps its whole rows so far, "
                         f"{goes_on}")
            summary.frames += 1
            summary.digits += len(reading.digits)
            if options.stop_on_disk_error and (summary.log_failed or outputs.frames_lost or outputs.video_stopped):
                summary.stopped_by = "disk"
                break
            summary.rejected += reading.rejected
            summary.pages_found += reading.page is not None
            if on_frame is not None:
                on_frame(record)
            if observers:
                live_frame = LiveFrame(frame, source.display, reading, stable, record, fps)
                for observer in observers:
                    observer.frame(live_frame)
            if options.max_fps:
                wait = t0 + 1.0 / options.max_fps - time.perf_counter()
                if wait > 0:
                    sleep(wait)
    except KeyboardInterrupt:
        summary.interrupted, summary.stopped_by = True, "SIGINT"
    finally:
        stop.restore()
        if stop.requested:
            summary.interrupted, summary.stopped_by = True, "SIGTERM"
        summary.seconds = time.perf_counter() - start
        summary.page_detections = reader.tracker.detections
        source.close()
        outputs.close()
        for observer in observers:
            summary.observers[observer.name] = observer.close()
        summary.frames_lost = outputs.frames_lost
        summary.video_stopped = outputs.video_stopped
        if log is not None:
            log.close()
            summary.log_failed = log.failed
            summary.log_rows_lost = log.lost
            summary.log_rotations = log.rotations
    return summary


