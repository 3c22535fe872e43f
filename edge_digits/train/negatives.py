"""Glyphs that are not handwritten digits, and digits as the reader sees them, for the rejection model.

Negatives come from the reader's own segmenter run over pictures that hold
no handwritten digit (desks, keyboards, cloth, printed letters and symbols,
pen scribbles that look like the strokes of Chinese writing), plus shapes the
segmenter lets through on real pages: two digits touching, pieces of a digit,
ink blobs, crosses and corners. Positives are MNIST digits turned into ink
masks and normalised exactly as the reader normalises a glyph, with the
stroke and resolution changes a camera brings. Fonts from files (matplotlib's
DejaVu, STIX and Computer Modern fonts, through Pillow) are used when they
are installed; OpenCV's Hershey fonts always are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from edge_digits.vision import clutter
from edge_digits.vision.segment import normalize_digit, normalize_lines, segment

NOT_DIGITS = clutter.LETTERS + clutter.SYMBOLS


def font_files() -> list[Path]:
    """TrueType fonts shipped with matplotlib (none when it is not installed)."""
    try:
        import matplotlib
    except ImportError:
        return []
    return sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf"))


def _scribble(rng: np.random.Generator, size: int) -> np.ndarray:
    """A mask of 3-8 pen strokes crossing in a box: what one character of handwritten Chinese looks like."""
    mask = np.zeros((size, size), np.uint8)
    thick = max(1, int(size * rng.uniform(0.03, 0.09)))
    p: tuple[float, float] | np.ndarray   # two points of a stroke: picked as pairs, or drawn as arrays
    q: tuple[float, float] | np.ndarray
    for _ in range(int(rng.integers(3, 9))):
        if rng.random() < 0.75:
            horizontal = rng.random() < 0.5
            a, b = sorted(rng.uniform(0.05, 0.95, 2) * size)
            c = rng.uniform(0.1, 0.9) * size
            p, q = ((a, c), (b, c)) if horizontal else ((c, a), (c, b))
            jitter = rng.normal(0, 0.04 * size, 4)
            cv2.line(mask, (int(p[0] + jitter[0]), int(p[1] + jitter[1])),
                     (int(q[0] + jitter[2]), int(q[1] + jitter[3])), 1, thick)
        else:
            p = rng.uniform(0.05, 0.95, 2) * size
            q = rng.uniform(0.05, 0.95, 2) * size
            cv2.line(mask, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, thick)
    return mask


def _page_of_scribbles(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A white page with rows of pen scribbles and Hershey script letters in dark ink."""
    h, w = shape
    page = clutter.blank_sheet(rng, (w, h))
    ink = tuple(int(v) for v in rng.uniform(10, 90, 3))
    size = int(rng.uniform(16, 48))
    for y in range(int(rng.uniform(5, 20)), h - size, int(size * rng.uniform(1.2, 1.8))):
        x = int(rng.uniform(5, 30))
        while x < w - size:
            if rng.random() < 0.6:
                m = _scribble(rng, size)
                page[y:y + size, x:x + size][m > 0] = ink
                x += int(size * rng.uniform(1.0, 1.3))
            else:
                ch = NOT_DIGITS[int(rng.integers(len(NOT_DIGITS)))]
                font = clutter.HERSHEY[int(rng.integers(len(clutter.HERSHEY)))]
                cv2.putText(page, ch, (x, y + size), font, size / 30.0, ink, max(1, size // 14), cv2.LINE_AA)
                x += int(size * rng.uniform(0.8, 1.2))
    return page


def _page_of_font_text(rng: np.random.Generator, shape: tuple[int, int], fonts: list[Path]) -> np.ndarray | None:
    """A page of letters and symbols in a TrueType font (Pillow), or None without Pillow or fonts."""
    if not fonts:
        return None
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    h, w = shape
    image = Image.fromarray(clutter.blank_sheet(rng, (w, h)))
    draw = ImageDraw.Draw(image)
    size = int(rng.uniform(14, 60))
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size)
    ink = tuple(int(v) for v in rng.uniform(0, 90, 3))
    for y in range(int(rng.uniform(0, 15)), h - size, int(size * 1.4)):
        text = "".join(NOT_DIGITS[int(i)] if rng.random() < 0.85 else " "
                       for i in rng.integers(0, len(NOT_DIGITS), max(3, w // size)))
        draw.text((int(rng.uniform(0, 20)), y), text, fill=ink, font=font)
    return np.asarray(image)


def _camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Blur, uneven light and sensor noise, as the demo clip's camera adds them."""
    out: np.ndarray = image.astype(np.float32)
    h, w = out.shape[:2]
    light = 1.0 - 0.3 * clutter.smooth_noise(rng, (h, w), max(h, w) / 2)
    out = out * light[..., None]
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.2))
    out += rng.normal(0, rng.uniform(1, 5), out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def scene_negatives(rng: np.random.Generator, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Every glyph the segmenter finds in one generated picture with no handwritten digit, normalised."""
    kind = rng.random()
    fonts = font_files()
    image: np.ndarray | None
    if kind < 0.3:
        image = clutter.desk(rng, shape)
    elif kind < 0.55:
        image = _page_of_scribbles(rng, shape)
    elif kind < 0.8:
        image = _page_of_font_text(rng, shape, fonts)
        if image is None:
            image = clutter.printed_text(rng, shape, paper=(235, 235, 232))
    else:
        paper = cast(tuple[int, int, int], tuple(int(v) for v in rng.uniform(200, 250, 3)))  # 3 draws: RGB
        image = clutter.printed_text(rng, shape, paper=paper)
    seg = segment(_camera(rng, image))
    return normalize_lines(seg)


def digit_mask(rng: np.random.Generator, digit: np.ndarray) -> np.ndarray:
    """An MNIST digit as the ink mask a camera frame would give: a small turn and slant, a resolution, blur,
    a threshold, a stroke change, sometimes a stroke broken across."""
    scale = rng.uniform(1.0, 3.0)
    size = max(12, int(28 * scale))
    m: np.ndarray = cv2.getRotationMatrix2D((14, 14), rng.uniform(-12, 12), 1.0)
    m[0, :2] *= rng.uniform(0.8, 1.15)
    m[0, 1] += rng.uniform(-0.2, 0.2)
    warped = cv2.warpAffine(digit, m, (28, 28), flags=cv2.INTER_LINEAR)
    big = cv2.resize(warped, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        big = cv2.GaussianBlur(big, (0, 0), rng.uniform(0.3, 1.2) * scale)
    mask: np.ndarray = (big > rng.uniform(50, 170)).astype(np.uint8)
    if rng.random() < 0.15:
        y = int(rng.uniform(0.2, 0.8) * size)
        mask[y:y + max(1, size // 20)] = 0   # a pen that skipped: a stroke broken across
    r = int(rng.integers(-1, 2))
    if r > 0:
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
    elif r < 0 and mask.sum() > 40:
        eroded = cv2.erode(mask, np.ones((2, 2), np.uint8))
        mask = eroded if eroded.sum() > 0.4 * mask.sum() else mask
    return _crop(mask)


def _crop(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def shape_negatives(rng: np.random.Generator, digits: np.ndarray, n: int) -> np.ndarray:
    """``n`` normalised glyphs of shapes that get past segmentation on a written page but are no digit:
    two digits touching, a piece of a digit, an ink blob, a cross, a corner, a box."""
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.4:
            a, b = (digit_mask(rng, digits[int(rng.integers(len(digits)))]) for _ in range(2))
            h = max(a.shape[0], b.shape[0])
            a, b = (cv2.resize(m, (max(1, int(m.shape[1] * h / m.shape[0])), h), interpolation=cv2.INTER_NEAREST)
                    for m in (a, b))
            overlap = int(rng.uniform(0.0, 0.3) * min(a.shape[1], b.shape[1]))
            canvas = np.zeros((h, a.shape[1] + b.shape[1] - overlap), np.uint8)
            canvas[:, :a.shape[1]] |= a
            canvas[:, a.shape[1] - overlap:] |= b
            mask = canvas
        elif kind < 0.55:
            m = digit_mask(rng, digits[int(rng.integers(len(digits)))])
            h, w = m.shape
            side = int(rng.integers(4))
            cut = rng.uniform(0.3, 0.5)
            mask = [m[:int(h * cut)], m[int(h * (1 - cut)):], m[:, :int(w * cut)], m[:, int(w * (1 - cut)):]][side]
        else:
            size = 60
            mask = np.zeros((size, size), np.uint8)
            t = int(rng.integers(2, 9))
            shape = rng.random()
            if shape < 0.3:
                cv2.ellipse(mask, (30, 30), (int(rng.uniform(8, 28)), int(rng.uniform(8, 28))),
                            rng.uniform(0, 180), 0, 360, 1, -1)
            elif shape < 0.55:
                cv2.line(mask, (5, 30), (55, 30), 1, t)
                cv2.line(mask, (30, 5), (30, 55), 1, t)
                if rng.random() < 0.5:
                    mask = cv2.warpAffine(mask, cv2.getRotationMatrix2D((30, 30), 45, 1.0), (size, size))
            elif shape < 0.8:
                cv2.rectangle(mask, (5, 5), (55, 55), 1, t)
                if rng.random() < 0.6:
                    mask[int(rng.uniform(10, 50)):, int(rng.uniform(10, 50)):] = 0
            else:
                pts = rng.uniform(0, size, (int(rng.integers(3, 7)), 2)).astype(np.int32)
                cv2.fillPoly(mask, [cv2.convexHull(pts)], 1)
            mask = _crop(mask)
        out.append(normalize_digit(np.ascontiguousarray(mask)) if mask.size and mask.any() else None)
    return np.stack([o for o in out if o is not None]) if out else np.zeros((0, 28, 28), np.uint8)


def positives(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray:
    """MNIST digits normalised as the reader normalises a glyph from a camera frame (:func:`digit_mask`)."""
    return np.stack([normalize_digit(digit_mask(rng, d)) for d in digits])


def negatives(rng: np.random.Generator, digits: np.ndarray, n: int) -> np.ndarray:
    """About ``n`` negatives: two thirds from generated scenes and pages, a third from digit-like shapes."""
    parts = [shape_negatives(rng, digits, n // 3)]
    count = len(parts[0])
    while count < n:
        batch = scene_negatives(rng)
        parts.append(batch)
        count += len(batch)
    return np.concatenate(parts)[:n]


def batches(seed: int, digits: np.ndarray, n: int, chunk: int = 2000) -> Iterator[np.ndarray]:
    """Negatives in chunks, from one seed (a held-out set uses another seed)."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        yield negatives(rng, digits, min(chunk, n - start))
