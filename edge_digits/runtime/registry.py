"""The one list of runtime backends: the CLI's ``--backend`` choices, ``auto``'s order and what each needs.

A new backend is one module with an ``open_model(path, threads)`` that
returns a ``Session``, and one entry here.
"""

from __future__ import annotations

import importlib.util

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
)}
CHOICES = ("auto", *BACKENDS)
AUTO_ORDER = ("litert", "tflite-runtime", "tensorflow")   # the TFLite interpreters ``auto`` tries for .tflite


def available_backends() -> list[str]:
    """The backends whose module is installed here, in registry order (TensorFlow is only probed)."""
    return [name for name, b in BACKENDS.items() if importlib.util.find_spec(b.module) is not None]


def resolve_backend(backend: str = "auto", suffix: str = ".tflite") -> str:
    """The backend to use: ``backend`` itself, or for ``auto`` onnxruntime for ``.onnx`` files and the first
    installed TFLite interpreter otherwise."""
    if backend not in CHOICES:
        raise InferenceError(f"unknown backend {backend!r}: choose from {', '.join(CHOICES)}")
    if backend != "auto":
        return backend
    if suffix == ".onnx":
        return "onnxruntime"
    found = available_backends()
    for name in AUTO_ORDER:
        if name in found:
            return name
    raise InferenceError("no TFLite interpreter is installed: pip install ai-edge-litert (or tflite-runtime on a Pi)")
