"""Benchmark the native C engine against TensorFlow Lite Micro for int8 models.

For each model: scratch RAM vs the smallest TFLM arena that allocates
(bisection with the tflite_micro runtime), weights+code flash (``size`` of
objects built with -Os) vs the flatbuffer size, host time per inference, and
instructions per inference counted with valgrind's callgrind: for the engine
a C loop with ``--toggle-collect=ed_invoke``; for TFLM a Python script with
``--toggle-collect='tflite::micro::MicroInterpreter::Invoke()'`` so only the
interpreter's Invoke (all kernels, no Python) is counted. Both divide by the
number of invocations. Prints a Markdown table.

Run: PYTHONPATH=. EDGE_DIGITS_DATA=.data .venv/bin/python tools/bench_engine.py [MODEL.tflite ...]
(default: the bundled models in edge_digits/models/).
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_digits.engine.generate import generate  # noqa: E402

BENCH_C = ROOT / "firmware" / "host" / "ed_bench.c"
TFLM_INVOKE = "tflite::micro::MicroInterpreter::Invoke()"
RUNS = 3


@dataclass(frozen=True)
class EngineFigures:
    """Native engine vs TFLM for one model."""

    model: str
    scratch_bytes: int
    io_bytes: int
    tflm_arena_bytes: int
    weight_bytes: int
    engine_flash_bytes: int
    flatbuffer_bytes: int
    engine_us: float
    tflm_us: float
    engine_instr: int
    engine_instr_o2: int
    tflm_instr: int


def tflm_min_arena(model: bytes, hi: int = 4 << 20) -> int:
    """The smallest arena_size (16-byte steps) with which the tflite_micro runtime allocates the model."""
    from tflite_micro import runtime

    def ok(size: int) -> bool:
        saved = os.dup(2)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)  # TFLM logs every failed allocation on stderr
            try:
                runtime.Interpreter.from_bytes(model, arena_size=size)
                return True
            except RuntimeError:
                return False
            finally:
                os.dup2(saved, 2)
                os.close(saved)

    lo = 16
    if not ok(hi):
        raise RuntimeError("TFLM cannot allocate the model even in 4 MiB")
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _build(gen: Path, flags: list[str], exe: Path) -> Path:
    sources = sorted(str(p) for p in gen.glob("*.c"))
    subprocess.run(["cc", "-std=c99", *flags, "-I", str(gen), *sources, str(BENCH_C), "-o", str(exe)], check=True)
    return exe


def flash_bytes(gen: Path, work: Path) -> int:
    """text + data of every generated object built with -Os (weights are const, so they count in text)."""
    total = 0
    for src in sorted(gen.glob("*.c")):
        obj = work / (src.stem + ".o")
        subprocess.run(["cc", "-std=c99", "-Os", "-I", str(gen), "-c", str(src), "-o", str(obj)], check=True)
        out = subprocess.run(["size", str(obj)], check=True, capture_output=True, text=True).stdout
        text, data = (int(v) for v in out.splitlines()[1].split()[:2])
        total += text + data
    return total


def callgrind(cmd: list[str], toggle: str) -> int:
    """Instructions executed inside the toggle function, as callgrind counts them."""
    with tempfile.NamedTemporaryFile(suffix=".cg") as out:
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
                               f"--toggle-collect={toggle}", *cmd], capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None or int(match.group(1)) == 0:
        raise RuntimeError(f"callgrind counted nothing for {toggle}:\n{proc.stderr[-2000:]}")
    return int(match.group(1))


_TFLM_SCRIPT = """
import sys, time, numpy as np
from tflite_micro import runtime
it = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
x = ((np.arange(784) * 37) % 256 - 128).astype(np.int8).reshape(1, 28, 28, 1)
it.set_input(x, 0)
runs = int(sys.argv[3])
start = time.perf_counter()
for _ in range(runs):
    it.invoke()
print((time.perf_counter() - start) / runs * 1e6)
"""


def bench_model(model: Path, work: Path) -> EngineFigures:
    """All figures for one model (generation, builds and callgrind runs happen under ``work``)."""
    data = model.read_bytes()
    gen = work / "gen"
    result = generate(model, gen)
    arena = tflm_min_arena(data)
    o3 = _build(gen, ["-O3"], work / "bench_o3")
    o2 = _build(gen, ["-O2"], work / "bench_o2")
    script = work / "tflm_invoke.py"
    script.write_text(_TFLM_SCRIPT)
    probe = subprocess.run([str(o3), "1"], check=True, capture_output=True, text=True).stdout
    once_us = max(float(probe.split()[3]), 1.0)
    runs = max(10, int(2e6 / once_us))
    out = subprocess.run([str(o3), str(runs)], check=True, capture_output=True, text=True).stdout
    engine_us = float(out.split()[3])
    tflm_runs = max(10, runs // 4)
    tflm_us = float(subprocess.run([sys.executable, str(script), str(model), str(arena + 4096), str(tflm_runs)],
                                   check=True, capture_output=True, text=True).stdout.split()[-1])
    engine_instr = callgrind([str(o3), str(RUNS)], "ed_invoke") // RUNS
    engine_instr_o2 = callgrind([str(o2), str(RUNS)], "ed_invoke") // RUNS
    tflm_instr = callgrind([sys.executable, str(script), str(model), str(arena + 4096), str(RUNS)], TFLM_INVOKE) // RUNS
    return EngineFigures(model.name, result.scratch_bytes, result.input_size + result.output_size, arena,
                         result.weight_bytes, flash_bytes(gen, work), len(data), engine_us, tflm_us, engine_instr,
                         engine_instr_o2, tflm_instr)


def markdown(rows: list[EngineFigures]) -> str:
    """The results as a Markdown table with the ratios the issue asks for."""
    head = ("| model | scratch RAM (B) | TFLM arena (B) | RAM ratio | +I/O buffers (B) | weights (B) "
            "| weights+code flash (B) | flatbuffer (B) | host µs engine | host µs TFLM "
            "| instr/inference engine -O3 (-O2) | instr/inference TFLM | instr ratio |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.scratch_bytes:,} | {r.tflm_arena_bytes:,} | {r.scratch_bytes / r.tflm_arena_bytes:.0%} "
            f"| {r.scratch_bytes + r.io_bytes:,} | {r.weight_bytes:,} | {r.engine_flash_bytes:,} "
            f"| {r.flatbuffer_bytes:,} | {r.engine_us:,.1f} | {r.tflm_us:,.1f} "
            f"| {r.engine_instr:,} ({r.engine_instr_o2:,}) | {r.tflm_instr:,} | {r.tflm_instr / r.engine_instr:.1f}x |")
    return "\n".join(lines)


def default_models() -> list[Path]:
    folder = Path(str(importlib.resources.files("edge_digits") / "models"))
    return sorted(p for p in folder.glob("*_int8.tflite")) if folder.is_dir() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    args = parser.parse_args()
    models = args.models or default_models()
    if not models:
        sys.exit("no models given and none bundled in edge_digits/models/")
    rows = []
    for model in models:
        with tempfile.TemporaryDirectory() as work:
            rows.append(bench_model(model, Path(work)))
            print(f"{model.name}: done", file=sys.stderr, flush=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
