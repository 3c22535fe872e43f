"""What a run shows and who follows it: ``draw_reading`` (the annotated view: page outline, boxes, digits,
settled strings, FPS), ``LiveFrame`` (one read frame as observers get it) and ``RunObserver`` (the live web
view and the MQTT publisher follow a run through it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from edge_digits.vision.reader import FrameReading


def draw_reading(image: np.ndarray, reading: FrameReading, fps: float, box_scale: float = 1.0,
                 stable: list[str] | None = None) -> np.ndarray:
    """The source frame with the page outline, each digit's box and class, the settled strings and the
    current FPS, drawn on a BGR copy.

    Boxes are the digits' ``frame_box`` (source frame pixels); ``box_scale``
    maps them onto a larger display frame (picamera2's ``main`` stream).
    """
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    if reading.page is not None:
        quad = np.round(reading.page.corners * box_scale).astype(np.int32)
        cv2.polylines(out, [quad], True, (255, 160, 0), 2)
    for d in reading.digits:
        b = d.frame_box or d.box
        x, y, x2, y2 = (int(round(v * box_scale)) for v in (b.x, b.y, b.x2, b.y2))
        colour = (0, 170, 0) if d.confidence >= 0.8 else (0, 140, 255)
        cv2.rectangle(out, (x, y), (x2, y2), colour, 1 if box_scale < 1.5 else 2)
        cv2.putText(out, str(d.label), (x, max(10, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 2)
    cv2.putText(out, f"{fps:.1f} FPS", (8, int(24 * scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 255), 2)
    shown = stable or []
    step = int(30 * scale / 0.6)
    for i, text in enumerate(shown):   # the settled strings in reading order, bottom left
        cv2.putText(out, text, (8, out.shape[0] - 10 - (len(shown) - 1 - i) * step), cv2.FONT_HERSHEY_SIMPLEX,
                    scale * 1.2, (255, 0, 255), 2)
    return out


@dataclass(frozen=True)
class LiveFrame:
    """One read frame as an observer gets it: the source frame (and its display stream, where the source has
    one), the reading, the settled strings (None on image files), the frame's record and the current FPS.
    ``annotate`` draws the annotated view; observers call it in their own thread, only when they need it."""

    frame: np.ndarray
    display: np.ndarray | None
    reading: FrameReading
    stable: list[str] | None
    record: dict[str, object]
    fps: float

    @property
    def shown(self) -> list[str]:
        """The strings the run shows for this frame: the settled ones, or the frame's own where nothing
        settles (image files)."""
        return self.stable if self.stable is not None else self.reading.lines

    def annotate(self) -> np.ndarray:
        base = self.display if self.display is not None else self.frame
        return draw_reading(base, self.reading, self.fps, base.shape[1] / self.frame.shape[1], self.stable)


class RunObserver(Protocol):
    """Something that follows a run as it goes (the live web view, the MQTT publisher): it gets every frame
    from the loop and must return at once (a slow consumer drops frames, it never slows the reading)."""

    name: str

    def wants_display(self) -> bool:
        """True while it would show the source's full display stream (picamera2's ``main``): someone watches."""
        ...

    def frame(self, live: LiveFrame) -> None: ...

    def close(self) -> dict[str, object]:
        """Stop, and say what happened (figures for the run summary)."""
        ...
