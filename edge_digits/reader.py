"""Read the digits in one camera frame: rotate, segment, normalise, classify in one batch, build lines.

``read_frame`` is the whole per-frame path and times each stage, so that the
run loop, the photo evaluation and the benchmark all measure the same code.
The classifier is anything with ``predict(uint8 (N, 28, 28)) -> scores (N, 10)``
(white ink on black, like MNIST); nothing here imports TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from edge_digits.segment import Box, Segmentation, normalize_all, rotate_frame, segment

ROTATIONS = (0, 90, 180, 270)


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
    batch = normalize_all(glyphs)
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


def read_frame(frame: np.ndarray, classifier: DigitClassifier, rotate: int | str = 0,
               keep_image: bool = False) -> FrameReading:
    """Read one frame: ``rotate`` is 0/90/180/270 (clockwise) or ``"auto"``.

    ``auto`` first picks between upright and sideways from the layout (the
    turn that gives fewer, longer lines), straightens small tilts, then
    picks between that turn and its upside-down twin by mean classifier
    confidence.
    """
    t0 = time.perf_counter()
    if rotate == "auto":
        return _read_auto(frame, classifier, keep_image, t0)
    image = rotate_frame(frame, int(rotate))
    t1 = time.perf_counter()
    seg = segment(image)
    t2 = time.perf_counter()
    digits, t_norm, t_inf = classify(seg, classifier)
    timings = {"preprocess": (t1 - t0) * 1e3 + t_norm, "segmentation": (t2 - t1) * 1e3, "inference": t_inf}
    return FrameReading(_lines(digits), digits, int(rotate) % 360, timings, image if keep_image else None)


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
    best: FrameReading | None = None
    t_norm = t_inf = 0.0
    for turn in (0, 180):
        img = rotate_frame(image, turn)
        if turn:
            s0 = time.perf_counter()
            seg = segment(img)
            t_seg += time.perf_counter() - s0
        digits, tn, ti = classify(seg, classifier)
        t_norm, t_inf = t_norm + tn, t_inf + ti
        reading = FrameReading(_lines(digits), digits, (rot + turn) % 360, {}, img if keep_image else None)
        if best is None or reading.mean_confidence > best.mean_confidence:
            best = reading
    assert best is not None
    total = (time.perf_counter() - t0) * 1e3
    best.timings_ms = {"preprocess": total - t_seg * 1e3 - t_inf, "segmentation": t_seg * 1e3,
                       "inference": t_inf}
    return best
