"""The photo answer of the HTTP service's ``/v1/read``: one photo read into JSON-ready lines and boxes.

It reads the whole photo (no page finding, no rejection), so its boxes keep
the meaning the service's OpenAPI document gives them.
"""

from __future__ import annotations

import numpy as np

from edge_digits.reader import DigitClassifier, read_frame


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
