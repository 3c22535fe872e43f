"""The whole camera path on eight real phone photos: the issue's accuracy goal, per sheet and in total."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge_digits.vision import photos
from edge_digits.vision.reader import read_frame

PHOTOS = photos.default_photos_dir()


@pytest.fixture(scope="module")
def photo_dir() -> Path:
    if not (PHOTOS / "truth.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"real photos missing at {PHOTOS} (set EDGE_DIGITS_PHOTOS)")
        pytest.skip(f"real photos not found at {PHOTOS} (set EDGE_DIGITS_PHOTOS)")
    return PHOTOS


def test_truth_file_matches_the_readme(photo_dir: Path) -> None:
    items = photos.load_truth(photo_dir)
    assert len(items) == 8 and sum(len("".join(i["lines"])) for i in items) == 241


def test_photo_accuracy_meets_the_goal(photo_dir: Path, classifier: Any) -> None:
    result = photos.evaluate_photos(classifier, photo_dir)
    for s in result.sheets:
        print(f"{s.image}: digits {s.digit_accuracy:.1%}, lines {s.lines_exact}/{len(s.truth)}, read {s.read}")
    print(f"total: digits {result.digit_accuracy:.2%}, lines {result.line_accuracy:.1%}")
    assert result.digits == 241
    assert result.digit_accuracy >= photos.GOAL_DIGITS
    assert result.line_accuracy >= photos.GOAL_LINES


def test_auto_rotation_finds_each_photo_orientation(photo_dir: Path, classifier: Any) -> None:
    for item in photos.load_truth(photo_dir):
        frame = cv2.imread(str(photo_dir / item["image"]))
        reading = read_frame(frame, classifier, rotate="auto")
        assert reading.rotation == item["rotate_cw"], item["image"]
        assert len(reading.lines) == len(item["lines"]), item["image"]


def test_missing_or_bad_truth_is_a_clear_error(tmp_path: Path, classifier: Any) -> None:
    with pytest.raises(photos.PhotoError, match="no truth.json"):
        photos.evaluate_photos(classifier, tmp_path)
    (tmp_path / "truth.json").write_text(json.dumps({"items": [{"image": "a.png"}]}))
    with pytest.raises(photos.PhotoError, match="not a valid truth file"):
        photos.evaluate_photos(classifier, tmp_path)
    (tmp_path / "truth.json").write_text(json.dumps({"items": [{"image": "a.png", "rotate_cw": 0, "lines": ["1"]}]}))
    with pytest.raises(photos.PhotoError, match="cannot read image"):
        photos.evaluate_photos(classifier, tmp_path)
