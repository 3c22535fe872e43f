"""Read the digits in one camera frame: find the page, rotate, segment, reject, classify, build lines.

``read_frame`` is the whole per-frame path and times each stage, so that the
run loop, the photo and scene evaluations and the benchmark all measure the
same code. ``FrameReader`` adds what a stream of frames needs: a page
tracker and the rejection model. The classifier is anything with
``predict(uint8 (N, 28, 28)) -> scores (N, 10)`` (white ink on black, like
MNIST); nothing here imports TensorFlow. The run loop lives in
:mod:`edge_digits.vision.runloop`, the photo answer of the HTTP service in
:mod:`edge_digits.vision.photo_answer`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from edge_digits.vision.page import Page, PageTracker, Quad, rectify
from edge_digits.vision.reject import Rejector, writing_like
from edge_digits.vision.segment import Box, Segmentation, normalize_lines, rotate_frame, segment


class DigitClassifier(Protocol):
    """What the camera path needs from a model: one batch of 28x28 uint8 digits in, scores out."""

    def predict(self, images: np.ndarray) -> np.ndarray: ...


class ReaderError(RuntimeError):
    """The run cannot start or go on (no GUI for --show, a video writer that will not open, no model)."""


@dataclass
class Digit:
    """One digit read from a frame; ``box`` is in the pixels of the image as read (the upright page or
    frame), ``frame_box`` in the pixels of the frame as it came from the source."""

    box: Box
    label: int
    confidence: float
    line: int
    frame_box: Box | None = None
    p_digit: float | None = None

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"box": self.box.as_list(), "class": self.label,
                                "confidence": round(self.confidence, 4), "line": self.line}
        if self.frame_box is not None:
            d["frame_box"] = self.frame_box.as_list()
        if self.p_digit is not None:
            d["p_digit"] = round(self.p_digit, 4)
        return d


@dataclass
class FrameReading:
    """What one frame says: digit strings in reading order, the digits, and stage times in ms.

    ``image`` is the picture that was read (the flattened, upright page, or
    the frame); ``page`` the page outline in the source frame's pixels, None
    when the whole frame was read; ``rejected`` counts glyphs dropped as not
    digits or not on a line of writing; ``page_moved`` says the page tracker
    found the page elsewhere than in the frame before (a new view).
    """

    lines: list[str]
    digits: list[Digit]
    rotation: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = None
    page: Quad | None = None
    rejected: int = 0
    strict: bool = False
    page_moved: bool = False

    @property
    def mean_confidence(self) -> float:
        return float(np.mean([d.confidence for d in self.digits])) if self.digits else 0.0


def _softmax_if_needed(scores: np.ndarray) -> np.ndarray:
    """Probabilities from scores: models that end in softmax pass through unchanged."""
    s = np.asarray(scores, np.float32)
    if s.size and (s.min() < -1e-3 or np.abs(s.sum(axis=1) - 1).max() > 0.05):
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return cast("NDArray[np.float32]", e / e.sum(axis=1, keepdims=True))   # numpy types the reductions as Any
    return s


@dataclass
class _Classified:
    """Digits of one segmentation after rejection, with what the stages cost."""

    digits: list[Digit]
    batch: np.ndarray
    rejected: int
    t_norm: float
    t_inf: float
    t_reject: float


RESCUE_LINE = 3          # a line with this many digits kept, and most of its glyphs, vouches for the others...
RESCUE_SHARE = 0.6
RESCUE_CONFIDENCE = 0.9  # ... that the classifier reads at least this surely, though the rejector doubted them


def _line_digits(line: list[Digit], accepted: list[bool], line_filter: bool) -> list[Digit]:
    """The digits one line keeps: accepted glyphs that look like writing, then rejected glyphs that a line
    of at least ``RESCUE_LINE`` kept digits, most of the line, vouches for (same height and centre line,
    read surely). A line of printed or Chinese writing, where the rejector drops most glyphs, vouches
    for none."""
    kept = [d for d, a in zip(line, accepted) if a]
    if line_filter and kept:
        kept = [d for d, f in zip(kept, writing_like([d.box for d in kept], [d.confidence for d in kept])) if f]
    if len(kept) < max(RESCUE_LINE, RESCUE_SHARE * len(line)):
        return kept
    ids = {id(d) for d in kept}
    rescued = []
    for d in line:
        if id(d) in ids or d.confidence < RESCUE_CONFIDENCE:
            continue
        if writing_like([k.box for k in kept] + [d.box], [1.0] * (len(kept) + 1))[-1]:
            rescued.append(d)
    if not rescued:
        return kept
    keep = ids | {id(d) for d in rescued}
    return [d for d in line if id(d) in keep]


def classify(seg: Segmentation, classifier: DigitClassifier, rejector: Rejector | None = None,
             strict: bool = False, line_filter: bool = True) -> _Classified:
    """Normalise every glyph and classify them in one batch; drop what the rejection model says is no
    digit, and keep per line only the glyphs that look like writing (:func:`reject.writing_like`). A
    glyph the rejector doubted comes back when a line of digits vouches for it (:func:`_line_digits`)."""
    t0 = time.perf_counter()
    batch = normalize_lines(seg)
    t1 = time.perf_counter()
    p_digit = rejector.p_digit(batch) if rejector is not None else None
    accepted = p_digit >= rejector.threshold(strict) if rejector is not None and p_digit is not None \
        else np.ones(len(batch), bool)
    t2 = time.perf_counter()
    probs = _softmax_if_needed(classifier.predict(batch)) if len(batch) else np.zeros((0, 10), np.float32)
    t3 = time.perf_counter()
    digits: list[Digit] = []
    k = 0
    for glyphs in seg.lines:
        line = [Digit(g.box, int(probs[k + i].argmax()), float(probs[k + i].max()), 0,
                      p_digit=None if p_digit is None else float(p_digit[k + i])) for i, g in enumerate(glyphs)]
        kept = _line_digits(line, [bool(a) for a in accepted[k:k + len(glyphs)]], line_filter)
        k += len(glyphs)
        if kept:
            number = len({d.line for d in digits})
            for d in kept:
                d.line = number
            digits.extend(kept)
    rejected = len(batch) - len(digits)
    return _Classified(digits, batch, rejected, (t1 - t0) * 1e3, (t3 - t2) * 1e3, (t2 - t1) * 1e3)


def lines_of(digits: list[Digit]) -> list[str]:
    """The digit strings of a reading, line by line."""
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


def _affine3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def straighten(frame: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a frame by ``angle`` degrees about its centre so tilted lines become level (white border);
    returns the image and the 3x3 map from old to new pixels."""
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    border = (255, 255, 255) if frame.ndim == 3 else 255
    out = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=border)
    return out, _affine3(m)


def turn_matrix(degrees_cw: int, width: int, height: int) -> np.ndarray:
    """The 3x3 map from a picture's pixels to those of the same picture turned by :func:`rotate_frame`.

    >>> (turn_matrix(90, 40, 30) @ [40, 0, 1]).tolist()
    [30.0, 40.0, 1.0]
    """
    d = degrees_cw % 360
    return np.array({0: [[1, 0, 0], [0, 1, 0]], 90: [[0, -1, height], [1, 0, 0]],
                     180: [[-1, 0, width], [0, -1, height]], 270: [[0, 1, 0], [-1, 0, width]]}[d] + [[0, 0, 1]],
                    np.float64)


def _turn(image: np.ndarray, degrees_cw: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    return rotate_frame(image, degrees_cw), turn_matrix(degrees_cw, w, h)


MAX_SIDE = 1280  # larger frames (phone photos, HD video) are scaled down first: digits stay big enough


def fit_frame(frame: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Scale a frame down (area interpolation) so its longer side is at most ``max_side``."""
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame
    s = max_side / max(h, w)
    return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _frame_box(box: Box, to_frame: np.ndarray) -> Box:
    """A box of the image as read, mapped into the source frame (the bounding box of its mapped corners)."""
    corners = np.array([[box.x, box.y, 1], [box.x2, box.y, 1], [box.x2, box.y2, 1], [box.x, box.y2, 1]],
                       np.float64) @ to_frame.T
    xy = corners[:, :2] / corners[:, 2:3]
    x0, y0 = np.floor(xy.min(axis=0))
    x1, y1 = np.ceil(xy.max(axis=0))
    return Box(int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def read_frame(frame: np.ndarray, classifier: DigitClassifier, rotate: int | str = 0,
               keep_image: bool = False, page: Page | None = None, rejector: Rejector | None = None,
               strict: bool = False, line_filter: bool = True) -> FrameReading:
    """Read one frame: ``rotate`` is 0/90/180/270 (clockwise) or ``"auto"``.

    With a ``page`` (from :func:`page.find_page` or a tracker, in the
    source frame's pixels) only the page is read, flattened to an upright
    rectangle; without one the whole frame is. With a ``rejector`` glyphs
    that are not digits are dropped (``strict``: at the strict threshold).
    Frames larger than ``MAX_SIDE`` are scaled down first. Digit boxes come
    both in the image as read and in the source frame (``frame_box``).
    ``auto`` first picks between upright and sideways from the layout (the
    turn that gives fewer, longer lines), straightens small tilts, then picks
    between that turn and its upside-down twin glyph by glyph.
    """
    t0 = time.perf_counter()
    fitted = fit_frame(frame)
    scale = fitted.shape[1] / frame.shape[1]
    to_image = np.diag([scale, scale, 1.0])
    t_page = 0.0
    if page is not None and not page.whole_frame:
        p0 = time.perf_counter()
        base, page_to_frame = rectify(fitted, page.quad.scaled(scale))
        to_image = np.linalg.inv(page_to_frame) @ to_image
        t_page = (time.perf_counter() - p0) * 1e3
    else:
        base = fitted
    if rotate == "auto":
        reading, turn = _read_auto(base, classifier, rejector, strict, line_filter)
    else:
        image, turn = _turn(base, int(rotate))
        t1 = time.perf_counter()
        seg = segment(image)
        t2 = time.perf_counter()
        c = classify(seg, classifier, rejector, strict, line_filter)
        reading = FrameReading(lines_of(c.digits), c.digits, int(rotate) % 360,
                               {"segmentation": (t2 - t1) * 1e3, "inference": c.t_inf, "rejection": c.t_reject,
                                "preprocess": c.t_norm}, image, rejected=c.rejected)
    to_image = turn @ to_image
    to_frame = np.linalg.inv(to_image)
    for d in reading.digits:
        d.frame_box = _frame_box(d.box, to_frame)
    total = (time.perf_counter() - t0) * 1e3
    t = reading.timings_ms
    t["page"] = t_page
    t["preprocess"] = max(0.0, total - t["segmentation"] - t["inference"] - t["rejection"] - t_page)
    reading.page = page.quad if page is not None and not page.whole_frame else None
    reading.strict = strict
    if not keep_image:
        reading.image = None
    return reading


def _upside_down(upright: np.ndarray, flipped: np.ndarray, margin: float = 0.1) -> bool:
    """Whether the glyphs read better turned half a turn: each glyph votes for the way it is read more surely.

    ``upright`` and ``flipped`` are each glyph's top class probability as
    it stands and turned 180 degrees in place; glyphs that read about as
    well both ways (0, 1, 8, a 6 that is a 9) do not vote. A tie goes to the
    summed log-confidence. Voting per glyph, rather than comparing mean
    confidences, keeps a few odd glyphs from deciding a page.
    """
    if len(upright) == 0:
        return False
    votes = int(np.sum(flipped > upright + margin)) - int(np.sum(upright > flipped + margin))
    if votes:
        return votes > 0
    return float(np.sum(np.log(np.clip(flipped, 1e-4, 1.0)) - np.log(np.clip(upright, 1e-4, 1.0)))) > 0


def _read_auto(frame: np.ndarray, classifier: DigitClassifier, rejector: Rejector | None, strict: bool,
               line_filter: bool) -> tuple[FrameReading, np.ndarray]:
    """Read a frame in the orientation it reads best in; returns the reading and the map into its image."""
    t_seg = t_inf = t_rej = 0.0
    layouts = []
    for rot in (0, 90):
        image, turn = _turn(frame, rot)
        s0 = time.perf_counter()
        seg = segment(image)
        t_seg += time.perf_counter() - s0
        layouts.append((_layout_score(seg), rot, image, seg, turn))
    _, rot, image, seg, turn = max(layouts, key=lambda t: t[0])
    angle = deskew_angle(seg)
    if abs(angle) >= 1.0:
        image, tilt = straighten(image, angle)
        turn = tilt @ turn
        s0 = time.perf_counter()
        seg = segment(image)
        t_seg += time.perf_counter() - s0
    batch = normalize_lines(seg)
    turned = np.ascontiguousarray(batch[:, ::-1, ::-1])
    s0 = time.perf_counter()
    if rejector is not None and len(batch):
        digit_like = np.maximum(rejector.p_digit(batch), rejector.p_digit(turned)) >= rejector.threshold(strict)
        batch, turned = batch[digit_like], turned[digit_like]
    s1 = time.perf_counter()
    upside_down = False
    if len(batch):
        up = _softmax_if_needed(classifier.predict(batch)).max(axis=1)
        down = _softmax_if_needed(classifier.predict(turned)).max(axis=1)
        upside_down = _upside_down(up, down)
    t_rej += (s1 - s0) * 1e3
    t_inf += (time.perf_counter() - s1) * 1e3
    if upside_down:
        image, half = _turn(image, 180)
        turn = half @ turn
        s0 = time.perf_counter()
        seg = segment(image)
        t_seg += time.perf_counter() - s0
    c = classify(seg, classifier, rejector, strict, line_filter)
    timings = {"segmentation": t_seg * 1e3, "inference": t_inf + c.t_inf, "rejection": t_rej + c.t_reject}
    reading = FrameReading(lines_of(c.digits), c.digits, (rot + (180 if upside_down else 0)) % 360, timings,
                           image, rejected=c.rejected)
    return reading, turn


class FrameReader:
    """Reads a stream of frames with one page tracker and one rejection model.

    ``page`` is ``"auto"`` (find and track the page), ``"off"`` (the whole
    frame) or a fixed :class:`page.Quad`. Where ``auto`` finds no page, the
    whole frame is read at the rejection model's strict threshold. Call
    :meth:`reset` between unrelated pictures (image files).
    """

    def __init__(self, classifier: DigitClassifier, rotate: int | str = 0, page: str | Quad = "auto",
                 rejector: Rejector | None = None, line_filter: bool = True) -> None:
        self.classifier, self.rotate, self.rejector, self.line_filter = classifier, rotate, rejector, line_filter
        self.tracker = PageTracker(page)
        self.page_mode = page

    def reset(self) -> None:
        self.tracker.reset()

    def read(self, frame: np.ndarray, keep_image: bool = False) -> FrameReading:
        t0 = time.perf_counter()
        found = self.tracker.update(frame)
        t_find = (time.perf_counter() - t0) * 1e3
        strict = self.page_mode == "auto" and found is None
        reading = read_frame(frame, self.classifier, self.rotate, keep_image, found, self.rejector, strict,
                             self.line_filter)
        reading.timings_ms["page"] += t_find
        reading.page_moved = self.tracker.moved
        return reading


def load_classifier(model: Path | str | None = None, backend: str = "auto", threads: int = 1) -> DigitClassifier:
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


def make_rejector(reject: str | Path | None = "auto", backend: str = "auto") -> Rejector | None:
    """The rejection model for ``--reject``: ``auto`` the bundled one, ``off`` none, or a path."""
    from edge_digits.vision.reject import load_rejector

    if reject is None or str(reject) == "off":
        return None
    try:
        return load_rejector(None if str(reject) == "auto" else Path(reject), backend)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise ReaderError(str(exc)) from exc
