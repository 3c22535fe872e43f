"""The photo answer of the HTTP service's ``/v1/read``: one photo read into JSON-ready lines and boxes.

A photo is read as ``run`` reads an image file: the page found and
flattened (or the whole photo, where it is all page), glyphs that are not
digits dropped. Each box comes twice: ``box`` in the image as read (the
upright page, or the photo turned by ``rotation`` and resized by ``scale``)
and ``frame_box`` in the pixels of the photo as uploaded, beside the page
outline ``page`` (null where the whole photo was read).
"""

from __future__ import annotations

import numpy as np

from edge_digits.vision.reader import Digit, DigitClassifier, FrameReader
from edge_digits.vision.reject import Rejector


def _box_of(boxes: list[list[int]]) -> list[int]:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return [x0, y0, x1 - x0, y1 - y0]


def _line(text: str, digits: list[Digit]) -> dict[str, object]:
    frame_boxes = [(d.frame_box or d.box).as_list() for d in digits]
    return {"text": text, "box": _box_of([d.box.as_list() for d in digits]), "frame_box": _box_of(frame_boxes),
            "confidence": round(min(d.confidence for d in digits), 4),
            "digits": [{"digit": d.label, "box": d.box.as_list(), "frame_box": fb,
                        "confidence": round(d.confidence, 4)} for d, fb in zip(digits, frame_boxes)]}


def page_answer(frame: np.ndarray, classifier: DigitClassifier, rotate: int | str = "auto",
                rejector: Rejector | None = None, reader: FrameReader | None = None) -> dict[str, object]:
    """One photo read as JSON-ready data: lines with their text, boxes, weakest digit confidence, digits."""
    if frame.ndim not in (2, 3) or min(frame.shape[:2]) < 8:
        raise ValueError(f"a {'x'.join(map(str, frame.shape[:2]))} image is too small to hold a digit")
    reader = reader if reader is not None else FrameReader(classifier, rotate, "auto", rejector)
    reader.reset()
    reading = reader.read(frame, keep_image=True)
    assert reading.image is not None
    lines = [_line(text, [d for d in reading.digits if d.line == index]) for index, text in enumerate(reading.lines)]
    scale = max(reading.image.shape[:2]) / max(frame.shape[:2])
    return {"lines": lines, "rotation": reading.rotation, "scale": round(scale, 6),
            "page": reading.page.as_list() if reading.page is not None else None}


class PhotoAnswerer:
    """``read(photo) -> dict`` over a classifier (and rejection model) of its own (the service's ``/v1/read``)."""

    def __init__(self, classifier: DigitClassifier, rotate: int | str = "auto",
                 rejector: Rejector | None = None) -> None:
        self.classifier, self.rotate = classifier, rotate
        self._reader = FrameReader(classifier, rotate, "auto", rejector)

    def read(self, image_bgr: np.ndarray) -> dict[str, object]:
        return page_answer(image_bgr, self.classifier, self.rotate, reader=self._reader)
