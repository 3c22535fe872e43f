"""The ``run`` and ``eval-photos`` commands: option parsing, JSON output, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.vision import camera as cam
from edge_digits.vision import photos, reader


@pytest.fixture
def cli_classifier(monkeypatch: pytest.MonkeyPatch, classifier: Any) -> Any:
    monkeypatch.setattr(reader, "load_classifier", lambda model=None, backend="auto", threads=1: classifier)
    return classifier


def test_run_on_a_photo_prints_one_json_object_per_frame(cli_classifier: Any) -> None:
    folder = photos.default_photos_dir()
    if not (folder / "sheet5.png").is_file():
        pytest.skip("real photos not found")
    result = CliRunner().invoke(main, ["run", "--images", str(folder / "sheet5.png"), "--json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    record = json.loads(lines[0])
    truth = next(i for i in photos.load_truth(folder) if i["image"] == "sheet5.png")
    assert truth["rotate_cw"] == 0
    library = reader.read_frame(cv2.imread(str(folder / "sheet5.png")), cli_classifier)
    assert len(lines) == 1 and record["lines"] == library.lines
    assert len(record["lines"]) == len(truth["lines"]) == 4
    assert record["source"].endswith("sheet5.png") and record["frame"] == 0 and record["digits"]


def test_run_with_no_source_and_no_camera_plays_the_demo_clip(cli_classifier: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cam, "list_cameras", lambda *args, **kwargs: [])
    log = tmp_path / "run.csv"
    result = CliRunner().invoke(main, ["run", "--max-frames", "2", "--log", str(log), "--rotate", "0"])
    assert result.exit_code == 0, result.output
    assert "source: demo:0" in result.stderr and "accuracy against the demo truth" in result.stderr
    assert result.stdout.count("frame ") == 2 and len(log.read_text().splitlines()) == 3


def test_missing_camera_lists_sources(cli_classifier: Any) -> None:
    result = CliRunner().invoke(main, ["run", "--camera", "usb:57"])
    assert result.exit_code == 1
    assert "no USB camera 57" in result.stderr and "sources here:" in result.stderr


def test_one_source_at_a_time_and_known_cameras_only() -> None:
    both = CliRunner().invoke(main, ["run", "--video", "a.mp4", "--images", "*.png"])
    assert both.exit_code == 2 and "at most one" in both.stderr
    odd = CliRunner().invoke(main, ["run", "--camera", "firewire:1"])
    assert odd.exit_code == 1 and "unknown camera" in odd.stderr


def test_eval_photos_json(cli_classifier: Any) -> None:
    if not (photos.default_photos_dir() / "truth.json").is_file():
        pytest.skip("real photos not found")
    result = CliRunner().invoke(main, ["eval-photos", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["digits"] == 241 and len(data["sheets"]) == 8 and "met" in data["goal"]


def test_eval_photos_missing_folder(cli_classifier: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval-photos", str(tmp_path)])
    assert result.exit_code == 1 and "no truth.json" in result.stderr
