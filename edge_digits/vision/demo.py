"""The generated demo clip: sheets of MNIST test digits on a cluttered desk as a hand-held camera sees them.

Each sheet holds a few lines of MNIST *test* digits written in dark ink on
off-white paper, lying on a desk among clutter (wood grain, cloth, a
keyboard, printed matter, often a second sheet without digits); the last
sheet is blank, so the demo counts phantom digits too. Every frame shows
the desk through a slightly moving perspective, with uneven light and a soft
shadow, lens blur and sensor noise. Everything is drawn from one seed, so the
clip (and its truth, which lets the demo print its accuracy) is the same on
every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_digits.vision import clutter

PAPER = (1000, 720)  # width, height of a sheet in paper pixels


@dataclass
class DemoSheet:
    """One page: its paper image (BGR) and the digit strings on it, top to bottom."""

    paper: np.ndarray
    lines: list[str]


def _load_test_digits() -> tuple[np.ndarray, np.ndarray]:
    from edge_digits.data import load_mnist

    _, _, x_test, y_test = load_mnist()
    return x_test, y_test


def render_sheet(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray,
                 lines: int = 3, per_line: tuple[int, int] = (5, 8)) -> DemoSheet:
    """Write ``lines`` lines of random test digits on a sheet of paper."""
    w, h = PAPER
    tint = rng.uniform(0.9, 1.0, 3)
    paper = np.empty((h, w, 3), np.float32)
    paper[:] = 240 * tint
    paper += rng.normal(0, 2.0, paper.shape).astype(np.float32)
    ink = np.array([rng.uniform(20, 60), rng.uniform(15, 40), rng.uniform(10, 30)], np.float32)
    texts = []
    margin_top = 110
    pitch = (h - 2 * margin_top) / max(1, lines - 1) if lines > 1 else 0
    for li in range(lines):
        count = int(rng.integers(per_line[0], per_line[1] + 1))
        size = int(rng.uniform(80, 104))
        x = int(rng.uniform(70, 140))
        base_y = int(margin_top + li * pitch)
        text = ""
        for _ in range(count):
            k = int(rng.integers(len(digits)))
            glyph = cv2.resize(digits[k], (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
            y = base_y - size // 2 + int(rng.integers(-4, 5))
            if x + size >= w - 20:
                break
            alpha = np.clip(glyph, 0, 1)[..., None]
            region = paper[y:y + size, x:x + size]
            paper[y:y + size, x:x + size] = region * (1 - alpha) + ink * alpha
            text += str(int(labels[k]))
            x += int(size * rng.uniform(0.8, 1.05))
        texts.append(text)
    return DemoSheet(np.clip(paper, 0, 255).astype(np.uint8), texts)


class DemoClip:
    """A deterministic clip: ``frame(i)`` renders frame i, ``truth(i)`` its digit strings."""

    def __init__(self, seed: int = 0, size: tuple[int, int] = (640, 480), sheets: int = 4,
                 frames_per_sheet: int = 15, digits: np.ndarray | None = None,
                 labels: np.ndarray | None = None, blank_last: bool = True) -> None:
        if digits is None or labels is None:
            digits, labels = _load_test_digits()
        self.seed = seed
        self.size = size
        self.frames_per_sheet = frames_per_sheet
        rng = np.random.default_rng(seed)
        written = sheets - 1 if blank_last and sheets > 1 else sheets
        self.sheets = [render_sheet(rng, digits, labels) for _ in range(written)]
        if written < sheets:
            self.sheets.append(DemoSheet(clutter.blank_sheet(rng, PAPER), []))
        self._poses = [self._pose(rng) for _ in range(sheets)]
        self._desks = [self._desk(rng) for _ in range(sheets)]

    def _desk(self, rng: np.random.Generator) -> np.ndarray:
        """The clutter a sheet lies on: a desk, and on every other one a second sheet of printed text."""
        fw, fh = self.size
        desk = clutter.desk(rng, (fh, fw))
        if rng.random() < 0.5:
            other = clutter.printed_text(rng, (PAPER[1] // 2, PAPER[0] // 2), paper=(232, 232, 228))
            quad = self._pose(rng, area=(0.15, 0.25))
            oh, ow = other.shape[:2]
            m = cv2.getPerspectiveTransform(np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], np.float32), quad)
            cv2.warpPerspective(other, m, (fw, fh), dst=desk, flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_TRANSPARENT)
        return desk

    def _pose(self, rng: np.random.Generator, area: tuple[float, float] = (0.3, 0.5)) -> np.ndarray:
        """Where the page corners land in the frame: a third to a half of it, a gentle perspective."""

        return clutter.place(rng, PAPER, self.size, area, tilt_deg=20.0)

    def __len__(self) -> int:
        return len(self.sheets) * self.frames_per_sheet

    def truth(self, index: int) -> list[str]:
        return self.sheets[(index // self.frames_per_sheet) % len(self.sheets)].lines

    def frame(self, index: int) -> np.ndarray:
        """Render frame ``index`` (BGR uint8): perspective, light, shadow, blur and noise from the seed."""
        sheet_i = (index // self.frames_per_sheet) % len(self.sheets)
        rng = np.random.default_rng([self.seed, index])
        fw, fh = self.size
        quad = self._poses[sheet_i] + rng.normal(0, 1.5, (4, 2)).astype(np.float32)
        src = np.array([[0, 0], [PAPER[0], 0], [PAPER[0], PAPER[1]], [0, PAPER[1]]], np.float32)
        m = cv2.getPerspectiveTransform(src, quad)
        table = self._desks[sheet_i].copy()
        frame = cv2.warpPerspective(self.sheets[sheet_i].paper, m, (fw, fh), dst=table,
                                    flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)
        step = 4  # light varies slowly: compute it on a coarse grid, then scale up
        yy, xx = (np.mgrid[0:fh:step, 0:fw:step].astype(np.float32) + step / 2)
        lx, ly = rng.uniform(0, fw), rng.uniform(0, fh)
        light = 1.0 - 0.35 * np.hypot(xx - lx, yy - ly) / np.hypot(fw, fh)
        angle = rng.uniform(0, np.pi)
        band = (xx * np.cos(angle) + yy * np.sin(angle)) - rng.uniform(0.3, 0.7) * (fw + fh) / 2
        light *= 1.0 - 0.25 / (1.0 + np.exp(band / 25.0))
        light = cv2.resize(light, (fw, fh), interpolation=cv2.INTER_LINEAR)
        out: np.ndarray = frame.astype(np.float32) * light[..., None]
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.0))
        out += rng.normal(0, 4.0, out.shape).astype(np.float32)
        return np.clip(out, 0, 255).astype(np.uint8)
