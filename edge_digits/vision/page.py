"""Find the sheet of paper in a camera frame, flatten it, and follow it from frame to frame.

A camera on a desk sees a page among other things (wood grain, a keyboard,
printed matter, cloth); reading only inside the page removes most phantom
digits before any classifier runs. The page is found on a small copy of the
frame: bright or uniformly coloured regions are closed over their writing,
each region's outline is fitted with four straight sides (a corner cut off
by the frame or hidden under a hand is recovered where two sides meet), and
the candidates are scored on how well they fill their quadrilateral and how
much brighter they are than what surrounds them. ``PageTracker`` re-uses the
last quadrilateral while its sides still lie on edges of the new frame, so
detection costs little per frame on a live source.

Only numpy and OpenCV are used, so this runs on a Pi without TensorFlow.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

DETECT_SIDE = 256     # pages are found on a copy whose longer side has this many pixels
PAGE_SIDE = 640       # a flattened page's longer side (pixels), enough for digits of 2% of the page


class PageError(ValueError):
    """A ``--page`` value that is not ``auto``, ``off`` or eight numbers."""


@dataclass(frozen=True)
class Quad:
    """A page outline in frame pixels: four corners clockwise from the top left (float32, shape (4, 2))."""

    corners: np.ndarray

    def as_list(self) -> list[list[float]]:
        return [[round(float(x), 1), round(float(y), 1)] for x, y in self.corners]

    @property
    def area(self) -> float:
        return float(abs(cv2.contourArea(self.corners.astype(np.float32))))

    def scaled(self, s: float) -> Quad:
        return Quad((self.corners * np.float32(s)).astype(np.float32))


@dataclass(frozen=True)
class Page:
    """A found page: its outline, how sure the finder is (0-1), and whether it is the whole frame."""

    quad: Quad
    score: float
    whole_frame: bool = False


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left (clockwise on screen).

    >>> order_corners(np.float32([[10, 0], [0, 0], [0, 10], [10, 10]])).tolist()
    [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]
    """
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]                      # clockwise on screen, starting anywhere
    start = int(np.argmin(pts.sum(axis=1)))            # the top-left has the smallest x + y
    return np.roll(pts, -start, axis=0)


def parse_page(value: str) -> str | Quad:
    """``auto``, ``off`` or ``x0,y0,x1,y1,x2,y2,x3,y3`` (a fixed mount's corners in frame pixels).

    >>> parse_page("auto")
    'auto'
    >>> parse_page("0,0,100,0,100,50,0,50").as_list()[2]
    [100.0, 50.0]
    """
    v = value.strip().lower()
    if v in ("auto", "off"):
        return v
    try:
        nums = [float(p) for p in v.split(",")]
    except ValueError:
        nums = []
    if len(nums) != 8:
        raise PageError(f"--page takes auto, off or eight numbers x0,y0,...,x3,y3 (the page corners in frame "
                        f"pixels), not {value!r}")
    quad = Quad(order_corners(np.array(nums, np.float32).reshape(4, 2)))
    if quad.area < 64:
        raise PageError(f"--page corners {value!r} enclose almost no area")
    return quad


def page_size(quad: Quad, longest: int = PAGE_SIDE) -> tuple[int, int]:
    """Width and height of the flattened page: the quad's mean side lengths, scaled to ``longest``."""
    c = quad.corners
    w = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2
    h = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2
    s = longest / cast("np.floating[Any] | float", max(w, h, 1.0))   # max() of numpy and Python floats
    return max(8, int(round(w * s))), max(8, int(round(h * s)))


def rectify(frame: np.ndarray, quad: Quad, longest: int = PAGE_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The page flattened to an upright rectangle, and the homography from page pixels to frame pixels.

    Parts of the page outside the frame (a corner cut off) come out white.
    """
    w, h = page_size(quad, longest)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    to_page = cv2.getPerspectiveTransform(quad.corners.astype(np.float32), dst)
    border = 255 if frame.ndim == 2 else (255,) * frame.shape[2]
    page = cv2.warpPerspective(frame, to_page, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=border)
    return page, np.linalg.inv(to_page)


def map_points(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) through a homography."""
    if len(points) == 0:
        return np.zeros((0, 2), np.float32)
    return cv2.perspectiveTransform(np.asarray(points, np.float32).reshape(-1, 1, 2), h).reshape(-1, 2)


Line = tuple[float, float, float]


def _line_through(p: np.ndarray, q: np.ndarray) -> Line:
    """The line a*x + b*y + c = 0 through two points (homogeneous cross product, in plain floats)."""
    px, py, qx, qy = float(p[0]), float(p[1]), float(q[0]), float(q[1])
    return (py - qy, qx - px, px * qy - py * qx)


def _intersect(l1: Line, l2: Line) -> np.ndarray | None:
    a1, b1, c1 = l1
    a2, b2, c2 = l2
    d = a1 * b2 - a2 * b1
    if abs(d) < 1e-9:
        return None
    return np.array([(b1 * c2 - b2 * c1) / d, (a2 * c1 - a1 * c2) / d])


def _fit_side(points: np.ndarray, p: np.ndarray, q: np.ndarray, tol: float) -> Line:
    """The line through the outline points within ``tol`` of side p-q (least squares), else the side itself."""
    d = q - p
    length = float(np.hypot(*d))
    if length < 1:
        return _line_through(p, q)
    n = np.array([-d[1], d[0]]) / length
    rel = points - p
    along = rel @ d / length ** 2
    near = points[(np.abs(rel @ n) < tol) & (along > 0.1) & (along < 0.9)]
    if len(near) < 5:
        return _line_through(p, q)
    vx, vy, x0, y0 = cv2.fitLine(near.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
    return _line_through(np.array([x0, y0]), np.array([x0 + vx, y0 + vy]))


def _on_border(p: np.ndarray, q: np.ndarray, w: int, h: int, tol: float = 2.5) -> bool:
    """Whether segment p-q runs along the frame's edge (where the page is cut off, not its own side)."""
    return bool((p[0] < tol and q[0] < tol) or (p[1] < tol and q[1] < tol)
                or (p[0] > w - 1 - tol and q[0] > w - 1 - tol) or (p[1] > h - 1 - tol and q[1] > h - 1 - tol))


def _region_iou(region: np.ndarray, quad: np.ndarray) -> float:
    """Overlap of a region mask (uint8 0/1) with a quadrilateral, clipped to the frame: |R & Q| / |R | Q|."""
    q = np.zeros_like(region)
    cv2.fillConvexPoly(q, np.round(quad).astype(np.int32), 1)
    inter = cv2.countNonZero(q & region)
    union = cv2.countNonZero(q | region)
    return inter / union if union else 0.0


def _region_fill(region: np.ndarray, quad: np.ndarray) -> float:
    """Share of a quadrilateral (clipped to the frame) that a region mask covers."""
    q = np.zeros_like(region)
    cv2.fillConvexPoly(q, np.round(quad).astype(np.int32), 1)
    area = cv2.countNonZero(q)
    return cv2.countNonZero(q & region) / area if area else 0.0


def _quad_from_sides(sides: list[tuple[int, np.ndarray, np.ndarray]], shape: tuple[int, int]) -> np.ndarray | None:
    """The quadrilateral bounded by four sides taken in order around an outline, if it is a plausible page."""
    h, w = shape
    lines = [_line_through(s[1], s[2]) for s in sides]
    corners = [_intersect(lines[i], lines[(i + 1) % 4]) for i in range(4)]
    if any(c is None for c in corners):
        return None
    quad = np.array(corners, np.float32)
    margin = 0.35 * max(h, w)
    if (quad < -margin).any() or (quad[:, 0] > w + margin).any() or (quad[:, 1] > h + margin).any():
        return None
    if not cv2.isContourConvex(quad.reshape(-1, 1, 2)):
        return None
    return quad


def side_steps(light: np.ndarray, quad: np.ndarray, samples: int = 12) -> np.ndarray:
    """Per side, the mean brightness step from just outside to just inside (points outside the frame skipped;
    a side wholly outside the frame counts as a clear step, since nothing there holds against it)."""
    h, w = light.shape
    q = np.asarray(quad, np.float32)
    d = np.roll(q, -1, axis=0) - q                                   # (4, 2) side vectors
    n = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
    inward = np.sign(np.sum((q.mean(axis=0) - q) * n, axis=1))[:, None]
    n = n * np.where(inward == 0, 1, inward)
    t = np.linspace(0.1, 0.9, samples, dtype=np.float32)[None, :, None]
    pts = q[:, None, :] + t * d[:, None, :]                          # (4, samples, 2)
    offset = max(2.0, 0.012 * max(h, w))
    a, b = pts + offset * n[:, None, :], pts - offset * n[:, None, :]
    ok = ((a >= 0) & (a < [w, h]) & (b >= 0) & (b < [w, h])).all(axis=2)
    ai, bi = np.clip(a, 0, [w - 1, h - 1]).astype(np.int32), np.clip(b, 0, [w - 1, h - 1]).astype(np.int32)
    diff = light[ai[..., 1], ai[..., 0]].astype(np.float32) - light[bi[..., 1], bi[..., 0]].astype(np.float32)
    counted = ok.sum(axis=1)
    return np.where(counted > 0, (diff * ok).sum(axis=1) / np.maximum(counted, 1), 40.0).astype(np.float32)


def quad_merit(region: np.ndarray, quad: np.ndarray, light: np.ndarray) -> float:
    """How well a quadrilateral outlines a page in a region mask, 0-1: the region fills it, its sides step
    up into the page (the weakest side may border another bright thing, so it counts less), and the
    region does not spread far beyond it."""
    steps = np.sort(side_steps(light, quad))
    fill = _region_fill(region, quad)
    return float(fill ** 2 * np.clip(steps[1:].mean() / 30.0, 0.05, 1.0) * np.clip(steps[0] / 15.0, 0.3, 1.0)
                 * np.sqrt(_region_iou(region, quad)))


def fit_quad(contour: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Four corners of a region's outline and their :func:`quad_merit`.

    The outline is simplified to a polygon; of its longest sides
    that do not run along the frame's edge (where a page is cut off), the four
    with the best merit are the page's sides (a bright patch that touches the
    page, or a light beam across the desk, does not pull a side askew). Each
    side is then refined by a line fit to the outline points near it, and
    corners are where neighbouring sides meet, also outside the frame.
    """
    shape = light.shape
    h, w = shape
    outline = contour.reshape(-1, 1, 2).astype(np.float32)
    poly = cv2.approxPolyDP(outline, 0.01 * cv2.arcLength(outline, True), True).reshape(-1, 2)
    sides = [(i, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]
    sides = [s for s in sides if not _on_border(s[1], s[2], w, h)]
    if len(sides) < 4:
        return None
    sides = sorted(sorted(sides, key=lambda s: -float(np.hypot(*(s[2] - s[1]))))[:7], key=lambda s: s[0])
    region = np.zeros((h, w), np.uint8)
    cv2.drawContours(region, [contour], -1, 1, cv2.FILLED)
    best: tuple[float, list[tuple[int, np.ndarray, np.ndarray]]] | None = None
    for combo in itertools.combinations(sides, 4):
        quad = _quad_from_sides(list(combo), shape)
        if quad is None:
            continue
        merit = quad_merit(region, quad, light)
        if best is None or merit > best[0]:
            best = (merit, list(combo))
    if best is None:
        return None
    pts = contour.reshape(-1, 2).astype(np.float32)
    tol = 0.02 * max(h, w)
    lines = [_fit_side(pts, s[1], s[2], tol) for s in best[1]]
    corners = [_intersect(lines[i], lines[(i + 1) % 4]) for i in range(4)]
    if any(c is None for c in corners):
        return None
    quad = _quad_from_sides(best[1], shape)
    assert quad is not None
    refined = np.array(corners, np.float32)
    merit = best[0]
    if cv2.isContourConvex(refined.reshape(-1, 1, 2)):
        refined_merit = quad_merit(region, refined, light)
        if refined_merit >= merit - 0.01:
            quad, merit = refined, refined_merit
    return order_corners(quad), merit


def _masks(small: np.ndarray) -> list[np.ndarray]:
    """Candidate paper masks: bright against the frame (three levels around Otsu's), low-saturation bright,
    and the bright ones again where the frame is also smooth (paper beside a keyboard or printed matter)."""
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB) if small.ndim == 3 else None
    light = lab[:, :, 0] if lab is not None else small
    light = cv2.GaussianBlur(light, (5, 5), 0)
    otsu, _ = cv2.threshold(light, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    out = [(light > t).astype(np.uint8) for t in (otsu - 20, otsu, otsu + 20) if 20 < t < 245]
    if lab is not None:
        chroma = np.hypot(lab[:, :, 1].astype(np.float32) - 128, lab[:, :, 2].astype(np.float32) - 128)
        # a sticky note or coloured paper: one uniform colour, as bright as paper in its own hue
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        value = cv2.GaussianBlur(hsv[:, :, 2], (5, 5), 0)
        v_otsu, _ = cv2.threshold(value, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        out.append(((value > v_otsu) & (chroma < 60)).astype(np.uint8))
    # paper is smooth between its strokes; a keyboard, printed matter and wood grain are not
    lap = np.abs(cv2.Laplacian(cv2.GaussianBlur(light, (3, 3), 0), cv2.CV_32F))
    smooth = cast("NDArray[np.uint8]",
                  cv2.dilate((cv2.blur(lap, (7, 7)) < 2.5).astype(np.uint8), np.ones((7, 7), np.uint8)))
    out += [m & smooth for m in out[:3]]
    return out


def _regions(mask: np.ndarray) -> list[np.ndarray]:
    """Outlines of the mask's large regions after closing over the writing and opening off thin bridges."""
    h, w = mask.shape
    k = max(3, (min(h, w) // 40) | 1)
    closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    opened = cv2.morphologyEx(closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    contours, _ = cv2.findContours(opened, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [c for c in contours if cv2.contourArea(c) > 0.04 * h * w]


def _score(quad: np.ndarray, merit: float, light: np.ndarray) -> float:
    """How page-like a fitted region is: its outline's merit, and its size (small pages count less)."""
    h, w = light.shape
    frame_quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    inside_area, _ = cv2.intersectConvexConvex(quad, frame_quad)
    if inside_area < 0.04 * h * w:
        return 0.0
    return float(merit * np.sqrt(min(1.0, inside_area / (0.5 * h * w))))


def _all_paper(light: np.ndarray) -> bool:
    """Whether a frame with no page outline in it is all paper: bright nearly everywhere (shadows
    allowed), and smooth between the strokes, as a close-up of a sheet is and a desk mostly is not."""
    blurred = cv2.GaussianBlur(light, (0, 0), 3).astype(np.float32)
    top = float(np.percentile(blurred, 95))
    bright = float(np.mean(blurred >= 0.55 * top))
    texture = float(np.median(np.abs(cv2.Laplacian(light, cv2.CV_32F))))
    return top >= 200 and bright >= 0.95 and texture <= 3.0


def find_page(frame: np.ndarray, min_score: float = 0.25) -> Page | None:
    """The most page-like quadrilateral in a frame, in frame pixels; None when nothing looks like a page.

    A frame with no page outline that is paper everywhere (a cropped photo
    of a page) is returned as the whole frame.
    """
    fh, fw = frame.shape[:2]
    s = DETECT_SIDE / max(fh, fw)
    small = cv2.resize(frame, (max(8, round(fw * s)), max(8, round(fh * s))), interpolation=cv2.INTER_AREA)
    light = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    h, w = light.shape
    if _all_paper(light):
        return Page(Quad(np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], np.float32)), 0.5, whole_frame=True)
    best: tuple[float, np.ndarray] | None = None
    for mask in _masks(small):
        for contour in _regions(mask):
            fitted = fit_quad(contour, light)
            if fitted is None:
                continue
            quad, merit = fitted
            score = _score(quad, merit, light)
            if best is None or score > best[0]:
                best = (score, quad)
    if best is None or best[0] < min_score:
        return None
    return Page(Quad((best[1] / np.float32(s)).astype(np.float32)), best[0])


def edge_support(grey: np.ndarray, quad: Quad, samples: int = 24) -> float:
    """Share of points along the quad's sides (inside the frame) where the brightness steps up into the page.

    A tracked page whose outline no longer lies on such a step has moved.
    """
    h, w = grey.shape
    c = quad.corners
    centre = c.mean(axis=0)
    hits = total = 0
    offset = max(2.0, 0.012 * max(h, w))
    for i in range(4):
        p, q = c[i], c[(i + 1) % 4]
        for t in np.linspace(0.1, 0.9, samples // 4):
            pt = p + t * (q - p)
            d = q - p
            n = np.array([-d[1], d[0]], np.float32)
            n /= max(float(np.linalg.norm(n)), 1e-6)
            if np.dot(centre - pt, n) < 0:
                n = -n
            a, b = pt + offset * n, pt - offset * n
            if not (0 <= a[0] < w and 0 <= a[1] < h and 0 <= b[0] < w and 0 <= b[1] < h):
                continue
            total += 1
            if int(grey[int(a[1]), int(a[0])]) - int(grey[int(b[1]), int(b[0])]) > 12:
                hits += 1
    return hits / total if total else 0.0


class PageTracker:
    """The page of each frame of a live source: the last outline while it still fits, else a new detection.

    A fixed outline (``--page x0,y0,...``) is used as is; ``off`` reads the
    whole frame. ``detections`` counts the full searches, so a run can say how
    much tracking saved.
    """

    def __init__(self, mode: str | Quad = "auto", min_support: float = 0.7, recheck: int = 30) -> None:
        self.mode = mode
        self.min_support = min_support
        self.recheck = recheck
        self.last: Page | None = None
        self.detections = 0
        self.moved = False   # the last update found the page somewhere else (a new view: readings start over)
        self._since = 0

    def reset(self) -> None:
        """Forget the tracked page (a new file or a new scene)."""
        self.last, self._since = None, 0

    def update(self, frame: np.ndarray) -> Page | None:
        """The page in this frame, or None for the whole frame (``off``, or no page found)."""
        if self.mode == "off":
            return None
        if isinstance(self.mode, Quad):
            return Page(self.mode, 1.0)
        self.moved = False
        if self.last is not None and self._since < self.recheck:
            self._since += 1
            if not self.last.whole_frame and self._fits(frame, self.last.quad):
                return self.last
        self.detections += 1
        self._since = 0
        before, self.last = self.last, find_page(frame)
        self.moved = before is not None and (self.last is None or before.whole_frame != self.last.whole_frame
                                             or corner_error(self.last.quad, before.quad) > 0.05)
        return self.last

    def _fits(self, frame: np.ndarray, quad: Quad) -> bool:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        return edge_support(grey, quad) >= self.min_support


def corner_error(found: Quad, truth: Quad) -> float:
    """Largest corner distance between two outlines over the four ways to pair their corners in order,
    as a share of the truth's diagonal (a page seen sideways is still the same page).

    >>> q = Quad(np.float32([[0, 0], [30, 0], [30, 40], [0, 40]]))
    >>> corner_error(q, q)
    0.0
    """
    diag = float(np.hypot(*(truth.corners[2] - truth.corners[0])))
    errs = [float(np.max(np.linalg.norm(np.roll(found.corners, k, axis=0) - truth.corners, axis=1)))
            for k in range(4)]
    return min(errs) / max(diag, 1e-6)
