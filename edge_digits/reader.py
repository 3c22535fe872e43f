"""Read the digits in one camera frame: rotate, segment, normalise, classify in one batch, build lines.

``read_frame`` is the whole per-frame path and times each stage, so that the
run loop, the photo evaluation and the benchmark all measure the same code.
The classifier is anything with ``predict(uint8 (N, 28, 28)) -> scores (N, 10)``
(white ink on black, like MNIST); nothing here imports TensorFlow.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge_digits.camera import CameraError, FrameError, FrameSource
from edge_digits.fileio import atomic_write_bytes
from edge_digits.power import PowerMeter, PowerMeterError
from edge_digits.scoring import score_lines
from edge_digits.segment import Box, Segmentation, normalize_lines, rotate_frame, segment

class DigitClassifier(Protocol):
    """What the camera path needs from a model: one batch of 28x28 uint8 digits in, scores out."""

    def predict(self, images: np.ndarray) -> np.ndarray: ...


@dataclass
class Digit:
    """One digit read from a frame; ``box`` is in the rotated (upright) frame's pixels."""

    box: Box
    label: int
    confidence: float
    line: int

    def as_dict(self) -> dict[str, object]:
        return {"box": self.box.as_list(), "class": self.label,
                "confidence": round(self.confidence, 4), "line": self.line}


@dataclass
class FrameReading:
    """What one frame says: digit strings in reading order, the digits, and stage times in ms."""

    lines: list[str]
    digits: list[Digit]
    rotation: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None

    @property
    def mean_confidence(self) -> float:
        return float(np.mean([d.confidence for d in self.digits])) if self.digits else 0.0


def _softmax_if_needed(scores: np.ndarray) -> np.ndarray:
    """Probabilities from scores: models that end in softmax pass through unchanged."""
    s = np.asarray(scores, np.float32)
    if s.size and (s.min() < -1e-3 or np.abs(s.sum(axis=1) - 1).max() > 0.05):
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return s


def classify(seg: Segmentation, classifier: DigitClassifier) -> tuple[list[Digit], float, float]:
    """Normalise every glyph and classify them in one batch; returns digits and the two stage times (ms)."""
    t0 = time.perf_counter()
    glyphs = seg.glyphs
    batch = normalize_lines(seg)
    t1 = time.perf_counter()
    probs = _softmax_if_needed(classifier.predict(batch)) if len(batch) else np.zeros((0, 10), np.float32)
    t2 = time.perf_counter()
    line_of = [i for i, line in enumerate(seg.lines) for _ in line]
    digits = [Digit(g.box, int(p.argmax()), float(p.max()), ln) for g, p, ln in zip(glyphs, probs, line_of)]
    return digits, (t1 - t0) * 1e3, (t2 - t1) * 1e3


def _lines(digits: list[Digit]) -> list[str]:
    out: dict[int, list[str]] = {}
    for d in digits:
        out.setdefault(d.line, []).append(str(d.label))
    return ["".join(v) for _, v in sorted(out.items())]


def _layout_score(seg: Segmentation) -> float:
    """How much a segmentation looks like upright lines of digits: many glyphs, few and long lines."""
    n = len(seg.glyphs)
    if n == 0:
        return 0.0
    return n / len(seg.lines)


def deskew_angle(seg: Segmentation, limit: float = 15.0) -> float:
    """Tilt of the text lines in degrees (positive: lines fall to the right), from a fit per line."""
    slopes, weights = [], []
    for line in seg.lines:
        if len(line) < 3:
            continue
        xs = np.array([g.box.x + g.box.w / 2 for g in line], np.float32)
        ys = np.array([g.box.y2 - g.box.h / 2 for g in line], np.float32)
        if np.ptp(xs) < 1:
            continue
        slopes.append(np.polyfit(xs, ys, 1)[0])
        weights.append(len(line))
    if not slopes:
        return 0.0
    angle = float(np.degrees(np.arctan(np.average(slopes, weights=weights))))
    return angle if abs(angle) <= limit else 0.0


def straighten(frame: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a frame by ``angle`` degrees about its centre so tilted lines become level (white border)."""
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    border = (255, 255, 255) if frame.ndim == 3 else 255
    return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border)


MAX_SIDE = 1280  # larger frames (phone photos, HD video) are scaled down first: digits stay big enough


def fit_frame(frame: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Scale a frame down (area interpolation) so its longer side is at most ``max_side``."""
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame
    s = max_side / max(h, w)
    return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def read_frame(frame: np.ndarray, classifier: DigitClassifier, rotate: int | str = 0,
               keep_image: bool = False) -> FrameReading:
    """Read one frame: ``rotate`` is 0/90/180/270 (clockwise) or ``"auto"``.

    Frames larger than ``MAX_SIDE`` are scaled down first; boxes refer to
    the frame as read (``FrameReading.image``). ``auto`` first picks between
    upright and sideways from the layout (the turn that gives fewer, longer
    lines), straightens small tilts, then picks between that turn and its
    upside-down twin by the classifier's confidence, glyph by glyph.
    """
    t0 = time.perf_counter()
    frame = fit_frame(frame)
    if rotate == "auto":
        return _read_auto(frame, classifier, keep_image, t0)
    image = rotate_frame(frame, int(rotate))
    t1 = time.perf_counter()
    seg = segment(image)
    t2 = time.perf_counter()
    digits, t_norm, t_inf = classify(seg, classifier)
    timings = {"preprocess": (t1 - t0) * 1e3 + t_norm, "segmentation": (t2 - t1) * 1e3, "inference": t_inf}
    return FrameReading(_lines(digits), digits, int(rotate) % 360, timings, image if keep_image else None)


def _upside_down(turned: np.ndarray, digits: list[Digit], classifier: DigitClassifier, margin: float = 0.1) -> bool:
    """Whether the glyphs read better turned half a turn: each glyph votes for the way it is read more surely.

    Every glyph is classified again turned 180 degrees in place (``turned``,
    the normalised glyphs rotated, in the order of ``digits``); glyphs that
    read about as well both ways (0, 1, 8, a 6 that is a 9) do not vote.
    A tie goes to the summed log-confidence. Voting per glyph, rather than
    comparing mean confidences, keeps a few odd glyphs from deciding a page.
    """
    if not digits:
        return False
    upright = np.array([d.confidence for d in digits])
    flipped = _softmax_if_needed(classifier.predict(turned)).max(axis=1)
    votes = int(np.sum(flipped > upright + margin)) - int(np.sum(upright > flipped + margin))
    if votes:
        return votes > 0
    return float(np.sum(np.log(np.clip(flipped, 1e-4, 1.0)) - np.log(np.clip(upright, 1e-4, 1.0)))) > 0


def _read_auto(frame: np.ndarray, classifier: DigitClassifier, keep_image: bool, t0: float) -> FrameReading:
    t_seg = 0.0
    layouts = []
    for rot in (0, 90):
        image = rotate_frame(frame, rot)
        s0 = time.perf_counter()
        seg = segment(image)
        t_seg += time.perf_counter() - s0
        layouts.append((_layout_score(seg), rot, image, seg))
    _, rot, image, seg = max(layouts, key=lambda t: t[0])
    angle = deskew_angle(seg)
    if abs(angle) >= 1.0:
        image = straighten(image, angle)
        s0 = time.perf_counter()
        seg = segment(image)
        t_seg += time.perf_counter() - s0
    digits, _, t_inf = classify(seg, classifier)
    turned = np.ascontiguousarray(normalize_lines(seg)[:, ::-1, ::-1]) if digits else np.zeros((0, 28, 28))
    s0 = time.perf_counter()
    upside_down = _upside_down(turned, digits, classifier)
    t_inf += (time.perf_counter() - s0) * 1e3
    turn = 180 if upside_down else 0
    if upside_down:
        image = rotate_frame(image, 180)
        s0 = time.perf_counter()
        seg = segment(image)
        t_seg += time.perf_counter() - s0
        digits, _, ti = classify(seg, classifier)
        t_inf += ti
    best = FrameReading(_lines(digits), digits, (rot + turn) % 360, {}, image if keep_image else None)
    total = (time.perf_counter() - t0) * 1e3
    best.timings_ms = {"preprocess": total - t_seg * 1e3 - t_inf, "segmentation": t_seg * 1e3,
                       "inference": t_inf}
    return best


class ReaderError(RuntimeError):
    """The run cannot start or go on (no GUI for --show, a video writer that will not open, no model)."""


LOG_FIELDS = ("frame", "time", "capture_ms", "preprocess_ms", "segmentation_ms", "inference_ms",
              "drawing_ms", "digits", "lines", "power_w")


class FrameLog:
    """Per-frame timings as JSON Lines or CSV (by suffix), flushed after every row so Ctrl-C leaves a valid file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise ReaderError(f"--log must end in .jsonl or .csv, not {self.path.name}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._csv = None
        if suffix == ".csv":
            self._csv = csv.DictWriter(self._file, fieldnames=LOG_FIELDS)
            self._csv.writeheader()
            self._file.flush()

    def write(self, row: dict[str, object]) -> None:
        if self._csv is not None:
            self._csv.writerow(row)
        else:
            self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def draw_reading(image: np.ndarray, reading: FrameReading, fps: float, box_scale: float = 1.0) -> np.ndarray:
    """The frame with each digit's box and class, and the current FPS, drawn on a BGR copy.

    ``box_scale`` maps boxes from the analysed frame onto a larger display
    frame (picamera2's ``main`` stream).
    """
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    for d in reading.digits:
        x, y, x2, y2 = (int(round(v * box_scale)) for v in (d.box.x, d.box.y, d.box.x2, d.box.y2))
        colour = (0, 170, 0) if d.confidence >= 0.8 else (0, 140, 255)
        cv2.rectangle(out, (x, y), (x2, y2), colour, 1 if box_scale < 1.5 else 2)
        cv2.putText(out, str(d.label), (x, max(10, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2)
    cv2.putText(out, f"{fps:.1f} FPS", (8, int(24 * scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 255), 2)
    return out


@dataclass
class RunOptions:
    """How ``run`` reads, logs and shows; defaults read until the source ends, with no output files."""

    rotate: int | str = 0
    max_frames: int | None = None
    log: Path | None = None
    save_frames: Path | None = None
    save_video: Path | None = None
    show: bool = False
    retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0


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
    seconds: float = 0.0
    truth_digits: int = 0
    truth_errors: int = 0
    log: str | None = None
    power_readings: int = 0
    power_sum_w: float = 0.0

    @property
    def mean_power_w(self) -> float | None:
        return self.power_sum_w / self.power_readings if self.power_readings else None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def digit_accuracy(self) -> float | None:
        return 1.0 - self.truth_errors / self.truth_digits if self.truth_digits else None

    def as_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        d["fps"] = round(self.fps, 2)
        d["digit_accuracy"] = self.digit_accuracy
        d["mean_power_w"] = self.mean_power_w
        return d


class _Outputs:
    """The optional annotated outputs of a run: window, video file, PNG frames."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
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
                atomic_write_bytes(Path(o.save_frames) / f"frame{index:06d}.png", png.tobytes())
        if o.save_video is not None:
            if self._video is None:
                path = Path(o.save_video)
                path.parent.mkdir(parents=True, exist_ok=True)
                fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
                self._video_size = (view.shape[1], view.shape[0])
                self._video = cv2.VideoWriter(str(path), fourcc, 15.0, self._video_size)
                if not self._video.isOpened():
                    raise ReaderError(f"cannot write video {path} (use .avi or .mp4)")
            if (view.shape[1], view.shape[0]) != self._video_size:
                view = cv2.resize(view, self._video_size)
            self._video.write(view)
        if o.show:
            cv2.imshow("edge-digits", view)
            if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                raise KeyboardInterrupt

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
        if self.options.show:
            cv2.destroyAllWindows()


_STAGES = ("capture", "preprocess", "segmentation", "inference", "drawing")


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


def _annotated(source: FrameSource, reading: FrameReading, options: RunOptions, fps: float) -> np.ndarray:
    """The annotated view: on the source's display stream when it has one, else on the analysed frame."""
    assert reading.image is not None
    display = source.display
    if display is not None and options.rotate != "auto":
        base = rotate_frame(display, reading.rotation)
        return draw_reading(base, reading, fps, base.shape[1] / reading.image.shape[1])
    return draw_reading(reading.image, reading, fps)


def _record(source: FrameSource, index: int, now: float, reading: FrameReading,
            timings: dict[str, float]) -> dict[str, object]:
    return {"source": source.name, "frame": index, "time": round(now, 3), "rotation": reading.rotation,
            "lines": reading.lines, "digits": [d.as_dict() for d in reading.digits],
            "timings_ms": {k: round(v, 3) for k, v in timings.items()}}


def _log_row(index: int, now: float, reading: FrameReading, timings: dict[str, float],
             power_w: float | None) -> dict[str, object]:
    return {"frame": index, "time": round(now, 3),
            **{f"{k}_ms": round(timings.get(k, 0.0), 3) for k in _STAGES},
            "digits": len(reading.digits), "lines": " ".join(reading.lines),
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


def run(source: FrameSource, classifier: DigitClassifier, options: RunOptions = RunOptions(),
        on_frame: Callable[[dict[str, object]], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep, meter: PowerMeter | None = None) -> RunSummary:
    """Read frames from ``source`` until it ends, ``max_frames`` or Ctrl-C; returns what happened.

    Each frame is read by :func:`read_frame`; ``on_frame`` gets its record
    (source, frame, time, lines, digits, per-stage timings). A bad frame is
    skipped with a warning; a failing camera is closed and reopened with
    doubling back-off, up to ``retries`` failures in a row. Logs and outputs
    are flushed and closed however the run ends, Ctrl-C included. With a
    power ``meter``, each frame's record and log row carry ``power_w``, read
    as the frame ends.
    """
    warn = on_warning or (lambda msg: None)
    power = _PowerReadings(meter, warn)
    summary = RunSummary(source.name, str(getattr(classifier, "backend", type(classifier).__name__)))
    log = FrameLog(options.log) if options.log is not None else None
    summary.log = str(options.log) if options.log is not None else None
    outputs = _Outputs(options)
    reconnect = _Reconnect(options, sleep, warn)
    truth_of = getattr(source, "truth", None)
    fps = 0.0
    start = time.perf_counter()
    source.want_display = outputs.wanted
    try:
        source.open()
        while options.max_frames is None or summary.frames < options.max_frames:
            t0 = time.perf_counter()
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
            reading = read_frame(frame, classifier, options.rotate, keep_image=outputs.wanted)
            t2 = time.perf_counter()
            if outputs.wanted:
                outputs.write(index, _annotated(source, reading, options, fps))
            t3 = time.perf_counter()
            fps = 1.0 / max(t3 - t0, 1e-9) if fps == 0 else 0.9 * fps + 0.1 / max(t3 - t0, 1e-9)
            timings = {"capture": (t1 - t0) * 1e3, **reading.timings_ms, "drawing": (t3 - t2) * 1e3}
            now = time.time()
            power_w = power.read()
            record = _record(source, index, now, reading, timings)
            if meter is not None:
                record["power_w"] = None if power_w is None else round(power_w, 4)
            if power_w is not None:
                summary.power_readings += 1
                summary.power_sum_w += power_w
            if callable(truth_of):
                truth = truth_of(index)
                score = score_lines(truth, reading.lines)
                record["truth"] = truth
                summary.truth_digits += score.digits
                summary.truth_errors += score.errors
            if log is not None:
                log.write(_log_row(index, now, reading, timings, power_w))
            summary.frames += 1
            summary.digits += len(reading.digits)
            if on_frame is not None:
                on_frame(record)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.seconds = time.perf_counter() - start
        source.close()
        outputs.close()
        if log is not None:
            log.close()
    return summary


def load_classifier(model: Path | None = None, backend: str = "auto", threads: int = 1) -> DigitClassifier:
    """The project's int8 classifier: ``model`` (a path or a bundled name) or the bundled ``standard`` one,
    on the chosen interpreter."""
    try:
        from edge_digits.models import resolve_model
        from edge_digits.runtime import Classifier
    except ImportError as exc:
        raise ReaderError(f"the model runtime is not installed with this edge-digits ({exc})") from exc
    try:
        path = resolve_model(model, "standard")
    except FileNotFoundError as exc:
        raise ReaderError(f"{exc}; pass --model PATH") from exc
    if not path.is_file():
        raise ReaderError(f"model {path} does not exist")
    return Classifier(path, backend=backend, threads=threads)


def page_answer(frame: np.ndarray, classifier: DigitClassifier, rotate: int | str = "auto") -> dict[str, object]:
    """One photo read as JSON-ready data: lines with their text, box, weakest digit confidence, and digits.

    Boxes are [x, y, w, h] in the pixels of the image as read, that is the
    photo turned clockwise by ``rotation`` and resized by ``scale``.
    """
    if frame.ndim not in (2, 3) or min(frame.shape[:2]) < 8:
        raise ValueError(f"a {'x'.join(map(str, frame.shape[:2]))} image is too small to hold a digit")
    reading = read_frame(frame, classifier, rotate=rotate, keep_image=True)
    assert reading.image is not None
    lines: list[dict[str, object]] = []
    for index, text in enumerate(reading.lines):
        digits = [d for d in reading.digits if d.line == index]
        x0 = min(d.box.x for d in digits)
        y0 = min(d.box.y for d in digits)
        x1 = max(d.box.x + d.box.w for d in digits)
        y1 = max(d.box.y + d.box.h for d in digits)
        lines.append({"text": text, "box": [x0, y0, x1 - x0, y1 - y0],
                      "confidence": round(min(d.confidence for d in digits), 4),
                      "digits": [{"digit": d.label, "box": d.box.as_list(), "confidence": round(d.confidence, 4)}
                                 for d in digits]})
    scale = max(reading.image.shape[:2]) / max(frame.shape[:2])
    return {"lines": lines, "rotation": reading.rotation, "scale": round(scale, 6)}


class PageReader:
    """``read(photo) -> dict`` over a classifier of its own (the service's ``/v1/read``)."""

    def __init__(self, classifier: DigitClassifier, rotate: int | str = "auto") -> None:
        self.classifier, self.rotate = classifier, rotate

    def read(self, image_bgr: np.ndarray) -> dict[str, object]:
        return page_answer(image_bgr, self.classifier, self.rotate)
