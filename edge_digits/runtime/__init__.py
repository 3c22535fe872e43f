"""The runtime stage: running a digit model on a Pi or a laptop, without TensorFlow when possible.

One module per backend (``interpreter``: ai-edge-litert, tflite-runtime and
``tensorflow.lite``; ``tflm``: the TFLM reference interpreter; ``onnx``:
onnxruntime; ``native``: the C engine of ``edge_digits.engine`` compiled for
this machine by ``compiler``'s C compiler and called through ctypes), each
opening a model into a ``base.Session``; ``registry`` is
the one list of them that the CLI reads; ``classifier.Classifier`` runs any
of them on uint8 images. Importing this package is cheap: the classifier
(and numpy) load on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edge_digits.runtime.base import Backend, InferenceError, TensorQuant, check_contract
from edge_digits.runtime.registry import BACKENDS, CHOICES, available_backends, resolve_backend

if TYPE_CHECKING:
    from edge_digits.runtime.classifier import Classifier

__all__ = ["BACKENDS", "CHOICES", "Backend", "Classifier", "InferenceError", "TensorQuant", "available_backends",
           "check_contract", "resolve_backend"]


def __getattr__(name: str) -> Any:
    if name == "Classifier":
        return importlib.import_module("edge_digits.runtime.classifier").Classifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
