"""Frame sources: picamera2 and USB cameras through fakes that follow the real APIs, video and image files for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_digits.vision import camera as cam
from edge_digits.vision.runloop import RunOptions, run


class FakePicamera2:
    """Follows picamera2.Picamera2: global_camera_info, create_video_configuration, configure, start,
    capture_array("lores"/"main"), stop, close. lores is YUV420 (height * 3/2 rows), main RGB888."""

    cameras: list[dict[str, Any]] = [{"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/imx708",
                                      "Num": 0}]
    instances: list[FakePicamera2] = []
    fail_after: int | None = None  # the first camera opened fails after this many captures

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.captures = 0
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return list(FakePicamera2.cameras)

    def create_video_configuration(self, main: dict[str, Any] | None = None, lores: dict[str, Any] | None = None,
                                   **kwargs: Any) -> dict[str, Any]:
        return {"use_case": "video", "main": dict(main or {}), "lores": dict(lores) if lores else None, **kwargs}

    create_preview_configuration = create_video_configuration

    def configure(self, config: dict[str, Any]) -> None:
        self.config = config

    def start(self) -> None:
        assert self.config is not None, "configure before start"
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started and self.config is not None
        first = FakePicamera2.instances and FakePicamera2.instances[0] is self
        if self.fail_after is not None and first and self.captures >= self.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        self.captures += 1
        w, h = self.config[name]["size"]
        if name == "lores":
            yuv = np.full((h * 3 // 2, w), 128, np.uint8)
            yuv[:h, :w] = 200
            return yuv
        return np.full((h, w, 3), 200, np.uint8)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2() -> type[FakePicamera2]:
    FakePicamera2.instances = []
    FakePicamera2.fail_after = None
    return FakePicamera2


def test_picamera2_reads_small_lores_grey_and_keeps_main_for_display(fake_picamera2: type[FakePicamera2]) -> None:
    src = cam.Picamera2Source(0, lores_size=(320, 240), main_size=(1280, 960), camera_class=fake_picamera2)
    src.want_display = True
    with src:
        frame = src.read()
        assert frame is not None and frame.shape == (240, 320) and frame.dtype == np.uint8
        assert src.display is not None and src.display.shape == (960, 1280, 3)
        cfg = fake_picamera2.instances[0].config
        assert cfg is not None and cfg["lores"]["format"] == "YUV420" and cfg["main"]["format"] == "RGB888"
    assert fake_picamera2.instances[0].closed and not fake_picamera2.instances[0].started


def test_missing_picamera2_camera_lists_what_exists(fake_picamera2: type[FakePicamera2]) -> None:
    with pytest.raises(cam.CameraError, match=r"no Raspberry Pi camera 1; cameras found: picamera2:0 \(imx708\)"):
        cam.Picamera2Source(1, camera_class=fake_picamera2).open()


def test_picamera2_failing_mid_run_is_reopened_with_back_off(fake_picamera2: type[FakePicamera2],
                                                             classifier: Any) -> None:
    fake_picamera2.fail_after = 2
    sleeps: list[float] = []
    warnings: list[str] = []
    src = cam.Picamera2Source(0, lores_size=(160, 120), main_size=(320, 240), camera_class=fake_picamera2)
    summary = run(src, classifier, RunOptions(max_frames=3, retries=3), on_warning=warnings.append,
                  sleep=sleeps.append)
    assert summary.frames == 3 and summary.camera_failures == 1
    assert sleeps == [0.5] and "timed out" in warnings[0]
    assert len(fake_picamera2.instances) == 2 and all(i.closed for i in fake_picamera2.instances)


class FailingCapture:
    """Follows cv2.VideoCapture: isOpened, set, read -> (ok, frame), release; fails after ``good`` frames."""

    opened: list[FailingCapture] = []
    good = 2
    dead = False

    def __init__(self, index: int | str) -> None:
        self.index = index
        self.released = False
        self.reads = 0
        FailingCapture.opened.append(self)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's naming)
        return not FailingCapture.dead and self.index == 0

    def set(self, prop: int, value: float) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.reads += 1
        if self.reads > FailingCapture.good:
            return False, None
        return True, np.full((120, 160, 3), 220, np.uint8)

    def release(self) -> None:
        self.released = True


@pytest.fixture
def failing_capture() -> type[FailingCapture]:
    FailingCapture.opened = []
    FailingCapture.good = 2
    FailingCapture.dead = False
    return FailingCapture


def test_usb_camera_failing_mid_run_is_retried_then_given_up(failing_capture: type[FailingCapture],
                                                            classifier: Any, tmp_path: Path) -> None:
    failing_capture.good = 1
    sleeps: list[float] = []
    log = tmp_path / "run.jsonl"
    src = cam.UsbCameraSource(0, capture_class=failing_capture)

    def unplug(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            failing_capture.dead = True

    with pytest.raises(cam.CameraError, match="failed 4 times in a row"):
        run(src, classifier, RunOptions(retries=3, log=log), sleep=unplug)
    # frame, failure, reopen, frame (back-off resets), failure, unplugged: three more failures, doubling
    assert sleeps == [0.5, 0.5, 1.0, 2.0]
    assert all(c.released for c in failing_capture.opened)
    rows = log.read_text().splitlines()
    assert len(rows) == 2 and all(r.startswith("{") and r.endswith("}") for r in rows)


def test_missing_usb_camera_says_which_exist(failing_capture: type[FailingCapture]) -> None:
    with pytest.raises(cam.CameraError, match="no USB camera 3; USB cameras found"):
        cam.UsbCameraSource(3, capture_class=failing_capture).open()
    assert failing_capture.opened[0].released


def test_list_cameras_and_parse(tmp_path: Path, fake_picamera2: type[FakePicamera2]) -> None:
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    dev.mkdir()
    for name in ("video0", "video1", "video2", "video10", "video-bad", "media0"):
        (dev / name).touch()
    # like a Pi with one UVC webcam: video0 capture, video1 its metadata node, video10 the codec
    for name, device, index in (("video0", "usb1/1-1/1-1:1.0", "0"), ("video1", "usb1/1-1/1-1:1.0", "1"),
                                ("video10", "platform/soc/bcm2835-codec", "0")):
        (sysfs / name).mkdir(parents=True)
        (tmp_path / "devices" / device).mkdir(parents=True, exist_ok=True)
        (sysfs / name / "device").symlink_to(tmp_path / "devices" / device)
        (sysfs / name / "index").write_text(index + "\n")
    assert cam.list_cameras(fake_picamera2, dev=str(dev), sys_v4l=str(sysfs)) == [
        "picamera2:0", "usb:0", "usb:2"]  # video2 has no sysfs entry here: counted, as off Linux
    assert cam.parse_camera("picamera2:1") == cam.SourceSpec("picamera2", "1")
    assert cam.parse_camera("2") == cam.SourceSpec("usb", "2")
    with pytest.raises(cam.CameraError, match="unknown camera"):
        cam.parse_camera("firewire:0")


def test_no_source_without_camera_is_the_demo_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cam, "list_cameras", lambda *args, **kwargs: [])
    assert isinstance(cam.open_source(None), cam.DemoClipSource)


def test_video_file_source_reads_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    with cam.VideoFileSource(path) as src:
        frames = list(cam.iterate(src))
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    with pytest.raises(cam.CameraError, match="does not exist"):
        cam.VideoFileSource(tmp_path / "missing.mp4").open()
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(cam.CameraError, match="cannot decode"):
        cam.VideoFileSource(tmp_path / "junk.mp4").open()


def test_image_files_glob_folder_and_corrupt_file(tmp_path: Path) -> None:
    for name in ("b.png", "a.png"):
        cv2.imwrite(str(tmp_path / name), np.full((10, 12, 3), 255, np.uint8))
    (tmp_path / "c.png").write_bytes(b"\x89PNG broken")
    assert [p.name for p in cam.expand_images(tmp_path)] == ["a.png", "b.png", "c.png"]
    assert [p.name for p in cam.expand_images(str(tmp_path / "[ab].png"))] == ["a.png", "b.png"]
    src = cam.ImageFilesSource(str(tmp_path / "*.png"))
    src.open()
    assert src.read() is not None and src.read() is not None
    with pytest.raises(cam.FrameError, match="c.png"):
        src.read()
    assert src.read() is None
    with pytest.raises(cam.CameraError, match="no image files"):
        cam.ImageFilesSource(str(tmp_path / "*.jpg")).open()


def test_picamera2_annotated_view_is_drawn_on_the_main_stream(fake_picamera2: type[FakePicamera2],
                                                              classifier: Any, tmp_path: Path) -> None:
    src = cam.Picamera2Source(0, lores_size=(160, 120), main_size=(640, 480), camera_class=fake_picamera2)
    summary = run(src, classifier, RunOptions(max_frames=2, save_frames=tmp_path, rotate=90))
    assert summary.frames == 2
    saved = cv2.imread(str(tmp_path / "frame000000.png"))
    assert saved.shape == (480, 640, 3)  # main stream as the camera gives it: boxes are drawn in frame pixels


class GlitchyVideo:
    """Follows cv2.VideoCapture for a 6-frame file whose frame 2 does not decode."""

    def __init__(self, path: str) -> None:
        self.pos = 0

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's naming)
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.pos += 1
        if self.pos > 6 or self.pos == 3:
            return False, None
        return True, np.full((48, 64, 3), 230, np.uint8)

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_POS_FRAMES: float(self.pos), cv2.CAP_PROP_FRAME_COUNT: 6.0}[prop]

    def release(self) -> None:
        pass


def test_video_frame_that_does_not_decode_is_skipped(tmp_path: Path, classifier: Any) -> None:
    path = tmp_path / "glitch.mp4"
    path.write_bytes(b"stand-in")
    warnings: list[str] = []
    summary = run(cam.VideoFileSource(path, capture_class=GlitchyVideo), classifier, on_warning=warnings.append)
    assert summary.frames == 5 and summary.skipped == 1 and "frame 3 of 6" in warnings[0]
