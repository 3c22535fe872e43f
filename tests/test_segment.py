"""Segmentation, MNIST-style normalisation and line grouping on pages drawn from MNIST test digits."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from edge_digits.vision import segment as seg


def _page(digits: list[list[np.ndarray]], starts: list[tuple[int, int]], size: int = 40,
          pitch: float = 0.9, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    """Black-on-white page with rows of MNIST digits, row r starting at starts[r], uneven light."""
    page = np.full(shape, 235, np.float32)
    for row, (x0, y0) in zip(digits, starts):
        x = x0
        for d in row:
            g = cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
            page[y0:y0 + size, x:x + size] *= 1 - 0.85 * g
            x += int(size * pitch)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    page *= 0.65 + 0.35 * (xx / shape[1])
    page += np.random.default_rng(0).normal(0, 3, shape)
    return np.clip(page, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def test_digits(mnist: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    return mnist[2], mnist[3]


def test_blank_page_with_uneven_light_has_no_digits() -> None:
    page = _page([], [])
    assert seg.segment(page).glyphs == []
    assert seg.segment(cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)).lines == []


def test_two_columns_are_read_row_by_row_left_then_right(test_digits: Any) -> None:
    x, _ = test_digits
    rows = [[x[i] for i in range(r * 4, r * 4 + 4)] for r in range(6)]
    starts = [(40, 60), (380, 60), (40, 200), (380, 200), (40, 340), (380, 340)]
    s = seg.segment(_page(rows, starts))
    assert [len(line) for line in s.lines] == [4] * 6
    firsts = [(line[0].box.x // 100, line[0].box.y // 100) for line in s.lines]
    assert firsts == [(0, 0), (3, 0), (0, 2), (3, 2), (0, 3), (3, 3)]


@pytest.mark.parametrize("pitch", [0.55, 0.65])
def test_touching_digits_are_split(test_digits: Any, pitch: float) -> None:
    x, y = test_digits
    picks = [int(np.flatnonzero(y == d)[0]) for d in (0, 4, 0, 0, 6, 8)]
    page = _page([[x[i] for i in picks]], [(60, 200)], size=56, pitch=pitch)
    assert len([g for g in seg.find_glyphs(seg.ink_map(page)) if g.box.h > 20]) < 6  # they do touch
    s = seg.segment(page)
    assert len(s.lines) == 1 and len(s.lines[0]) == 6


def test_normalised_digit_looks_like_mnist() -> None:
    mask = np.zeros((90, 50), np.uint8)
    cv2.ellipse(mask, (25, 45), (20, 40), 0, 0, 360, 1, 2)  # a thin, tall 0
    img = seg.normalize_digit(mask)
    assert img.shape == (28, 28) and img.dtype == np.uint8
    m = cv2.moments(img.astype(np.float32))
    assert abs(m["m10"] / m["m00"] - 14) < 0.6 and abs(m["m01"] / m["m00"] - 14) < 0.6
    rows = np.flatnonzero(img.max(axis=1) > 30)
    assert 18 <= rows[-1] - rows[0] + 1 <= 21
    big = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR) > 127
    dist = cv2.distanceTransform(big.astype(np.uint8), cv2.DIST_L2, 3)
    assert 8.0 <= 4 * dist[big].mean() <= 14.0  # MNIST's mean is 11 on the same measure


def test_long_tails_are_squashed_to_the_line_height() -> None:
    short = np.ones((40, 20), np.uint8)
    tall = np.zeros((100, 30), np.uint8)
    tall[:40, :] = 1  # a top bar and a stroke running far below the line, like a 7 with a tail
    tall[:, 12:16] = 1
    assert seg.tame_tail(short, 48).shape == (40, 20)
    assert seg.tame_tail(tall, 48).shape == (48, 30)
    line = [seg.Glyph(seg.Box(30 * i, 0, m.shape[1], m.shape[0]), m) for i, m in enumerate([short, short, tall])]
    batch = seg.normalize_lines(seg.Segmentation([line], np.zeros((100, 100), np.uint8), 40.0))
    assert batch.shape == (3, 28, 28)
    assert np.array_equal(batch[0], seg.normalize_digit(short))
    assert np.array_equal(batch[2], seg.normalize_digit(seg.tame_tail(tall, 48)))
    assert not np.array_equal(batch[2], seg.normalize_digit(tall))


def test_mnist_digits_photographed_are_read_back(test_digits: Any, classifier: Any) -> None:
    x, y = test_digits
    rng = np.random.default_rng(1)
    idx = rng.choice(len(x), 60, replace=False)
    rows = [[x[i] for i in idx[r * 10:(r + 1) * 10]] for r in range(6)]
    page = _page(rows, [(30, 20 + 75 * r) for r in range(6)], size=52, pitch=1.1)
    s = seg.segment(page)
    read = classifier.predict(seg.normalize_all(s.glyphs)).argmax(axis=1)
    assert [len(line) for line in s.lines] == [10] * 6
    assert (read == y[idx]).mean() >= 0.95


@pytest.mark.parametrize("degrees", [0, 90, 180, 270, -90])
def test_rotate_frame_turns_clockwise(degrees: int) -> None:
    frame = np.zeros((2, 3), np.uint8)
    frame[0, 0] = 1
    out = seg.rotate_frame(frame, degrees)
    expected = {0: (0, 0), 90: (0, 1), 180: (1, 2), 270: (2, 0)}[degrees % 360]
    assert out[expected] == 1


def test_rotate_frame_rejects_odd_angles() -> None:
    with pytest.raises(ValueError):
        seg.rotate_frame(np.zeros((2, 2), np.uint8), 45)
