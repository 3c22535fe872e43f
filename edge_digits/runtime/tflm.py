"""The TensorFlow Lite Micro reference interpreter (the ``tflite_micro`` Python runtime) as an oracle.

TFLM runs the same reference kernels as a microcontroller build, so its int8
outputs are the golden outputs for everything we generate. Arena probing runs
in a child process because TFLM can crash the process outright when an arena
is far too small.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.int8 import quantize_images
from edge_digits.runtime.base import InferenceError, TensorQuant

_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD_RE = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL_RE = re.compile(r"Arena allocation tail (\d+) bytes")
_RECORD_ARENA = 1 << 22


class TflmError(RuntimeError):
    """The TFLM runtime is missing, or could not load or run a model."""


@dataclass(frozen=True)
class ArenaMeasurement:
    """Arena bytes recorded by TFLM's RecordingMicroAllocator while allocating a model (64-bit host)."""

    total_bytes: int
    head_bytes: int
    tail_bytes: int
    report: str


def _require_runtime() -> Any:
    try:
        from tflite_micro import runtime
    except ImportError as exc:
        raise TflmError("the TFLM runtime is not installed: pip install 'edge-digits[micro]'") from exc
    return runtime


def _child(args: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_digits.runtime.tflm", *args], capture_output=True, text=True,
                          timeout=timeout)


def _with_model_file(model: bytes, args: list[str]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        return _child([args[0], str(path), *args[1:]])


def measure_arena(model: bytes) -> ArenaMeasurement:
    """Allocate the model in a large arena with allocation recording and read back what it used."""
    _require_runtime()
    proc = _with_model_file(model, ["record"])
    text = proc.stdout + proc.stderr
    found = _TOTAL_RE.search(text)
    if proc.returncode != 0 or found is None:
        raise TflmError(f"TFLM could not allocate the model: {(proc.stderr or proc.stdout).strip()[-500:]}")
    head, tail = _HEAD_RE.search(text), _TAIL_RE.search(text)
    report = "\n".join(line for line in text.splitlines() if "RecordingMicroAllocator" in line)
    return ArenaMeasurement(int(found.group(1)), int(head.group(1)) if head else 0,
                            int(tail.group(1)) if tail else 0, report)


def allocates(model: bytes, arena_bytes: int) -> bool:
    """True when TFLM can allocate the model's tensors in an arena of exactly ``arena_bytes``."""
    _require_runtime()
    proc = _with_model_file(model, ["allocate", str(int(arena_bytes))])
    return proc.returncode == 0


class TflmModel:
    """One model loaded in the TFLM reference interpreter, run one image at a time."""

    def __init__(self, model: bytes, arena_bytes: int | None = None) -> None:
        runtime = _require_runtime()
        try:
            self._interp = runtime.Interpreter.from_bytes(bytes(model), arena_size=arena_bytes)
        except RuntimeError as exc:
            raise TflmError(f"TFLM could not load the model: {exc}") from exc
        inp = self._interp.get_input_details(0)
        out = self._interp.get_output_details(0)
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.output_shape = tuple(int(d) for d in out["shape"])
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_scale = float(inp["quantization_parameters"]["scales"][0])
        self.input_zero_point = int(inp["quantization_parameters"]["zero_points"][0])
        self.output_dtype = np.dtype(out["dtype"])
        self.output_scale = float(out["quantization_parameters"]["scales"][0])
        self.output_zero_point = int(out["quantization_parameters"]["zero_points"][0])
        self.input = TensorQuant(self.input_dtype, self.input_scale, self.input_zero_point)
        self.output = TensorQuant(self.output_dtype, self.output_scale, self.output_zero_point)
        self.delegate = "reference kernels"
        self.dynamic_batch = False
        self.resize_free = False

    def invoke_raw(self, inputs: np.ndarray) -> np.ndarray:
        """Run each raw (already quantized) input through TFLM; returns the raw outputs stacked."""
        outs = []
        for sample in inputs:
            self._interp.set_input(sample.reshape(self.input_shape).astype(self.input_dtype), 0)
            self._interp.invoke()
            outs.append(np.array(self._interp.get_output(0)).reshape(-1))
        return np.stack(outs) if outs else np.zeros((0, 0), self.output_dtype)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The ``Session`` entry: raw outputs (N, classes) for raw inputs (N, 28, 28, 1)."""
        return self.invoke_raw(x)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Float class scores for uint8 images (N, 28, 28), dequantized from the int8 outputs."""
        raw = self.invoke_raw(quantize_images(images, self.input_scale, self.input_zero_point))
        return (raw.astype(np.float32) - self.output_zero_point) * self.output_scale


def open_model(path: Path, threads: int) -> TflmModel:
    """``Backend.open`` of the tflm backend (one thread: the reference kernels are single-threaded)."""
    try:
        return TflmModel(path.read_bytes())
    except TflmError as exc:
        raise InferenceError(str(exc)) from exc


def _main(argv: list[str]) -> int:
    """Child-process entry: ``record MODEL`` or ``allocate MODEL BYTES``."""
    from tflite_micro import runtime

    command, path = argv[0], argv[1]
    model = Path(path).read_bytes()
    if command == "record":
        interp = runtime.Interpreter.from_bytes(model, arena_size=_RECORD_ARENA)
        sys.stdout.flush()
        interp.print_allocations()
        return 0
    if command == "allocate":
        try:
            runtime.Interpreter.from_bytes(model, arena_size=int(argv[2]))
        except RuntimeError:
            return 1
        return 0
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
