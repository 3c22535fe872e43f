"""What lies around a page on a desk, drawn from a seed: wood grain, cloth, a keyboard, printed matter;
and where a sheet lands in such a frame (``place``).

The demo clip puts its sheets on these backgrounds, and the rejection
trainer cuts its negatives out of them (every glyph the segmenter finds in a
picture of clutter is, by construction, not a handwritten digit). Text is
drawn with OpenCV's Hershey fonts, so this needs only numpy and OpenCV and
runs on a Pi.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
           cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
           cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
LETTERS = "ACEFHKLMNPRUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "#%&@*+=<>~^[]{}"
TEXT_CHARS = LETTERS + SYMBOLS + "    "


def place(rng: np.random.Generator, page_size: tuple[int, int], frame_size: tuple[int, int],
          area: tuple[float, float] = (0.25, 0.6), tilt_deg: float = 30.0) -> np.ndarray:
    """Where a page's corners land in a frame: ``area`` share of the frame (less where a page that large
    would not fit), seen up to ``tilt_deg`` off square (the far side shortened), turned in the plane,
    and inside the frame."""
    pw, ph = page_size
    fw, fh = frame_size
    share = rng.uniform(*area)
    tilt = np.radians(rng.uniform(0, tilt_deg))
    s = np.sqrt(share * fw * fh / (pw * ph * np.cos(tilt)))
    w, h = pw * s, ph * s * np.cos(tilt)
    far = 1.0 - 0.5 * np.sin(tilt)
    quad = np.array([[-w * far / 2, -h / 2], [w * far / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]], np.float32)
    angle = np.radians(rng.uniform(-25, 25))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    quad = quad @ rot.T
    span = quad.max(axis=0) - quad.min(axis=0)
    quad *= min(1.0, float(np.min(0.97 * np.array([fw, fh], np.float32) / span)))   # the whole page stays in view
    span = quad.max(axis=0) - quad.min(axis=0)
    free = np.maximum(np.array([fw, fh], np.float32) - span, 1)
    offset: NDArray[np.float32] = rng.uniform(0, 1, 2).astype(np.float32) * free - quad.min(axis=0)
    return (quad + offset).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Noise in [0, 1] with features about ``scale`` pixels wide (coarse noise, scaled up)."""
    h, w = shape
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    coarse = rng.random((gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def wood(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A wooden desk: warm colour, wavy grain lines along one direction, knots of darker wood."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    warp = smooth_noise(rng, shape, rng.uniform(40, 120)) * rng.uniform(10, 40)
    grain = 0.5 + 0.5 * np.sin((u + warp) / rng.uniform(2.0, 6.0))
    tone: NDArray[np.float64] = 0.55 + 0.25 * grain + 0.2 * smooth_noise(rng, shape, 30)
    base = np.array([rng.uniform(30, 90), rng.uniform(60, 120), rng.uniform(100, 170)], np.float32)
    return np.clip(tone[..., None] * base * rng.uniform(0.6, 1.4), 0, 255).astype(np.uint8)


def cloth(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Cloth or a mouse pad: one colour, a fine weave, soft folds."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(2.0, 5.0)
    weave = 0.5 + 0.25 * (np.sin(xx * np.pi / period) * np.sin(yy * np.pi / period))
    folds = smooth_noise(rng, shape, rng.uniform(40, 100))
    tone: np.ndarray = 0.6 + 0.2 * weave + 0.3 * folds
    colour = rng.uniform(20, 200, 3).astype(np.float32)
    return np.clip(tone[..., None] * colour, 0, 255).astype(np.uint8)


def keyboard(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A keyboard seen from above: a grid of keys with letters printed on them."""
    h, w = shape
    dark = rng.random() < 0.6
    body, key, ink = ((25, 25, 28), (45, 45, 50), (200, 200, 200)) if dark else \
        ((180, 180, 185), (225, 225, 228), (40, 40, 40))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = body
    pitch = int(rng.uniform(22, 48))
    gap = max(2, pitch // 8)
    offset = int(rng.integers(0, pitch))
    for row, y in enumerate(range(-offset, h, pitch)):
        shift = (row * pitch // 4) % pitch
        for x in range(-shift, w, pitch):
            cv2.rectangle(img, (x + gap, y + gap), (x + pitch - gap, y + pitch - gap), key, -1)
            if rng.random() < 0.8:
                ch = LETTERS[int(rng.integers(len(LETTERS)))].upper()
                cv2.putText(img, ch, (x + pitch // 3, y + 2 * pitch // 3), cv2.FONT_HERSHEY_SIMPLEX,
                            pitch / 70.0, ink, 1, cv2.LINE_AA)
    return img


def printed_text(rng: np.random.Generator, shape: tuple[int, int], paper: tuple[int, int, int] | None = None,
                 chars: str = TEXT_CHARS) -> np.ndarray:
    """Printed matter: lines of letters and symbols (no digits) on paper or on a coloured ground."""
    h, w = shape
    img = np.empty((h, w, 3), np.uint8)
    img[:] = paper if paper is not None else tuple(int(v) for v in rng.uniform(150, 250, 3))
    ink = tuple(int(v) for v in rng.uniform(0, 80, 3))
    size = rng.uniform(0.35, 1.2)
    font = HERSHEY[int(rng.integers(len(HERSHEY)))]
    thickness = int(rng.integers(1, 3))
    step = int(30 * size) + 6
    for y in range(int(rng.uniform(10, 30)), h, step):
        text = "".join(chars[int(i)] for i in rng.integers(0, len(chars), max(4, w // max(6, int(14 * size)))))
        cv2.putText(img, text, (int(rng.uniform(-10, 20)), y), font, size, ink, thickness, cv2.LINE_AA)
    return img


def blank_sheet(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """An empty sheet of off-white paper (width, height), with paper grain."""
    w, h = size
    sheet = np.empty((h, w, 3), np.float32)
    sheet[:] = 240 * rng.uniform(0.9, 1.0, 3)
    sheet += rng.normal(0, 2.0, sheet.shape).astype(np.float32)
    return np.clip(sheet, 0, 255).astype(np.uint8)


BACKGROUNDS: dict[str, Callable[[np.random.Generator, tuple[int, int]], np.ndarray]] = {
    "wood": wood, "cloth": cloth, "keyboard": keyboard, "print": printed_text,
}


def desk(rng: np.random.Generator, shape: tuple[int, int], kinds: tuple[str, ...] = tuple(BACKGROUNDS)) -> np.ndarray:
    """A desk scene (h, w): one background with, often, a second kind of clutter in a patch of it."""
    h, w = shape
    names = list(kinds)
    img = BACKGROUNDS[names[int(rng.integers(len(names)))]](rng, shape).copy()
    if rng.random() < 0.7:
        other = BACKGROUNDS[names[int(rng.integers(len(names)))]](rng, shape)
        ph, pw = int(h * rng.uniform(0.25, 0.6)), int(w * rng.uniform(0.25, 0.6))
        y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        angle = rng.uniform(-20, 20)
        mask = np.zeros((h, w), np.uint8)
        box = cv2.boxPoints(((x + pw / 2, y + ph / 2), (pw, ph), angle))
        cv2.fillConvexPoly(mask, np.array(box, np.int32), 1)
        img[mask > 0] = other[mask > 0]
    return img
