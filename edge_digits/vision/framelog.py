"""The per-frame log of ``edge-digits run``: stage timings and counts as JSON Lines or CSV, whole rows only,
rotated by size or by day."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from edge_digits.vision.reader import ReaderError

LOG_FIELDS = ("frame", "time", "capture_ms", "page_ms", "preprocess_ms", "segmentation_ms", "rejection_ms",
              "inference_ms", "drawing_ms", "digits", "rejected", "lines", "stable_lines", "power_w")


class FrameLog:
    """Per-frame timings as JSON Lines or CSV (by suffix), one whole row per write, each on disk before the
    next frame, so that Ctrl-C, SIGTERM or a full disk leave a file of whole rows.

    A write that fails (a full disk, an unplugged stick) is cut back to the last whole row; the log then
    stops taking rows (``failed`` says why, ``lost`` counts the rows not written) and the run goes on.
    With ``max_bytes`` or ``daily`` the file is rotated (``run.jsonl.1``, ``.2``, ... ``keep`` of them).
    """

    def __init__(self, path: Path, max_bytes: int | None = None, daily: bool = False, keep: int = 7,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise ReaderError(f"--log must end in .jsonl or .csv, not {self.path.name}")
        self._csv = suffix == ".csv"
        self.max_bytes, self.daily, self.keep, self.clock = max_bytes, daily, keep, clock
        self.failed: str | None = None
        self.lost = 0
        self.rotations = 0
        self._fd = -1
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise ReaderError(f"cannot write the log {self.path}: {exc.strerror or exc}") from exc
        self._good = 0
        self._day = time.localtime(self.clock())[:3]
        if self._csv:
            self._append(",".join(LOG_FIELDS) + "\r\n")

    def _rotate(self) -> None:
        """Close the current file, shift ``log.1`` .. ``log.(keep-1)`` up by one (the oldest goes), and
        start ``log`` afresh: a week of rows at 30 frames a second stays bounded."""
        self.close()
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.keep > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self.rotations += 1
        self._open()

    def rotate_now(self) -> None:
        """Start a new file now (SIGHUP), keeping the old one as ``FILE.1``."""
        if self.failed is None:
            try:
                self._rotate()
            except (OSError, ReaderError) as exc:
                self.failed = f"rotating the log failed: {exc}"

    def _due(self, size: int) -> bool:
        if self.max_bytes is not None and self._good + size > self.max_bytes and self._good > 0:
            return True
        return self.daily and time.localtime(self.clock())[:3] != self._day

    def _line(self, row: dict[str, object]) -> str:
        if not self._csv:
            return json.dumps(row) + "\n"
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=LOG_FIELDS).writerow(row)
        return buffer.getvalue()

    def _append(self, text: str) -> None:
        if self.failed is not None:
            self.lost += 1
            return
        data = text.encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            self._good += len(data)
        except OSError as exc:
            self.failed = f"{exc.strerror or exc} (after {self._good:,} bytes)"
            self.lost += 1
            try:
                os.ftruncate(self._fd, self._good)   # no half row at the end
            except OSError:
                pass

    def write(self, row: dict[str, object]) -> None:
        line = self._line(row)
        if self.failed is None and self._due(len(line.encode("utf-8"))):
            self.rotate_now()
        self._append(line)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.failed = self.failed or f"{exc.strerror or exc} while closing"
        finally:
            os.close(self._fd)
            self._fd = -1
