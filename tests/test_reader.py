"""The run loop: records, JSONL/CSV logs that stay valid on Ctrl-C, skipped bad frames, annotated outputs,
demo truth."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_digits.scoring import score_lines
from edge_digits.vision import camera as cam
from edge_digits.vision.demo import DemoClip
from edge_digits.vision.framelog import LOG_FIELDS
from edge_digits.vision.page import PAGE_SIDE, Page, Quad
from edge_digits.vision.reader import FrameReader, ReaderError, read_frame
from edge_digits.vision.runloop import RunOptions, run


class DemoThenCtrlC(cam.DemoClipSource):
    """The demo clip, with Ctrl-C pressed while frame ``stop_at`` is being captured."""

    def __init__(self, stop_at: int) -> None:
        super().__init__(frames=100)
        self.stop_at = stop_at
        self.closed = 0

    def read(self) -> np.ndarray | None:
        if self._next == self.stop_at:
            raise KeyboardInterrupt
        return super().read()

    def close(self) -> None:
        self.closed += 1


@pytest.fixture(scope="module")
def clip(mnist: tuple[np.ndarray, ...]) -> DemoClip:
    return DemoClip(seed=0, digits=mnist[2], labels=mnist[3])


def test_demo_clip_is_deterministic_and_read_well(clip: DemoClip, mnist: tuple[np.ndarray, ...],
                                                 classifier: Any, rejector: Any) -> None:
    again = DemoClip(seed=0, digits=mnist[2], labels=mnist[3])
    assert np.array_equal(clip.frame(7), again.frame(7)) and clip.truth(7) == again.truth(7)
    assert clip.frame(0).shape == (480, 640, 3) and not np.array_equal(clip.frame(0), clip.frame(1))
    assert len(clip) == 60 and clip.truth(0) != clip.truth(20) and clip.truth(59) == []

    def read_clip(reader: FrameReader) -> tuple[float, int]:
        digits = errors = phantoms = 0
        for i in range(0, len(clip), 3):
            reader.reset()
            lines = reader.read(clip.frame(i)).lines
            if clip.truth(i):
                score = score_lines(clip.truth(i), lines)
                digits, errors = digits + score.digits, errors + score.errors
            else:
                phantoms += len("".join(lines))
        return 1 - errors / digits, phantoms

    accuracy, phantoms = read_clip(FrameReader(classifier, 0, "auto", rejector))
    assert accuracy >= 0.9 and phantoms <= 5
    # the clutter around the sheet is real work for the reader: the whole frame without rejection fails
    plain_accuracy, plain_phantoms = read_clip(FrameReader(classifier, 0, "off", None, line_filter=False))
    assert plain_accuracy < accuracy - 0.2


def test_run_records_and_jsonl_log(tmp_path: Path, classifier: Any) -> None:
    records: list[dict[str, Any]] = []
    log = tmp_path / "logs" / "run.jsonl"
    summary = run(cam.DemoClipSource(frames=4), classifier, RunOptions(log=log), on_frame=records.append)
    assert summary.frames == 4 and not summary.interrupted and summary.digit_accuracy is not None
    r = records[0]
    assert {"source", "frame", "time", "lines", "digits", "timings_ms"} <= set(r)
    assert r["source"] == "demo:0" and r["frame"] == 0 and r["lines"] and json.dumps(r)
    d = r["digits"][0]
    assert set(d) >= {"box", "class", "confidence"} and len(d["box"]) == 4
    assert set(r["timings_ms"]) == {"capture", "page", "preprocess", "segmentation", "rejection", "inference",
                                    "drawing"}
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["frame"] for row in rows] == [0, 1, 2, 3]
    assert set(rows[0]) == set(LOG_FIELDS) and rows[0]["digits"] == len(r["digits"])


def test_ctrl_c_ends_cleanly_with_valid_logs_and_video(tmp_path: Path, classifier: Any) -> None:
    src = DemoThenCtrlC(stop_at=3)
    log = tmp_path / "run.csv"
    video = tmp_path / "annotated.avi"
    summary = run(src, classifier, RunOptions(log=log, save_video=video, save_frames=tmp_path / "frames"))
    assert summary.interrupted and summary.frames == 3 and src.closed == 1
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [0, 1, 2] and all(float(r["inference_ms"]) >= 0 for r in rows)
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "frame000000.png", "frame000001.png", "frame000002.png"]
    assert cv2.imread(str(tmp_path / "frames" / "frame000000.png")).shape == (480, 640, 3)


def test_corrupt_image_is_skipped_with_a_warning(tmp_path: Path, classifier: Any) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.full((60, 80, 3), 230, np.uint8))
    (tmp_path / "b.png").write_bytes(b"garbage")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((60, 80, 3), 230, np.uint8))
    warnings: list[str] = []
    summary = run(cam.ImageFilesSource(str(tmp_path / "*.png")), classifier, on_warning=warnings.append)
    assert summary.frames == 2 and summary.skipped == 1 and "b.png" in warnings[0]


def test_bad_log_suffix_is_refused(tmp_path: Path, classifier: Any) -> None:
    with pytest.raises(ReaderError, match=".jsonl or .csv"):
        run(cam.DemoClipSource(frames=1), classifier, RunOptions(log=tmp_path / "run.txt"))


def test_pi_path_never_imports_tensorflow() -> None:
    code = (
        "import sys\n"
        "import edge_digits.cli, edge_digits.vision.camera, edge_digits.vision.segment, edge_digits.vision.reader\n"
        "import edge_digits.vision.demo, edge_digits.vision.photos, edge_digits.scoring\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(("tilt", "turned_ccw"), [(0, 90), (7, 0), (-9, 180), (5, 270)])
def test_auto_rotation_turns_and_straightens(mnist: tuple[np.ndarray, ...], classifier: Any, tilt: float,
                                             turned_ccw: int) -> None:
    from test_segment import _page

    x = mnist[2]
    rows = [[x[i] for i in range(r * 8, r * 8 + 8)] for r in range(3)]
    upright = _page(rows, [(120, 120 + 90 * r) for r in range(3)], size=48, pitch=1.0)
    expected = read_frame(upright, classifier).lines
    tilted = cv2.warpAffine(upright, cv2.getRotationMatrix2D((320, 240), tilt, 1.0), (640, 480), borderValue=235)
    codes = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}
    frame = cv2.rotate(tilted, codes[turned_ccw]) if turned_ccw else tilted
    reading = read_frame(frame, classifier, rotate="auto")
    assert reading.rotation == turned_ccw and len(reading.lines) == len(expected)
    score = score_lines(expected, reading.lines)
    assert score.errors <= 1, "straightening resamples the digits: at most one of 24 may read differently"


@pytest.mark.skipif(re.search(r"GUI:\s+NONE", cv2.getBuildInformation()) is None,
                    reason="this OpenCV has a GUI; --show would open a window")
def test_show_without_a_gui_is_a_clear_error(classifier: Any) -> None:
    with pytest.raises(ReaderError, match="--show needs OpenCV with a GUI"):
        run(cam.DemoClipSource(frames=1), classifier, RunOptions(show=True))


def test_all_digits_of_a_frame_go_in_one_batch(clip: DemoClip, classifier: Any) -> None:
    batches: list[tuple[int, ...]] = []

    class Counting:
        def predict(self, images: np.ndarray) -> np.ndarray:
            batches.append(images.shape)
            return classifier.predict(images)

    reading = read_frame(clip.frame(0), Counting(), line_filter=False)
    assert len(batches) == 1 and batches[0] == (len(reading.digits), 28, 28) and len(reading.digits) >= 15


def test_large_frames_are_scaled_down_before_reading(clip: DemoClip, classifier: Any) -> None:
    small = clip.frame(0)
    quad = clip._poses[0]
    big = cv2.resize(small, (2560, 1920), interpolation=cv2.INTER_CUBIC)
    reading = read_frame(big, classifier, keep_image=True, page=Page(Quad(quad * 4), 1.0))
    assert reading.image is not None and max(reading.image.shape[:2]) == PAGE_SIDE
    assert reading.lines == read_frame(small, classifier, page=Page(Quad(quad), 1.0)).lines == clip.truth(0)
    whole = read_frame(big, classifier, keep_image=True)
    assert whole.image is not None and whole.image.shape == (960, 1280, 3)
    # boxes come back in the pixels of the frame as given, whatever was read
    d = reading.digits[0].frame_box
    assert d is not None and 0 <= d.x < 2560 and 0 <= d.y < 1920
    assert Quad(quad * 4).area * 0.99 < (reading.page.area if reading.page else 0) < Quad(quad * 4).area * 1.01


def test_power_readings_go_into_records_and_log_and_a_failing_meter_is_left(tmp_path: Path, classifier: Any) -> None:
    from test_power import FakeInaBus

    from edge_digits import power

    bus = FakeInaBus("ina260", 5.1, 0.8)
    meter = power.Ina260Meter(bus)
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    log = tmp_path / "run.csv"

    def on_frame(record: dict[str, Any]) -> None:
        records.append(record)
        if len(records) == 2:
            bus.address = 0x99   # the meter stops answering (unplugged) after the second frame

    summary = run(cam.DemoClipSource(frames=4), classifier, RunOptions(log=log), on_frame=on_frame,
                  on_warning=warnings.append, meter=meter)
    assert summary.frames == 4 and summary.power_readings == 2
    assert summary.mean_power_w == pytest.approx(5.1 * 0.8, rel=2e-3)
    assert [r["power_w"] for r in records][2:] == [None, None]
    assert records[0]["power_w"] == pytest.approx(4.08, rel=2e-3)
    assert len(warnings) == 1 and "power meter ina260@0x40 failed" in warnings[0]
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["power_w"] for r in rows][2:] == ["", ""] and float(rows[1]["power_w"]) == pytest.approx(4.08, rel=2e-3)
