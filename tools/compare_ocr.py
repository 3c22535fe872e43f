"""Read digit strings with general OCR engines (RapidOCR, Tesseract) and score them like edge-digits.

A user might pick a general OCR engine instead of edge-digits; this measures
what that gives on the same folders of photos (images plus ``truth.json``, see
``edge_digits.vision.photos``). Each image is turned clockwise by its ``rotate_cw``
(default 0), so every engine gets the upright frame edge-digits gets with
``--rotate``. What an engine reads is reduced to digit lines the same way for
every engine (:func:`assemble_lines`: digits only, rows top to bottom, a row's
pieces joined unless a gap of a box height parts them) and scored with
``edge_digits.scoring.score_lines``. An item with ``"lines": []`` is a blank
sheet: every digit read there is a phantom (counted apart from the accuracy).

Engines, each on one thread (``OMP_NUM_THREADS=1``, the process pinned to one
core, which the tesseract child inherits):

- ``rapidocr``: PP-OCRv4 detection, angle classifier and recognition from the
  ``rapidocr-onnxruntime`` wheel (models ship in the wheel, nothing is
  downloaded), default settings, onnxruntime sessions with
  ``intra_op_num_threads=1`` and ``inter_op_num_threads=1``.
  Install: ``pip install rapidocr-onnxruntime`` (it requires opencv-python; next to
  opencv-python-headless install it with ``--no-deps`` plus pyclipper, shapely, six,
  pyyaml, pillow, tqdm, onnxruntime).
- ``tesseract``: the ``tesseract`` binary (LSTM, ``eng``) on the grey frame with
  ``--psm 11`` (sparse text) and ``-c tessedit_char_whitelist=0123456789``,
  ``OMP_THREAD_LIMIT=1``, TSV output. On the photos psm 11 read 37% of the digits,
  psm 3, 4 and 6 27-28%, psm 12 as many as 11 but slower. The frame is not
  binarised first (a user would not; Tesseract's own Otsu threshold suffers
  from the shadows). Install: ``apt-get install tesseract-ocr``.

Timing: one untimed warm-up read, then each frame once; wall seconds per frame
(median) and CPU seconds per frame (median of this process's plus its
children's CPU time, so the tesseract subprocess is counted).

    python tools/compare_ocr.py DIR [DIR ...] [--engines rapidocr,tesseract] [--json OUT.json] [--limit N]

Another benchmark can load this file with importlib and use ``ocr_engines()``
and ``evaluate(engine_fn, folder)`` with its own reader.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy, OpenCV and onnxruntime load: every engine on one thread

import argparse
import csv
import io
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_digits.scoring import score_lines  # noqa: E402

EngineFn = Callable[[np.ndarray], list[str]]
DIGITS = frozenset("0123456789")
JOIN_GAP = 1.0  # fragments of a row closer than this many fragment heights are one written line
TESSERACT_PSM = 11
ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
INSTALL = {"edge-digits": "pip install edge-digits", "rapidocr": "pip install rapidocr-onnxruntime",
           "tesseract": "apt-get install tesseract-ocr"}


class EngineMissing(RuntimeError):  # noqa: N818 (reads as the condition it reports)
    """The engine's package or binary is not installed."""


class Fragment(NamedTuple):
    """One piece of text an engine found, with its axis-aligned box in pixels.

    A NamedTuple, not a dataclass, so the file loads with importlib without an entry in sys.modules.
    """

    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def height(self) -> float:
        return self.bottom - self.top


def digits_only(text: str) -> str:
    """Keep the characters 0-9.

    >>> digits_only("5/00. b")
    '500'
    """
    return "".join(c for c in text if c in DIGITS)


def _same_row(a: Fragment, b: Fragment) -> bool:
    """Boxes that share more than half the smaller one's height are on one row."""
    overlap = min(a.bottom, b.bottom) - max(a.top, b.top)
    return overlap > 0.5 * min(a.height, b.height)


def _rows(fragments: list[Fragment]) -> list[list[Fragment]]:
    """Group fragments into rows, top to bottom (a row is placed by its first, topmost fragment)."""
    rows: list[list[Fragment]] = []
    for f in sorted(fragments, key=lambda f: f.top):
        row = next((r for r in rows if _same_row(r[0], f)), None)
        if row is None:
            rows.append([f])
        else:
            row.append(f)
    return rows


def _join_row(row: list[Fragment]) -> list[str]:
    """A row's lines left to right: neighbours closer than JOIN_GAP heights are joined, a wider gap starts a column."""
    row = sorted(row, key=lambda f: f.left)
    height = statistics.median(f.height for f in row)
    lines = [row[0].text]
    for prev, f in pairwise(row):
        if f.left - prev.right < JOIN_GAP * height:
            lines[-1] += f.text
        else:
            lines.append(f.text)
    return lines


def assemble_lines(fragments: Iterable[Fragment]) -> list[str]:
    """Digit lines in reading order: rows top to bottom, columns left to right (what truth.json lists).

    Engines split a written line with wide spacing into several boxes; a piece
    is joined to its left neighbour unless a gap of a box height or more parts
    them (edge-digits' own rule likewise starts a new line at a wide gap, and
    orders rows and columns the same way).

    >>> assemble_lines([Fragment("4899", 307, 13, 482, 101), Fragment("19 67", 125, 24, 262, 91),
    ...                 Fragment("354708745", 50, 139, 274, 201), Fragment("x", 0, 300, 9, 320)])
    ['19674899', '354708745']
    """
    kept = [f._replace(text=digits_only(f.text)) for f in fragments]
    return [line for row in _rows([f for f in kept if f.text]) for line in _join_row(row)]


def _rapidocr() -> EngineFn:
    """RapidOCR with its bundled PP-OCRv4 models, onnxruntime on one thread."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise EngineMissing(str(exc)) from exc
    ocr = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def read(image: np.ndarray) -> list[str]:
        result, _ = ocr(image)
        return assemble_lines(_quad_fragment(text, box) for box, text, _score in result or [])

    return read


def _quad_fragment(text: str, quad: list[list[float]]) -> Fragment:
    """A fragment boxed by the bounding rectangle of a detected quadrilateral."""
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return Fragment(text, min(xs), min(ys), max(xs), max(ys))


def _tesseract() -> EngineFn:
    """The tesseract binary with a digits whitelist, one OpenMP thread, words grouped by its own lines."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise EngineMissing("no tesseract binary on PATH")
    cmd = [exe, "stdin", "stdout", "--psm", str(TESSERACT_PSM), "-c", "tessedit_char_whitelist=0123456789", "tsv"]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def read(image: np.ndarray) -> list[str]:
        ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        if not ok:
            raise RuntimeError("cannot encode the frame as PNG")
        out = subprocess.run(cmd, input=png.tobytes(), capture_output=True, check=True, env=env).stdout
        return assemble_lines(tsv_fragments(out.decode()))

    return read


def tsv_fragments(tsv: str) -> list[Fragment]:
    """Tesseract's TSV words, one fragment per line it found (words left to right, the union of their boxes)."""
    lines: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for w in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        if w["level"] == "5" and (w["text"] or "").strip():
            lines.setdefault((w["page_num"], w["block_num"], w["par_num"], w["line_num"]), []).append(w)
    return [_words_fragment(words) for words in lines.values()]


def _words_fragment(words: list[dict[str, str]]) -> Fragment:
    """One fragment from the TSV words of one line."""
    words = sorted(words, key=lambda w: int(w["left"]))
    lefts, tops = [int(w["left"]) for w in words], [int(w["top"]) for w in words]
    rights = [x + int(w["width"]) for x, w in zip(lefts, words, strict=True)]
    bottoms = [y + int(w["height"]) for y, w in zip(tops, words, strict=True)]
    return Fragment("".join(w["text"] for w in words), min(lefts), min(tops), max(rights), max(bottoms))


def _edge_digits() -> EngineFn:
    """edge-digits itself as ``run`` reads a frame: the bundled ``standard`` model, page finding, rejection."""
    try:
        from edge_digits.vision.reader import FrameReader, load_classifier, make_rejector
    except ImportError as exc:
        raise EngineMissing(str(exc)) from exc
    reader = FrameReader(load_classifier("standard"), 0, "auto", make_rejector("auto"))

    def read(image: np.ndarray) -> list[str]:
        reader.reset()
        return reader.read(image).lines

    return read


FACTORIES: dict[str, Callable[[], EngineFn]] = {"edge-digits": _edge_digits, "rapidocr": _rapidocr,
                                                "tesseract": _tesseract}


def ocr_engines(names: Iterable[str] | None = None) -> dict[str, EngineFn]:
    """Name -> function from a BGR upright image to its digit lines, for the engines that are installed.

    A missing engine is skipped with a line on stderr saying what to install.
    """
    engines: dict[str, EngineFn] = {}
    for name in names if names is not None else FACTORIES:
        try:
            engines[name] = FACTORIES[name]()
        except EngineMissing as exc:
            print(f"{name}: not installed ({exc}); skipped. Install it with: {INSTALL[name]}", file=sys.stderr)
    return engines


def engine_versions() -> dict[str, str]:
    """Installed versions of the engines (and onnxruntime), for the record."""
    versions = {}
    for pkg in ("rapidocr-onnxruntime", "onnxruntime"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    exe = shutil.which("tesseract")
    if exe:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        versions["tesseract"] = out.split("\n", 1)[0].removeprefix("tesseract ").strip()
    return versions


def load_items(folder: Path) -> list[dict[str, Any]]:
    """The ``items`` of ``folder/truth.json``."""
    return list(json.loads((Path(folder) / "truth.json").read_text())["items"])


def upright(image: np.ndarray, rotate_cw: int) -> np.ndarray:
    """Turn an image clockwise by 0, 90, 180 or 270 degrees."""
    d = rotate_cw % 360
    return image if d == 0 else cv2.rotate(image, ROTATIONS[d])


def load_frame(folder: Path, item: dict[str, Any]) -> np.ndarray:
    """An item's image, upright."""
    path = Path(folder) / str(item["image"])
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return upright(image, int(item.get("rotate_cw", 0)))


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (the tesseract subprocess)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def timed_read(engine_fn: EngineFn, frame: np.ndarray) -> tuple[list[str], float, float]:
    """The lines an engine reads in a frame, with wall and CPU seconds."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    lines = engine_fn(frame)
    return lines, time.perf_counter() - t0, cpu_seconds() - c0


class FrameResult(NamedTuple):
    """One frame: truth, what was read, digits, edits, exact lines and its times."""

    image: str
    truth: list[str]
    read: list[str]
    digits: int
    errors: int
    lines_exact: int
    seconds: float
    cpu_seconds: float


def score_frame(item: dict[str, Any], read: list[str], wall: float, cpu: float) -> FrameResult:
    """Score what was read in one frame against its truth lines."""
    truth = [str(s) for s in item["lines"]]
    s = score_lines(truth, read)
    return FrameResult(str(item["image"]), truth, read, s.digits, s.errors, s.lines_exact, wall, cpu)


def summarize(folder: Path, frames: list[FrameResult]) -> dict[str, Any]:
    """Set totals: digit accuracy over sheets with digits, phantom digits over blank sheets, median times."""
    written = [r for r in frames if r.truth]
    blank = [r for r in frames if not r.truth]
    digits, errors = sum(r.digits for r in written), sum(r.errors for r in written)
    phantoms = sum(r.errors for r in blank)
    median_s = statistics.median(r.seconds for r in frames)
    return {
        "set": folder.name, "folder": str(folder), "frames": len(frames),
        "digits": digits, "digit_errors": errors, "digits_right": max(0, digits - errors),
        "digit_accuracy": round(max(0.0, 1 - errors / digits), 4) if digits else None,
        "lines": sum(len(r.truth) for r in written), "lines_exact": sum(r.lines_exact for r in written),
        "blank_frames": len(blank), "phantom_digits": phantoms,
        "phantom_digits_per_blank_frame": round(phantoms / len(blank), 3) if blank else None,
        "median_s": round(median_s, 5), "fps": round(1 / median_s, 2) if median_s > 0 else None,
        "median_cpu_s": round(statistics.median(r.cpu_seconds for r in frames), 5),
        "items": [r._asdict() | {"seconds": round(r.seconds, 5), "cpu_seconds": round(r.cpu_seconds, 5)}
                  for r in frames],
    }


def evaluate(engine_fn: EngineFn, folder: Path | str, limit: int | None = None) -> dict[str, Any]:
    """Read every image of ``folder/truth.json`` (the first ``limit``) with one engine, timed, and score it.

    The first frame is read once untimed first (model loading, caches).
    """
    folder = Path(folder)
    todo = load_items(folder)[:limit]
    if not todo:
        raise ValueError(f"no items in {folder / 'truth.json'}")
    frames = [load_frame(folder, it) for it in todo]
    engine_fn(frames[0])
    return summarize(folder, [score_frame(it, *timed_read(engine_fn, f)) for it, f in zip(todo, frames, strict=True)])


def table_row(engine: str, r: dict[str, Any]) -> str:
    """One Markdown row of the comparison."""
    acc = f"{r['digit_accuracy']:.1%} ({r['digits_right']}/{r['digits']})" if r["digits"] else "-"
    lines = f"{r['lines_exact']}/{r['lines']}" if r["lines"] else "-"
    blank = f"{r['phantom_digits_per_blank_frame']:.2f} ({r['blank_frames']} frames)" if r["blank_frames"] else "-"
    fps = f"{r['fps']:.1f}" if r["fps"] else "-"
    return (f"| {r['set']} | {engine} | {acc} | {lines} | {blank} | {r['median_s']:.4f} | {fps} "
            f"| {r['median_cpu_s']:.4f} |")


def markdown_table(results: list[tuple[str, dict[str, Any]]]) -> str:
    """The comparison table: one row per set and engine."""
    head = ("| set | engine | digit accuracy (right/total) | exact lines | phantom digits / blank frame "
            "| median s/frame | frames/s | median CPU s/frame |\n|---|---|---|---|---|---|---|---|")
    return "\n".join([head] + [table_row(engine, r) for engine, r in results])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="folder with images and truth.json")
    parser.add_argument("--engines", default=",".join(FACTORIES), help="comma-separated: " + ", ".join(FACTORIES))
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the figures here")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N items of each set")
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin to (-1: do not pin)")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in args.engines if e not in FACTORIES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(FACTORIES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    cv2.setNumThreads(1)
    engines = ocr_engines(args.engines)
    if not engines:
        print("no OCR engine can run; install one of them (see above)", file=sys.stderr)
        return 1
    results = [(name, evaluate(fn, folder, args.limit)) for folder in args.dirs for name, fn in engines.items()]
    versions = engine_versions()
    print(markdown_table(results))
    print(f"\n{', '.join(f'{k} {v}' for k, v in versions.items())}; one thread"
          + (f", pinned to core {args.core}" if args.core >= 0 else ""))
    if args.json:
        doc = {"versions": versions, "core": args.core, "results": [{"engine": n, **r} for n, r in results]}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
