"""The generated demo clip: sheets of MNIST test digits on paper as a hand-held camera sees them.

Each sheet holds a few lines of MNIST *test* digits written in dark ink on
off-white paper; every frame shows it through a slightly moving perspective,
with uneven light and a soft shadow, lens blur and sensor noise. Everything
is drawn from one seed, so the clip (and its truth, which lets the demo print
its accuracy) is the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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

    def __init__(self, seed: int = 0, size: tuple[int, int] = (640, 480), sheets: int = 3,
                 frames_per_sheet: int = 20, digits: np.ndarray | None = None,
                 labels: np.ndarray | None = None) -> None:
        if digits is None or labels is None:
            digits, labels = _load_test_digits()
        self.seed = seed
        self.size = size
        self.frames_per_sheet = frames_per_sheet
        rng = np.random.default_rng(seed)
        self.sheets = [render_sheet(rng, digits, labels) for _ in range(sheets)]
        self._poses = [self._pose(rng) for _ in range(sheets)]

    def _pose(self, rng: np.random.Generator) -> np.ndarray:
        """Where the page corners land in the frame (a gentle perspective)."""
        fw, fh = self.size
        pw = fw * rng.uniform(0.82, 0.92)
        ph = pw * PAPER[1] / PAPER[0]
        cx, cy = fw / 2 + rng.uniform(-15, 15), fh / 2 + rng.uniform(-10, 10)
        quad = np.array([[cx - pw / 2, cy - ph / 2], [cx + pw / 2, cy - ph / 2],
                         [cx + pw / 2, cy + ph / 2], [cx - pw / 2, cy + ph / 2]], np.float32)
        quad += rng.uniform(-0.04, 0.04, (4, 2)).astype(np.float32) * np.float32([pw, ph])
        return quad

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
        src = np.float32([[0, 0], [PAPER[0], 0], [PAPER[0], PAPER[1]], [0, PAPER[1]]])
        m = cv2.getPerspectiveTransform(src, quad)
        table = np.empty((fh, fw, 3), np.uint8)
        table[:] = (70, 95, 120)
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
        out = frame.astype(np.float32) * light[..., None]
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.0))
        out += rng.normal(0, 4.0, out.shape).astype(np.float32)
        return np.clip(out, 0, 255).astype(np.uint8)
