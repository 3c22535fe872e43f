"""Compare what was read with the truth: edit distance per line and exact lines for digit strings, the
confusion matrix and per-class accuracy for single digits.

Shared by the photo evaluation and by the run loop (the demo clip knows its
truth), so both count a missed, extra or wrong digit the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings.

    >>> edit_distance("1247673", "124773")
    1
    >>> edit_distance("", "42")
    2
    """
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class LineScore:
    """Digits in the truth, edits needed to turn the reading into it, and lines read exactly."""

    digits: int
    errors: int
    lines_exact: int


def score_lines(truth: list[str], read: list[str]) -> LineScore:
    """Pair lines in order (a missing line reads as '', an extra one is all errors) and count edits.

    >>> score_lines(["123", "45"], ["123", "46", "7"])
    LineScore(digits=5, errors=2, lines_exact=1)
    """
    pairs = [(t, read[i] if i < len(read) else "") for i, t in enumerate(truth)]
    pairs += [("", r) for r in read[len(truth):]]
    return LineScore(sum(len(t) for t in truth), sum(edit_distance(t, r) for t, r in pairs),
                     sum(1 for t, r in pairs if t and t == r))


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The 10x10 count of true digit (rows) against predicted digit (columns)."""
    m = np.zeros((10, 10), np.int64)
    np.add.at(m, (y_true.astype(int), y_pred.astype(int)), 1)
    return m


def per_class_accuracy(m: np.ndarray) -> list[float]:
    """Each digit's share read right, from a confusion matrix (0 for a digit never seen)."""
    return [float(m[i, i] / m[i].sum()) if m[i].sum() else 0.0 for i in range(10)]
