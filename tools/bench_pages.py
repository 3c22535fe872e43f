"""Page finding on every set at hand: the shared scenes (truth from their crops), composed folders
(truth.json page corners) and frames of demo clips of other seeds; pages within 3% of the diagonal
and the median search time.

    python tools/bench_pages.py [COMPOSED_DIR ...] [--demo-seeds 1-6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="folders made by edge-digits compose-scenes")
    parser.add_argument("--demo-seeds", default="1-6", help="demo clip seeds, FIRST-LAST (four sheets each)")
    args = parser.parse_args()
    from edge_digits.vision import scenes
    from edge_digits.vision.demo import DemoClip
    from edge_digits.vision.page import Quad, corner_error, find_page

    sets: dict[str, list[tuple[np.ndarray, Quad]]] = {}
    pages = scenes.evaluate_pages()
    sets["shared scenes"] = [(cv2.imread(str(Path(pages.folder) / s.image)), Quad(np.float32(s.truth)))
                             for s in pages.scenes]
    first, last = (int(v) for v in args.demo_seeds.split("-"))
    demo = []
    for seed in range(first, last + 1):
        clip = DemoClip(seed=seed)
        demo += [(clip.frame(s * clip.frames_per_sheet + 3), Quad(clip._poses[s])) for s in range(len(clip.sheets))]
    sets[f"demo seeds {args.demo_seeds}"] = demo
    for folder in args.folders:
        items = json.loads((folder / "truth.json").read_text())["items"]
        sets[folder.name] = [(cv2.imread(str(folder / it["image"])), Quad(np.float32(it["page"]))) for it in items]
    total = found = 0
    for name, items in sets.items():
        ok, ms = 0, []
        for frame, truth in items:
            t0 = time.perf_counter()
            page = find_page(frame)
            ms.append((time.perf_counter() - t0) * 1e3)
            ok += page is not None and not page.whole_frame and corner_error(page.quad, truth) <= scenes.CORNER_GOAL
        total, found = total + len(items), found + ok
        print(f"{name}: {ok}/{len(items)} within 3%, median {statistics.median(ms):.1f} ms a search")
    print(f"all: {found}/{total}")


if __name__ == "__main__":
    main()
