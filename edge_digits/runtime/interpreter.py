"""The TFLite interpreter backends: ai-edge-litert, tflite-runtime and ``tensorflow.lite`` share one API.

TensorFlow is never imported here unless the ``tensorflow`` backend is asked
for by name (it is the last fallback of ``auto``), and then by module name,
so the runtime that goes on a Pi imports only the small interpreter wheels.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.runtime.base import InferenceError, TensorQuant

MODULES = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}


def interpreter_class(backend: str) -> Any:
    """The ``Interpreter`` class of ``backend`` (one of ``MODULES``)."""
    if backend == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return importlib.import_module("tensorflow").lite.Interpreter
    return importlib.import_module(MODULES[backend]).Interpreter


def _resolver_types(backend: str) -> Any:
    """The interpreter module's ``OpResolverType`` enum (which kernels and default delegates it uses)."""
    if backend == "tensorflow":
        return importlib.import_module("tensorflow").lite.experimental.OpResolverType
    return importlib.import_module(MODULES[backend]).OpResolverType


def delegate_in_use(interp: Any) -> str:
    """What runs the model, read back from the interpreter's execution plan: "XNNPACK" when a delegate node
    replaced the builtin kernels (the default delegate of these interpreters), else "builtin kernels"."""
    try:
        ops = interp._get_ops_details()
    except AttributeError:   # an interpreter without the introspection call: say so rather than guess
        return "unknown"
    return "XNNPACK" if any(op.get("op_name") == "DELEGATE" for op in ops) else "builtin kernels"


class InterpreterSession:
    """A ``.tflite`` model in a TFLite interpreter; models with a fixed batch of 1 run image by image."""

    def __init__(self, backend: str, path: Path, threads: int, default_delegates: bool = True) -> None:
        try:
            cls = interpreter_class(backend)
        except ImportError as exc:
            raise InferenceError(f"backend {backend} is not installed: {exc}") from exc
        kwargs: dict[str, Any] = {}
        if not default_delegates:   # the builtin kernels only (XNNPACK is applied by default)
            kwargs["experimental_op_resolver_type"] = _resolver_types(backend).BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interp = cls(model_path=str(path), num_threads=threads, **kwargs)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"cannot load {path}: {exc}") from exc
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.output_shape = tuple(int(d) for d in out["shape"])
        self._in_index, self._out_index = inp["index"], out["index"]
        self.input = TensorQuant(np.dtype(inp["dtype"]), float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.output = TensorQuant(np.dtype(out["dtype"]), float(out["quantization"][0]),
                                  int(out["quantization"][1]))
        signature = inp.get("shape_signature", inp["shape"])
        self.dynamic_batch = int(signature[0]) == -1
        self.resize_free = False   # a new batch size reallocates the interpreter's tensors
        self._batch = int(self.input_shape[0])
        self.delegate = delegate_in_use(self._interp)

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.dynamic_batch:
            return self._invoke(x)
        if not len(x):
            return np.zeros((0, self.output_shape[-1]), self.output.dtype)
        return np.concatenate([self._invoke(x[i:i + 1]) for i in range(len(x))])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if self._batch != len(x):
            self._interp.resize_tensor_input(self._in_index, [len(x), 28, 28, 1])
            self._interp.allocate_tensors()
            self._batch = len(x)
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        # get_tensor returns a copy (the interpreter's buffer is reused by the next invoke): no second copy
        return np.asarray(self._interp.get_tensor(self._out_index)).reshape(len(x), -1)


def open_litert(path: Path, threads: int) -> InterpreterSession:
    return InterpreterSession("litert", path, threads)


def open_tflite_runtime(path: Path, threads: int) -> InterpreterSession:
    return InterpreterSession("tflite-runtime", path, threads)


def open_tensorflow(path: Path, threads: int) -> InterpreterSession:
    return InterpreterSession("tensorflow", path, threads)
