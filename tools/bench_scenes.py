"""Frames per CPU second of the camera path on the cluttered demo clip: page tracking and rejection on,
against the whole frame read without them, side by side in one run on one pinned core.

    python tools/bench_scenes.py [--model standard] [--core 1] [--passes 4]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="standard")
    parser.add_argument("--core", type=int, default=1, help="CPU core to pin to (-1: no pinning).")
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    import cv2

    cv2.setNumThreads(1)
    from edge_digits.vision.demo import DemoClip
    from edge_digits.vision.reader import FrameReader, load_classifier
    from edge_digits.vision.reject import load_rejector

    clf = load_classifier(args.model)
    clip = DemoClip(seed=0)
    frames = [clip.frame(i) for i in range(len(clip)) if clip.truth(i)]
    readers = {"page auto + rejection": FrameReader(clf, 0, "auto", load_rejector()),
               "whole frame, no rejection": FrameReader(clf, 0, "off", None, line_filter=False)}
    for name, reader in readers.items():
        for f in frames[:10]:
            reader.read(f)
        c0, n, digits = time.process_time(), 0, 0
        for _ in range(args.passes):
            for f in frames:
                digits += len(reader.read(f).digits)
                n += 1
        cpu = (time.process_time() - c0) / n
        print(f"{name}: {1 / cpu:.1f} frames per CPU second ({cpu * 1e3:.2f} ms a frame), "
              f"{digits / n:.1f} digits a frame, {reader.tracker.detections} page searches")


if __name__ == "__main__":
    main()
