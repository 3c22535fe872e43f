"""Soak test of the reading loop: many frames at full speed with faults injected, memory, file handles and
disk watched, and every frame accounted for.

The source loops the demo clip (pre-rendered) and fails like a camera does: every ``--fail-every`` frames
it raises CameraError (the run loop closes, waits and reopens it), now and then it returns a broken frame
(skipped). The log rotates by size (``--log-rotate``, ``--log-keep``); a SIGHUP every ``--hup-every``
frames starts a new file; a SIGTERM ends the run at the last frame. At 30 frames a second, 100,000
frames stand for 55 minutes of a camera.

    python tools/soak.py [--frames 20000] [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


@dataclass
class SoakResult:
    """What the soak saw: frames, faults, and the high-water marks of memory, handles and disk."""

    frames_asked: int
    frames_read: int = 0
    seconds: float = 0.0
    camera_failures_injected: int = 0
    camera_failures_seen: int = 0
    broken_frames_injected: int = 0
    frames_skipped: int = 0
    sighups: int = 0
    stopped_by: str | None = None
    rss_start: int = 0
    rss_after_warmup: int = 0
    rss_max: int = 0
    rss_end: int = 0
    files_start: int = 0
    files_max: int = 0
    files_end: int = 0
    disk_max: int = 0
    disk_limit: int = 0
    log_rotations: int = 0
    rows_kept: int = 0
    rows_consecutive: bool = False
    samples: list[dict[str, int]] = field(default_factory=list)


class FlakyLoop:
    """A FrameSource that loops pre-rendered frames and fails the way cameras and files do."""

    live = True
    name = "soak"
    want_display = False

    def __init__(self, frames: list[np.ndarray], fail_every: int, broken_every: int) -> None:
        self.frames, self.fail_every, self.broken_every = frames, fail_every, broken_every
        self.calls = self.failures = self.broken = 0
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def close(self) -> None:
        self.opened = False

    @property
    def display(self) -> None:
        return None

    def read(self) -> np.ndarray:
        from edge_digits.vision.camera import CameraError, FrameError

        if not self.opened:
            raise CameraError("soak source is not open")
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            self.failures += 1
            raise CameraError("injected camera failure")
        if self.broken_every and self.calls % self.broken_every == 0:
            self.broken += 1
            raise FrameError("injected broken frame")
        return self.frames[self.calls % len(self.frames)]


def soak(frames: int, out: Path, fail_every: int = 997, broken_every: int = 1499, hup_every: int = 5000,
         log_rotate: int = 256 * 1024, log_keep: int = 3, sample_every: int = 500) -> SoakResult:
    """Run the loop for ``frames`` frames with the faults above; returns what was measured."""
    from edge_digits.vision.demo import DemoClip
    from edge_digits.vision.reader import load_classifier
    from edge_digits.vision.reject import load_rejector
    from edge_digits.vision.runloop import RunOptions, run

    clip = DemoClip(seed=0)
    source = FlakyLoop([clip.frame(i) for i in range(len(clip))], fail_every, broken_every)
    classifier, rejector = load_classifier("standard"), load_rejector()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "soak.jsonl"
    result = SoakResult(frames, rss_start=rss_bytes(), files_start=open_files(),
                        disk_limit=(log_keep + 1) * log_rotate)
    options = RunOptions(log=log, log_max_bytes=log_rotate, log_keep=log_keep, retries=3, backoff_s=0.0,
                         backoff_max_s=0.0)

    def on_frame(record: dict[str, object]) -> None:
        i = int(record["frame"])  # type: ignore[call-overload]
        if i == 200:
            result.rss_after_warmup = rss_bytes()
        if i % sample_every == 0:
            sample = {"frame": i, "rss": rss_bytes(), "files": open_files(), "disk": folder_bytes(out)}
            result.samples.append(sample)
            result.rss_max = max(result.rss_max, sample["rss"])
            result.files_max = max(result.files_max, sample["files"])
            result.disk_max = max(result.disk_max, sample["disk"])
        if hup_every and i and i % hup_every == 0:
            result.sighups += 1
            os.kill(os.getpid(), signal.SIGHUP)
        if i == frames - 1:
            os.kill(os.getpid(), signal.SIGTERM)

    started = time.perf_counter()
    summary = run(source, classifier, options, on_frame=on_frame, sleep=lambda s: None, rejector=rejector)
    result.seconds = round(time.perf_counter() - started, 1)
    result.frames_read = summary.frames
    result.camera_failures_injected, result.camera_failures_seen = source.failures, summary.camera_failures
    result.broken_frames_injected, result.frames_skipped = source.broken, summary.skipped
    result.stopped_by, result.log_rotations = summary.stopped_by, summary.log_rotations
    result.rss_end, result.files_end = rss_bytes(), open_files()
    result.disk_max = max(result.disk_max, folder_bytes(out))
    kept = sorted(out.glob("soak.jsonl*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    rows = [json.loads(r)["frame"] for p in kept for r in p.read_text().splitlines()]
    result.rows_kept = len(rows)
    result.rows_consecutive = bool(rows) and rows == list(range(rows[0], rows[0] + len(rows))) \
        and rows[-1] == summary.frames - 1
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=None, help="folder for the rotating log (default: a temp one)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="edge-digits-soak-"))
    r = soak(args.frames, out)
    mb = 1024 * 1024
    print(f"{r.frames_read:,} frames in {r.seconds:.0f} s ({r.frames_read / max(r.seconds, 1e-9):.0f} frames/s), "
          f"stopped by {r.stopped_by}")
    print(f"camera failures injected {r.camera_failures_injected}, seen {r.camera_failures_seen}; broken frames "
          f"injected {r.broken_frames_injected}, skipped {r.frames_skipped}; SIGHUPs {r.sighups}")
    print(f"memory: {r.rss_start / mb:.0f} MB at start, {r.rss_after_warmup / mb:.0f} MB after 200 frames, "
          f"{r.rss_max / mb:.0f} MB at most, {r.rss_end / mb:.0f} MB at the end")
    print(f"open files: {r.files_start} at start, {r.files_max} at most, {r.files_end} at the end")
    print(f"log: {r.log_rotations} rotations, at most {r.disk_max / 1024:.0f} KiB on disk "
          f"(limit {r.disk_limit / 1024:.0f} KiB), {r.rows_kept:,} rows kept, consecutive to the last frame: "
          f"{r.rows_consecutive}")
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(r), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
