"""What the live view of ``edge-digits run --http`` costs the reading: the run loop on the demo clip, unpaced,
(a) without the view, (b) with the view and no viewers, (c) with 20 SSE clients and 5 MJPEG clients reading
continuously plus 1 stalled MJPEG client; each repeated, interleaved a, b, c, a, b, c...

    python tools/bench_liveview.py [--frames 300] [--repeats 3] [--model standard] [--http-fps 10] [--json]

The viewers run in a second process (threads with sockets), as they would on other machines; the reading
process's CPU time therefore holds the server's work (its threads, the JPEG encoder) and none of the
viewers'. Prints the FPS medians, the ratios (c)/(a) and (b)/(a), CPU ms per frame (the whole process, and
the part spent off the run loop's thread: the view's threads, OpenCV's), frames encoded and clients dropped.
On a shared machine the wall-clock FPS is noisy: the CPU figures are the ones to compare.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from edge_digits.vision.observe import RunObserver
    from edge_digits.vision.reader import DigitClassifier
    from edge_digits.vision.reject import Rejector

CONFIGS = {"a": "no live view", "b": "live view, no viewers", "c": "20 SSE + 5 MJPEG + 1 stalled"}


@dataclass
class Trial:
    """One timed run of one configuration."""

    config: str
    fps: float
    cpu_ms_per_frame: float      # the whole reading process
    other_cpu_ms_per_frame: float   # its threads but the run loop's: the view's server, encoder, clients
    frames: int
    view: dict[str, object] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)


# the viewers' process


def _viewers(url: str, sse: int, mjpeg: int, stalled: int) -> None:
    """Connect the viewers, read until stdin closes, print what they received as JSON."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    stop = threading.Event()
    got = {"sse_bytes": 0, "sse_events": 0, "mjpeg_bytes": 0, "mjpeg_parts": 0, "errors": 0}
    lock = threading.Lock()

    def reader(path: str) -> None:
        try:
            with socket.create_connection(address, timeout=30) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
                while not stop.is_set():
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    with lock:
                        if path == "/events":
                            got["sse_bytes"] += len(chunk)
                            got["sse_events"] += chunk.count(b"event: reading")
                        else:
                            got["mjpeg_bytes"] += len(chunk)
                            got["mjpeg_parts"] += chunk.count(b"Content-Type: image/jpeg")
        except OSError:
            with lock:
                got["errors"] += 1

    held = []
    for _ in range(stalled):   # asks for the video and never reads it
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(address)
        s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        held.append(s)
    threads = [threading.Thread(target=reader, args=(p,), daemon=True)
               for p in ["/events"] * sse + ["/stream.mjpg"] * mjpeg]
    for t in threads:
        t.start()
    sys.stdin.read()
    stop.set()
    for s in held:
        s.close()
    with lock:
        print(json.dumps(got), flush=True)


# the reading process


def _trial(config: str, frames: int, clf: DigitClassifier, rejector: Rejector | None, http_fps: float) -> Trial:
    from edge_digits.live.view import start_live_view
    from edge_digits.vision.camera import DemoClipSource
    from edge_digits.vision.runloop import RunOptions, run

    observers: list[RunObserver] = []
    clients = None
    if config in ("b", "c"):
        view = start_live_view("127.0.0.1:0", max_fps=http_fps, info={"model": "bench"})
        observers.append(view)
        if config == "c":
            clients = subprocess.Popen([sys.executable, __file__, "--viewers", view.url], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 30
            while view.streams() < 26 and time.monotonic() < deadline:
                time.sleep(0.05)
            if view.streams() < 26:
                raise SystemExit(f"only {view.streams()} of 26 viewers connected")
    c0, m0 = time.process_time(), time.thread_time()
    summary = run(DemoClipSource(frames=frames), clf, RunOptions(), rejector=rejector, observers=observers)
    cpu, main_cpu = time.process_time() - c0, time.thread_time() - m0
    got: dict[str, int] = {}
    if clients is not None:
        out, _ = clients.communicate("", timeout=60)
        got = json.loads(out)
    per_frame = 1e3 / max(summary.frames, 1)
    return Trial(config, summary.fps, cpu * per_frame, max(0.0, cpu - main_cpu) * per_frame, summary.frames,
                 summary.observers.get("live view", {}), got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="Demo clip frames per run.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="standard")
    parser.add_argument("--http-fps", type=float, default=10.0, help="The view's --http-fps.")
    parser.add_argument("--opencv-threads", type=int, default=1,
                        help="OpenCV's threads (0: its default); with 1, CPU off the loop's thread is the view's.")
    parser.add_argument("--json", action="store_true", help="Print every trial and the medians as JSON.")
    parser.add_argument("--viewers", metavar="URL", help=argparse.SUPPRESS)   # the viewers' process
    args = parser.parse_args()
    if args.viewers:
        _viewers(args.viewers, sse=20, mjpeg=5, stalled=1)
        return

    import cv2

    if args.opencv_threads:
        cv2.setNumThreads(args.opencv_threads)
    from edge_digits.vision.camera import DemoClipSource
    from edge_digits.vision.reader import load_classifier
    from edge_digits.vision.reject import load_rejector
    from edge_digits.vision.runloop import RunOptions, run

    clf = load_classifier(args.model)
    rejector = load_rejector()
    run(DemoClipSource(frames=30), clf, RunOptions(), rejector=rejector)   # warm-up
    trials: list[Trial] = []
    for r in range(args.repeats):
        for config in CONFIGS:
            trial = _trial(config, args.frames, clf, rejector, args.http_fps)
            trials.append(trial)
            print(f"repeat {r + 1} ({config}) {CONFIGS[config]}: {trial.fps:.1f} FPS, "
                  f"{trial.cpu_ms_per_frame:.1f} CPU ms/frame ({trial.other_cpu_ms_per_frame:.2f} off the loop's "
                  f"thread) {trial.view or ''} {trial.clients or ''}",
                  file=sys.stderr, flush=True)
    fps = {c: statistics.median(t.fps for t in trials if t.config == c) for c in CONFIGS}
    cpu = {c: statistics.median(t.cpu_ms_per_frame for t in trials if t.config == c) for c in CONFIGS}
    other = {c: statistics.median(t.other_cpu_ms_per_frame for t in trials if t.config == c) for c in CONFIGS}
    loaded = [t for t in trials if t.config == "c"]
    encoded = [int(str(t.view.get("video_frames_encoded", 0))) for t in loaded]
    dropped = [int(str(t.view.get("clients_dropped", 0))) for t in loaded]
    if args.json:
        print(json.dumps({"fps_median": fps, "cpu_ms_per_frame_median": cpu, "other_cpu_ms_per_frame_median": other,
                          "trials": [asdict(t) for t in trials]}, indent=2))
        return
    print(f"{args.frames} demo frames a run, {args.repeats} runs each, interleaved; --http-fps {args.http_fps}, "
          f"OpenCV threads {cv2.getNumThreads()}")
    print("| configuration | FPS (median) | CPU ms/frame (median) | of which not the run loop's thread |")
    print("| --- | ---: | ---: | ---: |")
    for c, label in CONFIGS.items():
        print(f"| ({c}) {label} | {fps[c]:.1f} | {cpu[c]:.2f} | {other[c]:.2f} |")
    print(f"(c)/(a) FPS: {fps['c'] / fps['a']:.3f}   (b)/(a) FPS: {fps['b'] / fps['a']:.3f}")
    print(f"(c)/(a) CPU per frame: {cpu['c'] / cpu['a']:.3f}   (b)/(a): {cpu['b'] / cpu['a']:.3f}")
    print(f"under load (c): video frames encoded per run {encoded}, clients dropped per run {dropped}, "
          f"SSE events received {[t.clients.get('sse_events', 0) for t in loaded]}, "
          f"MJPEG parts received {[t.clients.get('mjpeg_parts', 0) for t in loaded]}")


if __name__ == "__main__":
    main()
