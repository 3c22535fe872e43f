"""Find handwritten digits in a camera frame and make them look like MNIST.

The steps follow the issue: grey image, illumination correction against an
estimated paper background, a hysteresis threshold (Otsu-based, with a floor so
a blank page stays blank), a small closing, connected components filtered on
size, aspect and ink, merging of broken strokes, splitting of touching digits
at ink-projection minima, and grouping into text lines in reading order
(rows top to bottom, columns left to right inside a row). Each digit is then
normalised as MNIST was made: fit into 20x20 keeping the aspect ratio, stroke
width brought close to MNIST's, centred by centre of mass in 28x28. A glyph
much taller than the rest of its line (a 7 or 9 with a long tail) is first
squashed to the line's height, since MNIST has few such tails.

Only numpy and OpenCV are used, so this runs on a Pi without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def x2(self) -> int:
        return self.x + self.w

    @property
    def y2(self) -> int:
        return self.y + self.h

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def union(self, other: Box) -> Box:
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Box(x, y, max(self.x2, other.x2) - x, max(self.y2, other.y2) - y)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass
class Glyph:
    """One candidate digit: its box and its own ink mask (uint8 0/1, box-sized)."""

    box: Box
    mask: np.ndarray


@dataclass
class Segmentation:
    """What segmentation found: lines of glyphs in reading order, plus the ink map used."""

    lines: list[list[Glyph]]
    ink: np.ndarray
    digit_height: float = 0.0

    @property
    def glyphs(self) -> list[Glyph]:
        return [g for line in self.lines for g in line]


@dataclass(frozen=True)
class SegmentParams:
    """Tunable thresholds; defaults read phone photos and Pi camera frames of pen on paper."""

    ink_floor: float = 0.10          # weakest ink contrast ever counted as ink (fraction of paper brightness)
    strong_ratio: float = 1.6        # seeds must be this many times the weak threshold
    min_height_frac: float = 0.018   # digits smaller than this share of the frame's short side are noise
    max_height_frac: float = 0.5     # and larger than this share are not digits
    min_fill: float = 0.04           # ink pixels / box area
    max_fill: float = 0.85
    line_gap: float = 2.2            # a horizontal gap wider than this many digit heights starts a new line
    split_aspect: float = 1.25       # components wider than this times the digit height get split


MNIST_STROKE = 11.0   # 4 x mean distance-to-background of MNIST test strokes at 4x scale (measured)
_WORK = 80            # digits are normalised at 4x the 20-pixel MNIST box, then area-downsampled


def to_grey(frame: np.ndarray) -> np.ndarray:
    """BGR, BGRA or grey uint8 to grey uint8."""
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def ink_map(grey: np.ndarray) -> np.ndarray:
    """Ink contrast as uint8 (255 = black on white): how much darker each pixel is than the paper around it.

    The paper is estimated with a grey-level closing (which erases pen strokes)
    on a quarter-size image, then smoothed and scaled back, so shadows and
    uneven light divide out. Everything stays uint8 for speed on a Pi.
    """
    h, w = grey.shape
    small = cv2.resize(grey, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    k = max(5, (min(small.shape) // 12) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    bg = cv2.blur(bg, (k, k))
    bg = np.maximum(cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8(16))
    return cv2.divide(cv2.subtract(bg, grey), bg, scale=255)


def find_glyphs(ink: np.ndarray, params: SegmentParams = SegmentParams()) -> list[Glyph]:
    """Connected ink components after a hysteresis threshold: weak ink counts where it touches strong ink.

    The weak threshold is half Otsu's on the ink map, never below
    ``ink_floor``, so a blank page stays blank and thin pen strokes survive.
    """
    otsu, _ = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    weak = max(params.ink_floor * 255, 0.5 * otsu)
    strong = min(230.0, weak * params.strong_ratio)
    _, weak_mask = cv2.threshold(ink, weak, 1, cv2.THRESH_BINARY)
    weak_mask = cv2.morphologyEx(weak_mask, cv2.MORPH_CLOSE, np.ones((2, 2), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(weak_mask, 8, cv2.CV_32S, cv2.CCL_BBDT)
    min_side = max(3, int(0.8 * params.min_height_frac * min(ink.shape)))
    seeded = np.bincount(labels[ink > strong], minlength=n) > 0
    big = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= min_side
    glyphs = []
    for i in np.flatnonzero(seeded & big):
        if i == 0:
            continue
        x, y, w, h, _area = (int(v) for v in stats[i])
        glyphs.append(Glyph(Box(x, y, w, h), (labels[y:y + h, x:x + w] == i).astype(np.uint8)))
    return glyphs


def _merge(a: Glyph, b: Glyph) -> Glyph:
    box = a.box.union(b.box)
    mask = np.zeros((box.h, box.w), np.uint8)
    for g in (a, b):
        oy, ox = g.box.y - box.y, g.box.x - box.x
        mask[oy:oy + g.box.h, ox:ox + g.box.w] |= g.mask
    return Glyph(box, mask)


def _x_overlap(a: Box, b: Box) -> float:
    return max(0, min(a.x2, b.x2) - max(a.x, b.x)) / max(1, min(a.w, b.w))


def _y_overlap(a: Box, b: Box) -> float:
    return max(0, min(a.y2, b.y2) - max(a.y, b.y)) / max(1, min(a.h, b.h))


def _belong_together(a: Box, b: Box, height: float) -> bool:
    """Two pieces of one digit: stacked (a broken 4), one inside the other, or a flat cap at the
    top right of a digit's body (a 5 written in two strokes)."""
    if abs(a.cy - b.cy) > 1.5 * height:
        return False
    u = a.union(b)
    small, body = (a, b) if a.h * a.w < b.h * b.w else (b, a)
    gap = max(b.y - a.y2, a.y - b.y2)
    xo = _x_overlap(a, b)
    stacked = xo > 0.6 and gap < 0.25 * height and u.h < 1.5 * height
    inside = xo > 0.8 and _y_overlap(a, b) > 0.8 and small.h < 0.5 * height
    if (stacked or inside) and u.w <= 1.25 * max(a.w, b.w) + 2 and u.w < 1.1 * height:
        return True
    hgap = max(b.x - a.x2, a.x - b.x2)
    return (small.w >= 1.3 * small.h and small.h < 0.35 * height and small.x >= body.x
            and hgap < 0.15 * height and small.y2 <= body.y + 0.45 * body.h
            and body.h >= 0.4 * height and u.w < 1.1 * height)


def _merge_broken(glyphs: list[Glyph], height: float) -> list[Glyph]:
    """Join the pieces of each digit (see :func:`_belong_together`), scanning left to right."""
    glyphs = sorted(glyphs, key=lambda g: g.box.x)
    i = 0
    while i < len(glyphs):
        j = i + 1
        while j < len(glyphs):
            a, b = glyphs[i].box, glyphs[j].box
            if b.x > a.x2 + height:
                break
            if _belong_together(a, b, height):
                glyphs[i] = _merge(glyphs[i], glyphs[j])
                del glyphs[j]
            else:
                j += 1
        i += 1
    return glyphs


def _too_wide(box: Box, height: float, params: SegmentParams) -> bool:
    """Wider than one digit can be, against the page's digit height."""
    return box.w > params.split_aspect * max(height, box.h * 0.9)


def _cut_cost(mask: np.ndarray) -> np.ndarray:
    """Cost of cutting at each column: ink pixels plus the column's ink extent (top to bottom).

    Where two round digits touch ("00"), the column has as much ink as the
    middle of a loop but a much shorter extent, so the extent finds the joint.
    """
    h = mask.shape[0]
    any_ink = mask.any(axis=0)
    top = np.where(any_ink, mask.argmax(axis=0), h)
    bottom = np.where(any_ink, h - mask[::-1].argmax(axis=0), 0)
    cost = (mask.sum(axis=0) + np.maximum(bottom - top, 0)).astype(np.float32)
    return np.convolve(cost, np.ones(3, np.float32) / 3, mode="same")


def cut_glyph(g: Glyph, n: int) -> list[Glyph]:
    """Cut a glyph into ``n`` pieces at the cheapest columns (see :func:`_cut_cost`) near even spacing."""
    box = g.box
    profile = _cut_cost(g.mask)
    cuts = []
    for k in range(1, n):
        centre = box.w * k / n
        lo, hi = int(centre - 0.3 * box.w / n), int(centre + 0.3 * box.w / n) + 1
        lo, hi = max(1, lo), min(box.w - 1, hi)
        if hi > lo:
            cuts.append(lo + int(np.argmin(profile[lo:hi])))
    pieces: list[Glyph] = []
    edges = [0, *cuts, box.w]
    for a, b in zip(edges[:-1], edges[1:]):
        sub = g.mask[:, a:b]
        rows = np.flatnonzero(sub.any(axis=1))
        cols = np.flatnonzero(sub.any(axis=0))
        if len(rows) == 0:
            continue
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        pieces.append(Glyph(Box(box.x + a + x0, box.y + y0, x1 - x0, y1 - y0), sub[y0:y1, x0:x1].copy()))
    return pieces


def _split(g: Glyph, height: float, width: float, params: SegmentParams, depth: int = 0) -> list[Glyph]:
    """Split a too-wide component into digits; the count comes from the page's typical digit width."""
    if depth >= 2 or not _too_wide(g.box, height, params):
        return [g]
    n = max(2, int(g.box.w / width + 0.25))
    return [p for piece in cut_glyph(g, n) for p in _split(piece, height, width, params, depth + 1)]


def _split_wide_in_line(line: list[Glyph], height: float) -> list[Glyph]:
    """Cut glyphs far wider than their line's typical digit: touching pairs that looked digit-shaped alone."""
    widths = [g.box.w for g in line if g.box.w >= 0.35 * g.box.h]
    if len(widths) < 4:
        return line
    typical = float(np.median(widths))
    out: list[Glyph] = []
    for g in line:
        if g.box.w > 1.8 * typical and g.box.w > 0.7 * height:
            out.extend(cut_glyph(g, max(2, int(g.box.w / typical + 0.3))))
        else:
            out.append(g)
    return out


def _group_lines(glyphs: list[Glyph], height: float, params: SegmentParams) -> list[list[Glyph]]:
    """Chain glyphs left to right into lines, then order lines as rows top to bottom, columns left to right."""
    lines: list[list[Glyph]] = []
    for g in sorted(glyphs, key=lambda g: g.box.x):
        best, best_score = None, 0.0
        for line in lines:
            last = line[-1].box
            gap = g.box.x - last.x2
            if gap > params.line_gap * height:
                continue
            overlap = _y_overlap(last, g.box)
            centre = 1.0 - abs(last.cy - g.box.cy) / height
            score = max(overlap, centre)
            if score > 0.45 and score > best_score:
                best, best_score = line, score
        if best is None:
            lines.append([g])
        else:
            best.append(g)

    def span(line: list[Glyph]) -> tuple[float, float]:
        cys = sorted(g.box.cy for g in line)
        mid = cys[len(cys) // 2]
        return mid - height / 2, mid + height / 2

    lines.sort(key=lambda ln: span(ln)[0])
    rows: list[list[list[Glyph]]] = []
    for line in lines:
        top, bottom = span(line)
        for row in rows:
            rtop, rbottom = span(row[0])
            if min(bottom, rbottom) - max(top, rtop) > 0.5 * height:
                row.append(line)
                break
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda ln: ln[0].box.x)]


def _on_page(glyphs: list[Glyph], shape: tuple[int, int], params: SegmentParams) -> list[Glyph]:
    """Drop specks, shapes too big to be digits (page edges, shadows) and anything touching the frame border."""
    fh, fw = shape
    short, border, lo = min(fh, fw), 2, params.min_height_frac * min(fh, fw)
    out = []
    for g in glyphs:
        b = g.box
        if b.h < lo and b.w < lo:
            continue
        if b.h > params.max_height_frac * short or b.w > params.max_height_frac * fw:
            continue
        if b.x < border or b.y < border or b.x2 > fw - border or b.y2 > fh - border:
            continue
        out.append(g)
    return out


def _digit_height(glyphs: list[Glyph]) -> float:
    """Typical digit height of a page: the median height of the glyphs that are not mere fragments."""
    heights = np.array([g.box.h for g in glyphs], np.float32)
    sizes = np.array([max(g.box.w, g.box.h) for g in glyphs], np.float32)
    return float(np.median(heights[sizes >= 0.35 * np.percentile(sizes, 90)]))


def _digit_like(g: Glyph, height: float, params: SegmentParams) -> bool:
    """Tall enough with plausible ink (or a thin 1), or a small closed shape such as a little 0."""
    b = g.box
    fill = g.mask.sum() / float(b.w * b.h)
    thin = b.h >= 0.4 * height and b.w <= 0.35 * b.h
    normal = b.h >= 0.4 * height and params.min_fill <= fill <= params.max_fill
    small = max(b.w, b.h) >= 0.28 * height and b.h >= 0.2 * height and 0.15 <= fill <= params.max_fill
    return thin or normal or small


def segment(frame: np.ndarray, params: SegmentParams = SegmentParams()) -> Segmentation:
    """Find digit glyphs in a BGR or grey frame and group them into lines in reading order."""
    grey = to_grey(frame)
    ink = ink_map(grey)
    candidates = _on_page(find_glyphs(ink, params), grey.shape, params)
    if not candidates:
        return Segmentation([], ink, 0.0)
    height = _digit_height(candidates)
    pieces = [g for g in candidates if _digit_like(g, height, params) or max(g.box.w, g.box.h) >= 0.25 * height]
    merged = [g for g in _merge_broken(pieces, height)
              if _digit_like(g, height, params) and g.box.h <= 3.0 * height]
    widths = [g.box.w for g in merged if 0.35 * height <= g.box.w <= height]
    width = max(float(np.median(widths)) if widths else 0.0, 0.62 * height)
    digits = _merge_broken([p for g in merged for p in _split(g, height, width, params)], height)
    lines = [_split_wide_in_line(line, height) for line in _group_lines(digits, height, params)]
    return Segmentation(lines, ink, height)


_KERNELS = {r: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)) for r in range(1, 16)}


def normalize_digit(mask: np.ndarray, stroke: float = MNIST_STROKE) -> np.ndarray:
    """Turn one glyph mask into a 28x28 uint8 MNIST-style image (white ink on black).

    The glyph is fitted into an 80x80 box (4x MNIST's 20x20), its stroke is
    dilated or eroded towards MNIST's average width, it is area-downsampled to
    20x20 (which gives MNIST's soft edges) and pasted into 28x28 so that its
    centre of mass sits in the middle.
    """
    h, w = mask.shape
    scale = _WORK / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    pad = _WORK // 6
    canvas: np.ndarray = np.zeros((nh + 2 * pad, nw + 2 * pad), np.uint8)
    cv2.resize(mask, (nw, nh), dst=canvas[pad:pad + nh, pad:pad + nw], interpolation=cv2.INTER_NEAREST)
    area = cv2.countNonZero(canvas)
    if area == 0:
        return np.zeros((28, 28), np.uint8)
    dist = cv2.distanceTransform(canvas, cv2.DIST_L2, 3)
    width = 4.0 * float(dist.sum()) / area
    delta = int(round((stroke - width) / 2))
    if delta > 0:
        canvas = cv2.dilate(canvas, _KERNELS[min(delta, 15)])
    elif delta < 0 and width > 1.6 * stroke:
        eroded = (dist > -delta + 0.5).astype(np.uint8)  # erosion by a disc, read off the distance map
        if cv2.countNonZero(eroded) > 0.3 * area:
            canvas = eroded
    x, y, cw, ch = cv2.boundingRect(canvas)
    s = 20.0 / max(ch, cw)
    th, tw = max(1, int(round(ch * s))), max(1, int(round(cw * s)))
    small = cv2.resize(canvas[y:y + ch, x:x + cw] * np.float32(255), (tw, th), interpolation=cv2.INTER_AREA)
    m = cv2.moments(small)
    if m["m00"] <= 0:
        return np.zeros((28, 28), np.uint8)
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    shift = np.array([[1, 0, 14.0 - cx], [0, 1, 14.0 - cy]], np.float32)
    out = cv2.warpAffine(small, shift, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.clip(out, 0, 255).astype(np.uint8)


def normalize_all(glyphs: list[Glyph]) -> np.ndarray:
    """All glyphs as one (N, 28, 28) uint8 batch for the classifier, each normalised on its own."""
    if not glyphs:
        return np.zeros((0, 28, 28), np.uint8)
    return np.stack([normalize_digit(g.mask) for g in glyphs])


TALL_GLYPH = 1.2  # a glyph taller than this times its line's median height is squashed to that height


def tame_tail(mask: np.ndarray, max_height: float) -> np.ndarray:
    """Squash a glyph mask vertically to at most ``max_height`` rows, keeping its width.

    Handwritten 7s and 9s often have tails well below the line; fitted into
    20x20 on their own they become thin strokes that read as 1.
    """
    h, w = mask.shape
    target = int(round(max_height))
    if target < 1 or h <= target:
        return mask
    return cv2.resize(mask, (w, target), interpolation=cv2.INTER_NEAREST)


def normalize_lines(seg: Segmentation) -> np.ndarray:
    """All glyphs of a segmentation in reading order as one (N, 28, 28) batch, tails tamed per line."""
    out: list[np.ndarray] = []
    for line in seg.lines:
        cap = TALL_GLYPH * float(np.median([g.box.h for g in line]))
        out.extend(normalize_digit(tame_tail(g.mask, cap)) for g in line)
    return np.stack(out) if out else np.zeros((0, 28, 28), np.uint8)


def rotate_frame(frame: np.ndarray, degrees_cw: int) -> np.ndarray:
    """Turn a frame 0, 90, 180 or 270 degrees clockwise."""
    codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    d = degrees_cw % 360
    if d == 0:
        return frame
    if d not in codes:
        raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees, not {degrees_cw}")
    return cv2.rotate(frame, codes[d])
