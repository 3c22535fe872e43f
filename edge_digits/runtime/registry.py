"""The one list of runtime backends: the CLI's ``--backend`` choices, ``auto``'s order and what each needs.

A new backend is one module with an ``open_model(path, threads)`` that
returns a ``Session``, and one entry here. Nothing here imports numpy, so
``--help`` and the list of backends stay light.
"""

from __future__ import annotations

from edge_digits.runtime import compiler
from edge_digits.runtime.base import Backend, InferenceError

_INTERPRETER = "edge_digits.runtime.interpreter"
BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("litert", "ai_edge_litert", ".tflite", "pip install ai-edge-litert", f"{_INTERPRETER}:open_litert"),
    Backend("tflite-runtime", "tflite_runtime", ".tflite", "pip install tflite-runtime (on a Pi)",
            f"{_INTERPRETER}:open_tflite_runtime"),
    Backend("tensorflow", "tensorflow", ".tflite", "pip install tensorflow", f"{_INTERPRETER}:open_tensorflow"),
    Backend("tflm", "tflite_micro", ".tflite", "pip install 'edge-digits[micro]'",
            "edge_digits.runtime.tflm:open_model"),
    Backend("onnxruntime", "onnxruntime", ".onnx", "pip install 'edge-digits[onnx]'",
            "edge_digits.runtime.onnx:open_model"),
    # the generated C engine, compiled for this machine on first use: what it needs is a C compiler on PATH
    # (the probe); its one Python module, the tflite schema package, is a dependency of edge-digits
    Backend("native", "tflite", ".tflite", "apt install gcc (or set $CC to a C compiler)",
            "edge_digits.runtime.native:open_model", probe=compiler.available),
)}
CHOICES = ("auto", *BACKENDS)
# ``auto`` for .tflite: the TFLite interpreters first, then the native engine (a Pi without a TFLite wheel)
AUTO_ORDER = ("litert", "tflite-runtime", "tensorflow", "native")
# what ``serve`` offers: the .tflite runners made for serving, never TensorFlow
SERVE_CHOICES = ("auto", "litert", "tflite-runtime", "native")


def available_backends() -> list[str]:
    """The backends that can run here, in registry order: their module is installed and their probe agrees
    (TensorFlow is only probed, never imported)."""
    return [name for name, b in BACKENDS.items() if b.available()]


def resolve_backend(backend: str = "auto", suffix: str = ".tflite") -> str:
    """The backend to use: ``backend`` itself, or for ``auto`` onnxruntime for ``.onnx`` files and the first
    available of ``AUTO_ORDER`` otherwise."""
    if backend not in CHOICES:
        raise InferenceError(f"unknown backend {backend!r}: choose from {', '.join(CHOICES)}")
    if backend != "auto":
        return backend
    if suffix == ".onnx":
        return "onnxruntime"
    for name in AUTO_ORDER:
        if BACKENDS[name].available():
            return name
    raise InferenceError("no TFLite interpreter is installed and no C compiler for the native engine: "
                         "pip install ai-edge-litert (or tflite-runtime on a Pi), or apt install gcc")
