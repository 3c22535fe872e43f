"""Drop glyphs that are not handwritten digits, and lines that do not look like writing.

Two checks run after segmentation. The rejection model (bundled
``reject_int8.tflite``, trained by ``edge-digits train-reject``) gives each
normalised glyph a probability of being a digit; glyphs below its calibrated
threshold are dropped instead of being forced into a class. Then each line
must look like a line of writing: glyphs of one height, centred on one
baseline, and a lone glyph far from any line survives only as a confident
digit. Frames where no page was found use the strict threshold.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge_digits.models import MODEL_DIR
from edge_digits.vision.segment import Box

REJECT_MODEL = MODEL_DIR / "reject_int8.tflite"
REJECT_CARD = MODEL_DIR / "reject.json"
LONE_CONFIDENCE = 0.9   # a glyph alone on its line is kept only as a digit read at least this surely


class _Scores(Protocol):
    def predict(self, images: np.ndarray) -> np.ndarray: ...


@dataclass
class Rejector:
    """The rejection model and its two thresholds on p(digit)."""

    model: _Scores
    normal: float
    strict: float

    def p_digit(self, batch: np.ndarray) -> np.ndarray:
        """Probability that each normalised glyph (N, 28, 28) is a handwritten digit."""
        if len(batch) == 0:
            return np.zeros(0, np.float32)
        return np.asarray(self.model.predict(batch), np.float32)[:, 1]

    def threshold(self, strict: bool) -> float:
        return self.strict if strict else self.normal


def load_rejector(path: Path | None = None, backend: str = "auto") -> Rejector:
    """The bundled rejection model (or one from ``edge-digits train-reject``, with its report.json beside it), on
    ``backend`` when that runs .tflite files (an .onnx backend falls back to auto)."""
    from edge_digits.runtime import BACKENDS, Classifier

    model = Path(path) if path is not None else REJECT_MODEL
    card = REJECT_CARD if path is None else model.with_name("report.json")
    if not model.is_file():
        raise FileNotFoundError(f"rejection model {model} does not exist (train one: edge-digits train-reject)")
    thresholds = json.loads(card.read_text())["thresholds"] if card.is_file() else {"normal": 0.5, "strict": 0.7}
    backend = backend if backend in BACKENDS and BACKENDS[backend].suffix == ".tflite" else "auto"
    return Rejector(Classifier(model, backend=backend, classes=2), float(thresholds["normal"]),
                    float(thresholds["strict"]))


def writing_like(boxes: list[Box], confidences: list[float]) -> list[bool]:
    """Which glyphs of one line to keep: those that agree with the line in height and centre line.

    The centre line follows a tilted line of writing. A glyph under a quarter
    or over 3.5 times the line's median height, or that covers less than half
    of its own height (or of the line's, if smaller) of the line's central
    band, is dropped: small 0s and long-tailed 7s stay, a speck or a page edge
    beside the line does not. A glyph left
    alone is kept only when it reads as a digit with ``LONE_CONFIDENCE``.

    >>> writing_like([Box(0, 0, 10, 20), Box(12, 1, 10, 19), Box(30, 30, 10, 20)], [0.9, 0.9, 0.9])
    [True, True, False]
    """
    if not boxes:
        return []
    heights = np.array([b.h for b in boxes], np.float32)
    h = float(np.median(heights))
    xs = np.array([b.x + b.w / 2 for b in boxes], np.float32)
    cys = np.array([b.cy for b in boxes], np.float32)
    if len(boxes) >= 3 and np.ptp(xs) > h:
        slope, _ = np.polyfit(xs, cys, 1)
        slope = float(np.clip(slope, -0.3, 0.3))   # lines tilt a little; the fit follows them
    else:
        slope = 0.0
    centre = float(np.median(cys - slope * xs)) + slope * xs
    overlap = np.array([max(0.0, min(b.y2, c + h / 2) - max(b.y, c - h / 2)) for b, c in zip(boxes, centre)],
                       np.float32)
    keep = (heights >= 0.25 * h) & (heights <= 3.5 * h) & (overlap >= 0.5 * np.minimum(heights, h))
    if int(keep.sum()) == 1:
        i = int(np.flatnonzero(keep)[0])
        keep[i] = confidences[i] >= LONE_CONFIDENCE
    return [bool(k) for k in keep]
