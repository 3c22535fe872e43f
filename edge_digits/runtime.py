"""Running a TFLite digit classifier on a Pi or a laptop, without TensorFlow when possible.

The interpreter comes from ai-edge-litert, else tflite-runtime, else
``tensorflow.lite`` (the same API under three names), or from the TFLM
reference runtime with ``backend="tflm"``; an ``.onnx`` export runs in
onnxruntime (``backend="onnxruntime"``, which ``auto`` picks for ``.onnx``
files). Every model takes 28x28 images as pixel/255 (white ink on black);
int8 models get their input quantized here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_digits.int8 import quantize_images

BACKENDS = ("auto", "litert", "tflite-runtime", "tensorflow", "tflm", "onnxruntime")
_MODULES = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}


class InferenceError(RuntimeError):
    """No interpreter is available, or the model cannot be loaded or run."""


def _interpreter_class(backend: str):
    import importlib

    if backend == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return importlib.import_module("tensorflow").lite.Interpreter
    return importlib.import_module(_MODULES[backend]).Interpreter


def available_backends() -> list[str]:
    """The interpreters that import here, in the order ``auto`` tries them (TensorFlow is only probed)."""
    import importlib.util

    found = []
    for name, module in _MODULES.items():
        top = module.split(".")[0]
        if importlib.util.find_spec(top) is not None:
            found.append(name)
    if importlib.util.find_spec("tflite_micro") is not None:
        found.append("tflm")
    if importlib.util.find_spec("onnxruntime") is not None:
        found.append("onnxruntime")
    return found


def resolve_backend(backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise InferenceError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    for name in ("litert", "tflite-runtime", "tensorflow"):
        if name in available_backends():
            return name
    raise InferenceError("no TFLite interpreter is installed: pip install ai-edge-litert (or tflite-runtime on a Pi)")


def check_contract(name: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...], classes: int) -> None:
    """Say once, at load, when a model cannot be a digit model for the camera path: it must take one
    28x28 grey image per batch entry ((N, 28, 28, 1) or (N, 28, 28)) and give ``classes`` scores.

    >>> check_contract("m", (1, 28, 28, 1), (1, 10), 10)
    >>> check_contract("m", (1, 32, 32, 1), (1, 10), 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edge_digits.runtime.InferenceError: model m takes input of shape (1, 32, 32, 1); ... shape (N, 28, 28, 1)
    """
    dims = tuple(int(d) for d in input_shape)
    if not (dims[1:] == (28, 28, 1) or dims[1:] == (28, 28)):
        raise InferenceError(f"model {name} takes input of shape {dims}; edge-digits models take one 28x28 grey "
                             "digit, shape (N, 28, 28, 1)")
    out = tuple(int(d) for d in output_shape)
    if not out or out[-1] != classes:
        raise InferenceError(f"model {name} gives output of shape {out}; a digit model gives {classes} scores, "
                             f"shape (N, {classes})")


@dataclass(frozen=True)
class TensorQuant:
    dtype: np.dtype
    scale: float
    zero_point: int


class Classifier:
    """A loaded digit model: ``predict`` maps uint8 images (N, 28, 28) to class scores (N, 10)."""

    def __init__(self, model: str | os.PathLike[str], backend: str = "auto", threads: int = 1,
                 classes: int = 10) -> None:
        self.model_path = Path(model)
        if not self.model_path.is_file():
            raise InferenceError(f"model {self.model_path} does not exist")
        is_onnx = self.model_path.suffix == ".onnx"
        self.backend = "onnxruntime" if is_onnx and backend == "auto" else resolve_backend(backend)
        if is_onnx != (self.backend == "onnxruntime"):
            raise InferenceError(f"backend {self.backend} cannot run {self.model_path.name}: .onnx files run on "
                                 "the onnxruntime backend, .tflite files on the others")
        self.threads = threads
        self.delegate = "reference kernels"
        if self.backend == "onnxruntime":
            from edge_digits.onnx_model import OnnxError, OnnxSession

            try:
                self._onnx = OnnxSession(self.model_path, threads)
            except OnnxError as exc:
                raise InferenceError(str(exc)) from exc
            check_contract(self.model_path.name, self._onnx.input_shape, self._onnx.output_shape, classes)
            self.input = TensorQuant(np.dtype(np.int8), self._onnx.input_scale, self._onnx.input_zero_point)
            self.output = TensorQuant(np.dtype(np.int8), self._onnx.output_scale, self._onnx.output_zero_point)
            self.dynamic_batch = True
            self.delegate = "CPU execution provider"
            return
        if self.backend == "tflm":
            from edge_digits.tflm import TflmModel

            self._tflm = TflmModel(self.model_path.read_bytes())
            check_contract(self.model_path.name, self._tflm.input_shape, self._tflm.output_shape, classes)
            self.input = TensorQuant(np.dtype(self._tflm.input_dtype), self._tflm.input_scale,
                                     self._tflm.input_zero_point)
            self.output = TensorQuant(np.dtype(self._tflm.output_dtype), self._tflm.output_scale,
                                      self._tflm.output_zero_point)
            self.dynamic_batch = False
            return
        try:
            cls = _interpreter_class(self.backend)
        except ImportError as exc:
            raise InferenceError(f"backend {self.backend} is not installed: {exc}") from exc
        try:
            self._interp = cls(model_path=str(self.model_path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"cannot load {self.model_path}: {exc}") from exc
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        check_contract(self.model_path.name, tuple(inp["shape"]), tuple(out["shape"]), classes)
        self._in_index, self._out_index = inp["index"], out["index"]
        self.input = TensorQuant(np.dtype(inp["dtype"]), float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.output = TensorQuant(np.dtype(out["dtype"]), float(out["quantization"][0]),
                                  int(out["quantization"][1]))
        signature = inp.get("shape_signature", inp["shape"])
        self.dynamic_batch = int(signature[0]) == -1
        self._batch = 0
        self.delegate = "XNNPACK" if self.input.dtype in (np.int8, np.float32) else "builtin kernels"

    def quantize(self, images: np.ndarray) -> np.ndarray:
        """Images as the model's input tensor: pixel/255, quantized for int8 models, shape (N, 28, 28, 1)."""
        if self.input.dtype == np.int8:
            return quantize_images(images, self.input.scale, self.input.zero_point)[..., None]
        return images.astype(np.float32)[..., None] / np.float32(255.0)

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        if self.output.dtype == np.int8:
            return (raw.astype(np.float32) - self.output.zero_point) * np.float32(self.output.scale)
        return raw.astype(np.float32)

    def predict_raw(self, images: np.ndarray) -> np.ndarray:
        """The output tensor as the model gives it (int8 for int8 models), for images (N, 28, 28)."""
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise InferenceError(f"images must have shape (N, 28, 28), not {images.shape}")
        x = self.quantize(images)
        if self.backend == "tflm":
            return self._tflm.invoke_raw(x)
        if self.backend == "onnxruntime":
            return self._onnx.run(x)
        if self.dynamic_batch:
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i:i + 1]) for i in range(len(x))]) if len(x) else \
            np.zeros((0, 10), self.output.dtype)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if self._batch != len(x):
            self._interp.resize_tensor_input(self._in_index, [len(x), 28, 28, 1])
            self._interp.allocate_tensors()
            self._batch = len(x)
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out_index).reshape(len(x), -1).copy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class scores (N, 10) as floats for uint8 images (N, 28, 28)."""
        return self.dequantize(self.predict_raw(images))

    def predict_batched(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """``predict`` in chunks, so memory stays bounded for the whole test set."""
        return np.concatenate([self.predict(images[i:i + batch]) for i in range(0, len(images), batch)]) \
            if len(images) else np.zeros((0, 10), np.float32)
