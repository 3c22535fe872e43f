"""Camera scenes for measuring the reader: pages composed into real clutter, and the shared scene frames.

``compose_set`` places sheets with known digits (the shared photos turned
upright, sheets of MNIST test digits, blank sheets) into backgrounds at a
perspective, and writes the frames with a ``truth.json`` that
``edge-digits eval-photos`` scores (digit accuracy, exact lines, phantom
digits on blank sheets, page corners). The backgrounds are the shared
scene frames themselves, so what surrounds each page is a real desk, a
keyboard and other printed sheets. ``evaluate_pages`` checks page finding on
frames that come with the page as a person cut it out (``sceneNN_page.png``):
the crop is located in the frame by SIFT features and a RANSAC homography,
and the found outline must match its corners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_digits.fileio import atomic_write_bytes, atomic_write_json, shared_data_dir
from edge_digits.vision import clutter
from edge_digits.vision.clutter import place
from edge_digits.vision.page import Quad, corner_error, find_page, order_corners
from edge_digits.vision.reader import FrameReader
from edge_digits.vision.segment import rotate_frame

CORNER_GOAL = 0.03   # a found corner within 3% of the page diagonal of the true one


class SceneError(RuntimeError):
    """A scene folder without frames, crops or truth that the evaluation needs."""


def default_scenes_dir() -> Path:
    """``$EDGE_DIGITS_SCENES``, else ``shared/data/scenes`` beside the project folder."""
    return shared_data_dir("scenes", "EDGE_DIGITS_SCENES")


def camera_look(rng: np.random.Generator, frame: np.ndarray) -> np.ndarray:
    """Uneven light, a little blur and sensor noise over a composed frame."""
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h:4, 0:w:4].astype(np.float32)
    lx, ly = rng.uniform(0, w), rng.uniform(0, h)
    light = 1.0 - 0.3 * np.hypot(xx - lx, yy - ly) / np.hypot(w, h)
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    out: np.ndarray = frame.astype(np.float32) * light[..., None]
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 0.9))
    out += rng.normal(0, 3.0, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def compose(rng: np.random.Generator, page: np.ndarray, background: np.ndarray,
            area: tuple[float, float] = (0.25, 0.6), tilt_deg: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """A page warped into a background at a random pose; returns the frame and the page corners in it
    (the page's own top-left first)."""
    fh, fw = background.shape[:2]
    ph, pw = page.shape[:2]
    quad = place(rng, (pw, ph), (fw, fh), area, tilt_deg)
    m = cv2.getPerspectiveTransform(np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32), quad)
    frame = background.copy()
    cv2.warpPerspective(page, m, (fw, fh), dst=frame, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)
    return camera_look(rng, frame), quad


def remove_page(scene: np.ndarray, quad: Quad) -> np.ndarray:
    """The scene with its own sheet painted over from what surrounds it (inpainted at a quarter size,
    with sensor-like grain), so only the desk, keyboard and cloth around it remain."""
    h, w = scene.shape[:2]
    small = cv2.resize(scene, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    mask = np.zeros(small.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(quad.corners / 4).astype(np.int32), 255)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    filled = cv2.resize(cv2.inpaint(small, mask, 5, cv2.INPAINT_TELEA), (w, h), interpolation=cv2.INTER_CUBIC)
    big_mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0
    grain = np.random.default_rng(0).normal(0, 4, scene.shape).astype(np.float32)
    out = scene.copy()
    out[big_mask] = np.clip(filled.astype(np.float32) + grain, 0, 255).astype(np.uint8)[big_mask]
    return out


def scene_backgrounds(folder: Path, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """The surroundings of the shared scenes' sheets as landscape backgrounds of ``size`` (each sheet
    painted over, portrait frames turned a quarter)."""
    out = []
    for path in sorted(Path(folder).glob("scene[0-9][0-9].png")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SceneError(f"cannot read scene {path}")
        crop = cv2.imread(str(path.with_name(f"{path.stem}_page.png")), cv2.IMREAD_COLOR)
        if crop is not None:
            image = remove_page(image, crop_corners(image, crop)[0])
        if image.shape[0] > image.shape[1]:
            image = rotate_frame(image, 90)
        out.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    if not out:
        raise SceneError(f"no sceneNN.png frames in {folder} (pass --backgrounds FOLDER or set EDGE_DIGITS_SCENES)")
    return out


def _mnist_sheets(rng: np.random.Generator, count: int) -> list[tuple[np.ndarray, list[str]]]:
    from edge_digits.vision.demo import _load_test_digits, render_sheet

    digits, labels = _load_test_digits()
    return [(s.paper, s.lines) for s in (render_sheet(rng, digits, labels) for _ in range(count))]


def _photo_pages(folder: Path) -> list[tuple[np.ndarray, list[str]]]:
    from edge_digits.vision.photos import load_truth

    pages = []
    for it in load_truth(folder):
        image = cv2.imread(str(Path(folder) / str(it["image"])), cv2.IMREAD_COLOR)
        if image is None:
            raise SceneError(f"cannot read photo {it['image']} in {folder}")
        pages.append((rotate_frame(image, int(it.get("rotate_cw", 0))), [str(s) for s in it["lines"]]))
    return pages


def compose_set(out: Path, kind: str, count: int, seed: int = 0, scenes: Path | None = None,
                photos: Path | None = None, tilt_deg: float = 30.0, size: tuple[int, int] = (640, 480)) -> Path:
    """Write ``count`` composed frames and their ``truth.json`` into ``out``.

    ``kind`` is ``photos`` (the shared photos, each used in turn), ``mnist``
    (sheets of MNIST test digits) or ``blank`` (empty sheets: every digit
    read is a phantom). Backgrounds are the shared scenes, or generated desks
    where ``scenes`` is ``"generated"``; frames are ``size`` (width, height).
    """
    rng = np.random.default_rng(seed)
    if scenes is not None and str(scenes) == "generated":
        backgrounds = [clutter.desk(rng, (size[1], size[0])) for _ in range(8)]
    else:
        backgrounds = scene_backgrounds(scenes or default_scenes_dir(), size)
    if kind == "photos":
        from edge_digits.vision.photos import default_photos_dir

        pages = _photo_pages(photos or default_photos_dir())
    elif kind == "mnist":
        pages = _mnist_sheets(rng, count)
    elif kind == "blank":
        pages = [(clutter.blank_sheet(rng, (720, 1000)), []) for _ in range(count)]
    else:
        raise SceneError(f"kind must be photos, mnist or blank, not {kind!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        page, lines = pages[i % len(pages)]
        frame, quad = compose(rng, page, backgrounds[int(rng.integers(len(backgrounds)))], tilt_deg=tilt_deg)
        name = f"{kind}{i:03d}.png"
        ok, png = cv2.imencode(".png", frame)
        if not ok:
            raise SceneError(f"cannot encode {name}")
        atomic_write_bytes(out / name, png.tobytes())
        items.append({"image": name, "rotate_cw": 0, "lines": lines, "page": quad.round(1).tolist()})
    atomic_write_json(out / "truth.json", {
        "description": f"{count} composed {size[0]}x{size[1]} frames ({kind} pages into scene backgrounds, "
                       f"seed {seed}); 'page' are "
                       "the page corners in frame pixels, the page's own top-left first.",
        "items": items})
    return out


def crop_corners(scene: np.ndarray, crop: np.ndarray) -> tuple[Quad, float]:
    """Where a person's flattened crop of the page lies in the scene: corners found by SIFT matches and a
    RANSAC homography, and the crop's correlation with the scene warped back through it."""
    sift = cv2.SIFT.create(4000)
    g_scene = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    g_crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    ks, ds = sift.detectAndCompute(g_scene, None)
    kc, dc = sift.detectAndCompute(g_crop, None)
    if ds is None or dc is None:
        raise SceneError("no features to match the crop with its scene")
    pairs = cv2.BFMatcher().knnMatch(dc, ds, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.75 * p[1].distance]
    if len(good) < 8:
        raise SceneError(f"only {len(good)} feature matches between the crop and its scene")
    src = np.array([kc[g.queryIdx].pt for g in good], np.float32)
    dst = np.array([ks[g.trainIdx].pt for g in good], np.float32)
    hom, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if hom is None:
        raise SceneError("no homography between the crop and its scene")
    h, w = g_crop.shape
    corners = cv2.perspectiveTransform(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)[None], hom)[0]
    back = cv2.warpPerspective(g_scene, np.linalg.inv(hom), (w, h))
    ncc = float(np.corrcoef(back.ravel().astype(np.float32), g_crop.ravel().astype(np.float32))[0, 1])
    return Quad(corners.astype(np.float32)), ncc


@dataclass
class PageCheck:
    """One scene: the page corners found and true, their error as a share of the diagonal."""

    image: str
    found: list[list[float]] | None
    truth: list[list[float]]
    error: float | None
    truth_correlation: float
    digits_read: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is not None and self.error <= CORNER_GOAL


@dataclass
class PageEvaluation:
    folder: str
    scenes: list[PageCheck] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return sum(s.ok for s in self.scenes)

    @property
    def digits_per_frame(self) -> float | None:
        read = [s.digits_read for s in self.scenes if s.digits_read is not None]
        return sum(read) / len(read) if read else None

    def as_dict(self) -> dict[str, object]:
        per_frame = self.digits_per_frame
        return {"folder": self.folder, "scenes": len(self.scenes), "matched": self.matched,
                "goal": CORNER_GOAL, "digits_per_frame": None if per_frame is None else round(per_frame, 2),
                "items": [{"image": s.image, "found": s.found, "truth": s.truth,
                           "error": None if s.error is None else round(s.error, 4),
                           "truth_correlation": round(s.truth_correlation, 3), "ok": s.ok,
                           "digits_read": s.digits_read} for s in self.scenes]}


def evaluate_pages(folder: Path | None = None, reader: FrameReader | None = None) -> PageEvaluation:
    """Find the page in every ``sceneNN.png`` that has a ``sceneNN_page.png`` and compare the corners; with
    a ``reader``, also count the digits it reads in each whole frame (as ``run --images`` would)."""
    folder = Path(folder) if folder is not None else default_scenes_dir()
    result = PageEvaluation(str(folder))
    frames = sorted(p for p in folder.glob("*.png") if (folder / f"{p.stem}_page.png").is_file())
    if not frames:
        raise SceneError(f"no NAME.png with NAME_page.png in {folder} (pass the scene folder or set "
                         "EDGE_DIGITS_SCENES)")
    for path in frames:
        scene = cv2.imread(str(path), cv2.IMREAD_COLOR)
        crop = cv2.imread(str(folder / f"{path.stem}_page.png"), cv2.IMREAD_COLOR)
        if scene is None or crop is None:
            raise SceneError(f"cannot read {path} or its page crop")
        truth, ncc = crop_corners(scene, crop)
        page = find_page(scene)
        found = page.quad if page is not None and not page.whole_frame else None
        digits = None
        if reader is not None:
            reader.reset()
            digits = len(reader.read(scene).digits)
        result.scenes.append(PageCheck(path.name, found.as_list() if found is not None else None,
                                       Quad(order_corners(truth.corners)).as_list(),
                                       corner_error(found, truth) if found is not None else None, ncc, digits))
    return result
