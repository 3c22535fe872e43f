"""Frame sources: one small interface in front of every camera, video and image backend.

A source is opened, read frame by frame and closed. ``read`` returns a BGR
(or grey) uint8 frame, ``None`` when a recording ends, raises
:class:`FrameError` for one bad frame (the run loop skips it with a warning)
and :class:`CameraError` when the device itself fails (the run loop reopens it
with back-off). Hardware libraries are imported only inside the source that
needs them: picamera2 exists only on a Raspberry Pi.
"""

from __future__ import annotations

import glob
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from edge_digits.vision.demo import DemoClip

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class CameraError(RuntimeError):
    """A source cannot be opened or has failed; the message says what exists instead."""


class FrameError(RuntimeError):
    """One frame or image file is unreadable; the next one may be fine."""


class FrameSource(ABC):
    """Base of all sources: ``open``, ``read`` until ``None``, ``close``; usable as a context manager.

    ``display`` holds the latest full-resolution frame where the backend has
    a separate display stream (picamera2's ``main``), else None.
    """

    name: str = "source"
    want_display: bool = False  # set by the run loop when an annotated view is wanted
    live: bool = True           # frames follow each other in time (the page is tracked, readings settle)

    def open(self) -> None:  # noqa: B027 (a source with nothing to acquire keeps this default)
        """Acquire the device or file; raise CameraError when it does not exist."""

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame (BGR or grey uint8), or None at the end of a recording."""

    def close(self) -> None:  # noqa: B027 (a source with nothing to release keeps this default)
        """Release the device or file; safe to call twice."""

    @property
    def display(self) -> np.ndarray | None:
        return None

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _picamera2_class() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CameraError("picamera2 is not installed (it comes with Raspberry Pi OS: "
                          "sudo apt install python3-picamera2)") from exc
    return Picamera2


class Picamera2Source(FrameSource):
    """A Raspberry Pi camera through picamera2: a full ``main`` stream for display, a small ``lores`` one to read.

    On a Pi 4 and older the lores stream is YUV420, whose first plane is the
    grey image segmentation needs; on a Pi 5 it may be RGB. The main stream is
    captured only when an annotated view is wanted. ``camera_class`` replaces
    ``picamera2.Picamera2`` in tests.
    """

    def __init__(self, index: int = 0, lores_size: tuple[int, int] = (640, 480),
                 main_size: tuple[int, int] = (1280, 960), camera_class: Any | None = None) -> None:
        self.index = index
        self.lores_size = lores_size
        self.main_size = main_size
        self.name = f"picamera2:{index}"
        self._camera_class = camera_class
        self._cam: Any = None
        self._main: np.ndarray | None = None

    def _cls(self) -> Any:
        return self._camera_class if self._camera_class is not None else _picamera2_class()

    def open(self) -> None:
        cls = self._cls()
        cameras = cls.global_camera_info()
        if self.index >= len(cameras):
            found = ", ".join(f"picamera2:{i} ({c.get('Model', '?')})" for i, c in enumerate(cameras)) or "none"
            raise CameraError(f"no Raspberry Pi camera {self.index}; cameras found: {found}")
        try:
            cam = cls(self.index)
            config = cam.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores_size, "format": "YUV420"},
            )
            cam.configure(config)
            cam.start()
        except (RuntimeError, OSError, ValueError) as exc:
            raise CameraError(f"cannot start {self.name}: {exc}") from exc
        self._cam = cam

    def read(self) -> np.ndarray | None:
        if self._cam is None:
            raise CameraError(f"{self.name} is not open")
        try:
            lores: np.ndarray | None = self._cam.capture_array("lores")
            self._main = self._cam.capture_array("main") if self.want_display else None
        except (RuntimeError, OSError) as exc:
            raise CameraError(f"{self.name} failed: {exc}") from exc
        if lores is None or lores.size == 0:
            raise FrameError(f"{self.name} returned an empty frame")
        w, h = self.lores_size
        if lores.ndim == 2:
            return np.ascontiguousarray(lores[:h, :w])
        return lores[:, :, :3] if lores.shape[2] == 4 else lores

    @property
    def display(self) -> np.ndarray | None:
        return self._main

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()


class UsbCameraSource(FrameSource):
    """A V4L2/USB webcam through OpenCV; ``capture_class`` replaces ``cv2.VideoCapture`` in tests."""


    def __init__(self, index: int = 0, size: tuple[int, int] = (640, 480),
                 capture_class: Callable[..., Any] | None = None) -> None:
        self.index = index
        self.size = size
        self.name = f"usb:{index}"
        self._capture_class = capture_class or cv2.VideoCapture
        self._cap: Any = None

    def open(self) -> None:
        cap = self._capture_class(self.index)
        if not cap.isOpened():
            cap.release()
            found = ", ".join(s for s in list_cameras() if s.startswith("usb:")) or "none"
            raise CameraError(f"no USB camera {self.index}; USB cameras found: {found}")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open")
        frame: np.ndarray | None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"{self.name} returned no frame (unplugged or busy?)")
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class VideoFileSource(FrameSource):
    """A recorded video file through OpenCV; ends with ``None`` at the last frame.

    A frame that fails to decode before the end of the file raises
    FrameError (the run loop skips it); ``max_bad`` failures in a row end the
    video, so a truncated file cannot loop forever.
    """

    def __init__(self, path: str | os.PathLike[str], capture_class: Callable[..., Any] | None = None,
                 max_bad: int = 10) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.max_bad = max_bad
        self._capture_class = capture_class or cv2.VideoCapture
        self._cap: Any = None
        self._bad = 0

    def open(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"video file {self.path} does not exist")
        cap = self._capture_class(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot decode video file {self.path}")
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open")
        frame: np.ndarray | None
        ok, frame = self._cap.read()
        if ok and frame is not None:
            self._bad = 0
            return frame
        position = self._cap.get(cv2.CAP_PROP_POS_FRAMES)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._bad += 1
        if count > 0 and position < count - 1 and self._bad <= self.max_bad:
            raise FrameError(f"{self.name}: frame {int(position)} of {int(count)} does not decode")
        return None

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def expand_images(pattern: str | os.PathLike[str]) -> list[Path]:
    """Image files named by a file, a folder (its images, sorted) or a glob pattern (sorted)."""
    p = Path(pattern)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if p.is_file():
        return [p]
    return sorted(Path(f) for f in glob.glob(str(pattern), recursive=True) if Path(f).is_file())


class ImageFilesSource(FrameSource):
    """Still images, from a file, a folder or a glob; an unreadable file raises FrameError and is skipped.

    Not ``live``: each file is its own scene, read once (no page tracking or settling across files).
    """

    live = False

    def __init__(self, pattern: str | os.PathLike[str]) -> None:
        self.pattern = str(pattern)
        self.name = self.pattern
        self._files: list[Path] = []
        self._next = 0
        self.current: Path | None = None

    def open(self) -> None:
        self._files = expand_images(self.pattern)
        self._next = 0
        if not self._files:
            raise CameraError(f"no image files match {self.pattern}")

    def read(self) -> np.ndarray | None:
        if self._next >= len(self._files):
            return None
        path = self._files[self._next]
        self._next += 1
        self.current = path
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise FrameError(f"cannot read image {path} (corrupt or not an image)")
        return frame


class DemoClipSource(FrameSource):
    """The generated demo clip (see :mod:`edge_digits.vision.demo`): MNIST test digits on paper as a camera
    sees them."""

    def __init__(self, frames: int = 60, seed: int = 0, size: tuple[int, int] = (640, 480)) -> None:
        self.frames = frames
        self.seed = seed
        self.size = size
        self.name = f"demo:{seed}"
        self._clip: DemoClip | None = None
        self._next = 0

    def open(self) -> None:
        from edge_digits.vision.demo import DemoClip

        self._clip = DemoClip(seed=self.seed, size=self.size)
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._clip is None:
            raise CameraError(f"{self.name} is not open")
        if self._next >= self.frames:
            return None
        frame = self._clip.frame(self._next)
        self._next += 1
        return frame

    def truth(self, index: int) -> list[str]:
        """The digit strings on the sheet shown in frame ``index`` (0-based)."""
        return self._clip.truth(index) if self._clip is not None else []


def _is_usb_capture_node(name: str, sys_v4l: str) -> bool:
    """A V4L2 node that is a USB camera's capture node (not a Pi's codec/ISP node, not a metadata node).

    Where sysfs cannot be read (not Linux), every node counts.
    """
    node = os.path.join(sys_v4l, name)
    if not os.path.isdir(node):
        return True
    if "/usb" not in os.path.realpath(os.path.join(node, "device")):
        return False
    try:
        with open(os.path.join(node, "index")) as f:
            return f.read().strip() in ("", "0")
    except OSError:
        return True


def list_cameras(camera_class: Any | None = None, dev: str = "/dev",
                 sys_v4l: str = "/sys/class/video4linux") -> list[str]:
    """Camera sources that exist on this machine, as ``--camera`` spells them.

    USB cameras are the V4L2 nodes that sit on a USB bus: a Raspberry Pi has
    many ``/dev/video*`` nodes for its codecs and ISP that are not cameras.
    """
    found: list[str] = []
    try:
        cls = camera_class if camera_class is not None else _picamera2_class()
        found += [f"picamera2:{i}" for i in range(len(cls.global_camera_info()))]
    except (CameraError, RuntimeError, OSError):
        pass
    nodes = [os.path.basename(n) for n in glob.glob(os.path.join(dev, "video*"))]
    numbered = sorted((int(n[5:]), n) for n in nodes if n[5:].isdigit())
    found += [f"usb:{i}" for i, n in numbered if _is_usb_capture_node(n, sys_v4l)]
    return found


@dataclass(frozen=True)
class SourceSpec:
    """Which source ``run`` reads: ``kind`` is picamera2, usb, video, images or demo."""

    kind: str
    arg: str = ""


def parse_camera(spec: str) -> SourceSpec:
    """Parse ``--camera`` values: ``picamera2``, ``picamera2:N``, ``usb:N`` (or a bare ``N`` for usb).

    >>> parse_camera("usb:1")
    SourceSpec(kind='usb', arg='1')
    >>> parse_camera("picamera2")
    SourceSpec(kind='picamera2', arg='0')
    """
    kind, _, arg = spec.partition(":")
    if kind.isdigit() and not arg:
        return SourceSpec("usb", kind)
    if kind in CAMERA_KINDS and (arg == "" or arg.isdigit()):
        return SourceSpec(kind, arg or "0")
    raise CameraError(f"unknown camera {spec!r}: use picamera2, picamera2:N or usb:N")


# The one list of source kinds: kind -> builder(spec, demo_frames, seed, camera_class). ``CAMERA_KINDS`` are
# the ones ``--camera`` names (a device number after the colon); the others come from --video, --images or none.
SOURCE_KINDS: dict[str, Callable[[SourceSpec, int, int, Any], FrameSource]] = {
    "picamera2": lambda spec, frames, seed, camera_class: Picamera2Source(int(spec.arg), camera_class=camera_class),
    "usb": lambda spec, frames, seed, camera_class: UsbCameraSource(int(spec.arg)),
    "video": lambda spec, frames, seed, camera_class: VideoFileSource(spec.arg),
    "images": lambda spec, frames, seed, camera_class: ImageFilesSource(spec.arg),
    "demo": lambda spec, frames, seed, camera_class: DemoClipSource(frames=frames, seed=seed),
}
CAMERA_KINDS = ("picamera2", "usb")


def open_source(spec: SourceSpec | None, demo_frames: int = 60, seed: int = 0,
                camera_class: Any | None = None) -> FrameSource:
    """Build (not open) the source for a spec; with none, a camera if one exists, else the demo clip."""
    if spec is None:
        cams = list_cameras(camera_class)
        if not cams:
            return DemoClipSource(frames=demo_frames, seed=seed)
        spec = parse_camera(cams[0])
    build = SOURCE_KINDS.get(spec.kind)
    if build is None:
        raise CameraError(f"unknown source kind {spec.kind!r}")
    return build(spec, demo_frames, seed, camera_class)


def iterate(source: FrameSource) -> Iterator[np.ndarray]:
    """Frames of an opened source until it ends (FrameError and CameraError propagate)."""
    while True:
        frame = source.read()
        if frame is None:
            return
        yield frame
