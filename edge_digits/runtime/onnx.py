"""The onnxruntime backend: runs an ``.onnx`` export of an int8 model (see ``deploy.onnx``).

ONNX has no place for a tensor's quantization, so the export carries the
input and output scale and zero point as metadata (``edge_digits.*`` keys),
read here to quantize images exactly as the TFLite runners do.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.runtime.base import InferenceError, TensorQuant

META = ("input_scale", "input_zero_point", "output_scale", "output_zero_point")


class OnnxError(RuntimeError):
    """tf2onnx or onnxruntime is missing, or the model cannot be exported or run."""


def require(module: str, extra: str = "onnx") -> Any:
    """Import ``module``, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OnnxError(f"{module} is not installed: pip install 'edge-digits[{extra}]'") from exc


class OnnxSession:
    """An exported model in onnxruntime: ``run`` maps int8 input (N, 28, 28, 1) to int8 scores (N, 10)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise OnnxError(f"cannot load {path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        missing = [k for k in META if f"edge_digits.{k}" not in meta]
        if missing:
            raise OnnxError(f"{path} has no edge_digits quantization metadata ({', '.join(missing)}): export it "
                            "with edge-digits convert --format onnx")
        self.input_scale = float(meta["edge_digits.input_scale"])
        self.input_zero_point = int(meta["edge_digits.input_zero_point"])
        self.output_scale = float(meta["edge_digits.output_scale"])
        self.output_zero_point = int(meta["edge_digits.output_zero_point"])
        self.input = TensorQuant(np.dtype(np.int8), self.input_scale, self.input_zero_point)
        self.output = TensorQuant(np.dtype(np.int8), self.output_scale, self.output_zero_point)
        self.delegate = "CPU execution provider"
        self.dynamic_batch = True
        self.resize_free = True
        self._input = self._session.get_inputs()[0].name
        self.input_shape = tuple(d if isinstance(d, int) else 1 for d in self._session.get_inputs()[0].shape)
        self.output_shape = tuple(d if isinstance(d, int) else 1 for d in self._session.get_outputs()[0].shape)

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input: x})[0]).reshape(len(x), -1)


def open_model(path: Path, threads: int) -> OnnxSession:
    """``Backend.open`` of the onnxruntime backend (its errors as ``InferenceError``)."""
    try:
        return OnnxSession(path, threads)
    except OnnxError as exc:
        raise InferenceError(str(exc)) from exc
