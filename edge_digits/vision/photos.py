"""Accuracy of the whole camera path on a folder of frames with a ``truth.json``: photos, composed scenes.

A folder holds images and a ``truth.json`` (per image: the digit ``lines``
in reading order; optionally ``rotate_cw``, and ``page``, the page corners
in frame pixels). Each frame is read as a camera frame would be (page
found, glyphs rejected, as ``run`` does); its lines are compared with the
truth line by line. A frame whose truth has ``"lines": []`` counts every
digit read as a phantom; with ``page`` truth, the found page's corners are
checked too. Digit accuracy counts
a digit right unless an edit (substitution, deletion, insertion) is needed
for it: ``1 - edit_distance / digits``, summed over lines, so a split or
merged digit costs what it should. A line is exact when the strings are equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_digits.fileio import shared_data_dir
from edge_digits.scoring import score_lines
from edge_digits.vision.page import Quad, corner_error
from edge_digits.vision.reader import DigitClassifier, FrameReader
from edge_digits.vision.reject import Rejector

GOAL_DIGITS = 0.97
GOAL_LINES = 0.75


class PhotoError(RuntimeError):
    """The photo folder or its truth file is missing or malformed."""


def default_photos_dir() -> Path:
    """``$EDGE_DIGITS_PHOTOS``, else ``shared/data/photos`` beside the project folder."""
    return shared_data_dir("photos", "EDGE_DIGITS_PHOTOS")


@dataclass
class SheetResult:
    """One photo: truth and read lines, digit errors (edits) and exact lines."""

    image: str
    truth: list[str]
    read: list[str]
    digits: int
    errors: int
    lines_exact: int
    page_error: float | None = None
    page_found: bool | None = None

    @property
    def digit_accuracy(self) -> float:
        return max(0.0, 1.0 - self.errors / self.digits) if self.digits else 1.0

    @property
    def line_accuracy(self) -> float:
        return self.lines_exact / len(self.truth) if self.truth else 1.0


@dataclass
class PhotoEvaluation:
    """All photos of a folder: per sheet and in total, against the issue's goals."""

    folder: str
    rotate: str
    sheets: list[SheetResult] = field(default_factory=list)
    page: str = "auto"
    reject: bool = True

    @property
    def blank_frames(self) -> int:
        return sum(1 for s in self.sheets if not s.truth)

    @property
    def phantom_digits(self) -> int:
        return sum(len("".join(s.read)) for s in self.sheets if not s.truth)

    @property
    def phantoms_per_blank_frame(self) -> float | None:
        return self.phantom_digits / self.blank_frames if self.blank_frames else None

    @property
    def pages_checked(self) -> int:
        return sum(1 for s in self.sheets if s.page_found is not None)

    @property
    def pages_matched(self) -> int:
        return sum(1 for s in self.sheets if s.page_error is not None and s.page_error <= 0.03)

    @property
    def digits(self) -> int:
        return sum(s.digits for s in self.sheets)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.sheets if s.truth)

    @property
    def lines(self) -> int:
        return sum(len(s.truth) for s in self.sheets)

    @property
    def lines_exact(self) -> int:
        return sum(s.lines_exact for s in self.sheets)

    @property
    def digit_accuracy(self) -> float:
        return max(0.0, 1.0 - self.errors / self.digits) if self.digits else 0.0

    @property
    def line_accuracy(self) -> float:
        return self.lines_exact / self.lines if self.lines else 0.0

    @property
    def meets_goal(self) -> bool:
        return self.digit_accuracy >= GOAL_DIGITS and self.line_accuracy >= GOAL_LINES

    def as_dict(self) -> dict[str, object]:
        return {
            "folder": self.folder, "rotate": self.rotate,
            "digits": self.digits, "digit_errors": self.errors, "digit_accuracy": round(self.digit_accuracy, 4),
            "lines": self.lines, "lines_exact": self.lines_exact, "line_accuracy": round(self.line_accuracy, 4),
            "goal": {"digit_accuracy": GOAL_DIGITS, "line_accuracy": GOAL_LINES, "met": self.meets_goal},
            "page": self.page, "reject": self.reject, "blank_frames": self.blank_frames,
            "phantom_digits": self.phantom_digits, "phantoms_per_blank_frame": self.phantoms_per_blank_frame,
            "pages_checked": self.pages_checked, "pages_matched": self.pages_matched,
            "sheets": [{"image": s.image, "truth": s.truth, "read": s.read, "digits": s.digits,
                        "digit_errors": s.errors, "digit_accuracy": round(s.digit_accuracy, 4),
                        "lines_exact": s.lines_exact, "lines": len(s.truth),
                        "page_error": None if s.page_error is None else round(s.page_error, 4)}
                       for s in self.sheets],
        }


def load_truth(folder: Path) -> list[dict[str, Any]]:
    """The ``items`` of ``truth.json``, checked for the fields the evaluation needs."""
    path = Path(folder) / "truth.json"
    if not path.is_file():
        raise PhotoError(f"no truth.json in {folder} (set EDGE_DIGITS_PHOTOS or pass the photo folder)")
    try:
        items: list[dict[str, Any]] = json.loads(path.read_text())["items"]
        for it in items:
            _ = (str(it["image"]), int(it.get("rotate_cw", 0)), [str(s) for s in it["lines"]])
    except (ValueError, KeyError, TypeError) as exc:
        raise PhotoError(f"{path} is not a valid truth file: {exc}") from exc
    return items


def score_sheet(image: str, truth: list[str], read: list[str]) -> SheetResult:
    """Compare read lines with the truth: edits per line pair, exact lines."""
    score = score_lines(truth, read)
    return SheetResult(image, truth, read, score.digits, score.errors, score.lines_exact)


def evaluate_photos(classifier: DigitClassifier, folder: Path | None = None, rotate: str = "truth",
                    page: str | Quad = "auto", rejector: Rejector | None = None) -> PhotoEvaluation:
    """Read every frame listed in ``truth.json`` and score it.

    ``rotate="truth"`` turns each photo by its ``rotate_cw`` (what ``--rotate N``
    does on a camera); ``"auto"`` lets the reader find the orientation itself.
    ``page`` and ``rejector`` are as for ``run`` (each frame is its own scene).
    """
    if rotate not in ("truth", "auto"):
        raise ValueError(f"rotate must be 'truth' or 'auto', not {rotate!r}")
    folder = Path(folder) if folder is not None else default_photos_dir()
    items = load_truth(folder)
    result = PhotoEvaluation(str(folder), rotate, page=page if isinstance(page, str) else "fixed",
                             reject=rejector is not None)
    reader = FrameReader(classifier, 0, page, rejector)
    for it in items:
        path = folder / str(it["image"])
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise PhotoError(f"cannot read image {path}")
        reader.rotate = "auto" if rotate == "auto" else int(it.get("rotate_cw", 0))
        reader.reset()
        reading = reader.read(frame)
        sheet = score_sheet(str(it["image"]), [str(s) for s in it["lines"]], reading.lines)
        if "page" in it:
            truth = Quad(np.array(it["page"], np.float32).reshape(4, 2))
            sheet.page_found = reading.page is not None
            sheet.page_error = corner_error(reading.page, truth) if reading.page is not None else None
        result.sheets.append(sheet)
    return result
