"""Settled readings: a line's string counts once it was read in ``k`` of the line's last ``n`` frames.

A camera sees a page frame after frame; one frame's misreading (a blur, a
hand, a glare) should not reach the printed reading. Lines are followed by
their position on the page from frame to frame, each with its recent
strings; all tracks reset when the page tracker sees a new page.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_digits.vision.reader import FrameReading

STABLE_K, STABLE_N = 3, 5   # a line settles on a string read in 3 of its last 5 frames (docs/benchmarks.md)


@dataclass
class _Track:
    """One line of writing followed across frames: where it is, what it read lately, what it settled on."""

    cy: float
    x: float
    height: float
    recent: deque[str | None]
    settled: str | None = None


class StableLines:
    """The settled reading of a live source, line by line.

    Lines are followed across frames by where they are (centre height and
    left end, in frame pixels). A line's reading settles on a string once
    that string was read in at least ``k`` of its last ``n`` frames, and keeps
    it until another string does (so one misread frame changes nothing); a
    line not seen in ``n`` frames is forgotten, and all are when the page
    moves (the run loop calls :meth:`reset`). Settled lines come in reading
    order, top to bottom.

    >>> s = StableLines(2, 3)
    >>> [s.push(["68994"], [(10.0, 0.0, 20.0)]) for _ in range(2)][-1]
    ['68994']
    >>> s.push(["67994"], [(11.0, 1.0, 20.0)])
    ['68994']
    """

    def __init__(self, k: int = STABLE_K, n: int = STABLE_N) -> None:
        if not 1 <= k <= n:
            raise ValueError(f"a settled reading needs 1 <= k <= n, not k={k}, n={n}")
        self.k, self.n = k, n
        self._tracks: list[_Track] = []

    def reset(self) -> None:
        """Forget every line (the camera now looks at another page)."""
        self._tracks = []

    def _match(self, cy: float, x: float, h: float, taken: set[int]) -> _Track | None:
        best, best_d = None, 0.0
        for i, t in enumerate(self._tracks):
            if i in taken:
                continue
            dy, dx = abs(cy - t.cy), abs(x - t.x)
            if dy < 0.6 * max(h, t.height) and dx < 2.5 * max(h, t.height) and (best is None or dy < best_d):
                best, best_d = t, dy
        return best

    def push(self, lines: list[str], positions: list[tuple[float, float, float]]) -> list[str]:
        """Add one frame's lines (each with its centre y, left x and height in the frame); the settled lines."""
        taken: set[int] = set()
        for text, (cy, x, h) in zip(lines, positions):
            track = self._match(cy, x, h, taken)
            if track is None:
                track = _Track(cy, x, h, deque(maxlen=self.n))
                self._tracks.append(track)
            taken.add(self._tracks.index(track))
            track.cy, track.x, track.height = cy, x, h
            track.recent.append(text)
        for i, t in enumerate(self._tracks):
            if i not in taken:
                t.recent.append(None)
        self._tracks = [t for t in self._tracks if any(r is not None for r in t.recent)]
        for t in self._tracks:
            counts: dict[str, int] = {}
            for r in t.recent:
                if r is not None:
                    counts[r] = counts.get(r, 0) + 1
            top = max(counts, key=lambda r: counts[r])
            if counts[top] >= self.k:
                t.settled = top
        shown = sorted((t for t in self._tracks if t.settled is not None), key=lambda t: (t.cy, t.x))
        return [str(t.settled) for t in shown]


def line_positions(reading: FrameReading) -> list[tuple[float, float, float]]:
    """Each line's centre height, left end and height in the source frame, for following it across frames."""
    boxes: dict[int, list[tuple[int, int, int, int]]] = {}
    for d in reading.digits:
        b = d.frame_box or d.box
        boxes.setdefault(d.line, []).append((b.x, b.y, b.x2, b.y2))
    out = []
    for i in sorted(boxes):
        a = np.array(boxes[i], np.float32)
        h = float(np.median(a[:, 3] - a[:, 1]))
        out.append((float(np.median((a[:, 1] + a[:, 3]) / 2)), float(a[:, 0].min()), h))
    return out
