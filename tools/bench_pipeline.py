"""Benchmark the camera reading path on one CPU core: a 640x480 frame with about 20 digits.

Frames come from the generated demo clip (MNIST test digits on paper with
perspective, uneven light, blur and noise); each is read by
``edge_digits.vision.reader.read_frame`` (grey, illumination correction, threshold,
components, splitting, lines, MNIST normalisation, one int8 batch). The
process is pinned to one core, and OpenCV and the interpreter use one thread.
Besides wall-clock figures it reports the process's CPU time per frame, which
stays meaningful when other jobs share the machine.

    python tools/bench_pipeline.py [--model PATH] [--frames 300] [--core 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="int8 .tflite model (default: bundled standard)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--frames", type=int, default=300, help="timed frames (after 20 warm-up frames)")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (-1: do not pin)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draw", action="store_true", help="also time drawing the annotated view")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    import cv2

    cv2.setNumThreads(1)
    from edge_digits.vision.demo import DemoClip
    from edge_digits.vision.observe import draw_reading
    from edge_digits.vision.reader import load_classifier, read_frame

    clf = load_classifier(args.model, backend=args.backend, threads=1)
    clip = DemoClip(seed=args.seed, sheets=3)
    frames = [clip.frame(i) for i in range(0, len(clip), 5)]
    counts = [len(read_frame(f, clf).digits) for f in frames]
    for i in range(20):
        read_frame(frames[i % len(frames)], clf)
    stages: dict[str, list[float]] = {}
    totals = []
    cpu0 = time.process_time()
    for i in range(args.frames):
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        reading = read_frame(f, clf, keep_image=args.draw)
        if args.draw and reading.image is not None:
            t1 = time.perf_counter()
            draw_reading(reading.image, reading, 0.0)
            stages.setdefault("drawing", []).append((time.perf_counter() - t1) * 1e3)
        totals.append((time.perf_counter() - t0) * 1e3)
        for k, v in reading.timings_ms.items():
            stages.setdefault(k, []).append(v)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / args.frames
    mean = statistics.fmean(totals)
    result = {
        "frame": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "digits_per_frame": round(statistics.fmean(counts), 1),
        "frames": args.frames,
        "fps": round(1000.0 / mean, 1),
        "fps_p50": round(1000.0 / statistics.median(totals), 1),
        "fps_cpu": round(1000.0 / cpu_ms, 1),
        "cpu_ms_per_frame": round(cpu_ms, 3),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "ms_mean": round(mean, 3),
        "ms_p50": round(statistics.median(totals), 3),
        "ms_p95": round(sorted(totals)[int(0.95 * (len(totals) - 1))], 3),
        "stages_ms": {k: round(statistics.fmean(v), 3) for k, v in stages.items()},
        "backend": getattr(clf, "backend", type(clf).__name__),
        "delegate": getattr(clf, "delegate", None),
        "model": str(args.model) if args.model else "bundled standard",
        "core": args.core,
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['frame']} frames, {result['digits_per_frame']} digits each, one core ({args.core}), "
              f"backend {result['backend']} ({result['delegate']})")
        print(f"{result['fps']} frames/s from the mean ({result['fps_p50']} from the median): "
              f"mean {result['ms_mean']} ms, p50 {result['ms_p50']} ms, p95 {result['ms_p95']} ms")
        print(f"{result['fps_cpu']} frames/s of CPU time ({result['cpu_ms_per_frame']} ms per frame); "
              f"load average {result['load_average']}")
        print("stages (ms): " + ", ".join(f"{k} {v}" for k, v in result["stages_ms"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
