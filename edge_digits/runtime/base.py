"""What every runtime backend shares: the error it raises, its tensors' quantization, the digit-model
contract, the small protocol a loaded model (a session) follows, and the description of a backend.

Nothing here imports numpy or an interpreter, so the CLI can list the
backends without loading either.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


class InferenceError(RuntimeError):
    """No interpreter is available, or the model cannot be loaded or run."""


@dataclass(frozen=True)
class TensorQuant:
    """A tensor's type and, for int8, its scale and zero point (real = scale * (q - zero_point))."""

    dtype: np.dtype
    scale: float
    zero_point: int


def check_contract(name: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...], classes: int) -> None:
    """Say once, at load, when a model cannot be a digit model for the camera path: it must take one
    28x28 grey image per batch entry ((N, 28, 28, 1) or (N, 28, 28)) and give ``classes`` scores.

    >>> check_contract("m", (1, 28, 28, 1), (1, 10), 10)
    >>> check_contract("m", (1, 32, 32, 1), (1, 10), 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edge_digits.runtime.base.InferenceError: model m takes input of shape (1, 32, 32, 1); ... shape (N, 28, 28, 1)
    """
    dims = tuple(int(d) for d in input_shape)
    if not (dims[1:] == (28, 28, 1) or dims[1:] == (28, 28)):
        raise InferenceError(f"model {name} takes input of shape {dims}; edge-digits models take one 28x28 grey "
                             "digit, shape (N, 28, 28, 1)")
    out = tuple(int(d) for d in output_shape)
    if not out or out[-1] != classes:
        raise InferenceError(f"model {name} gives output of shape {out}; a digit model gives {classes} scores, "
                             f"shape (N, {classes})")


class Session(Protocol):
    """A model loaded by one backend: ``run`` maps the input tensor (N, 28, 28, 1), already quantized for
    int8 models, to the raw output tensor (N, classes). ``dynamic_batch``: one call takes any N (else the
    session runs image by image). ``resize_free``: any N runs with nothing to reallocate, so a caller need not
    keep one session per batch size or pad batches to those sizes (the native engine, onnxruntime)."""

    input: TensorQuant
    output: TensorQuant
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    delegate: str
    dynamic_batch: bool
    resize_free: bool

    def run(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Backend:
    """One way to run a model: its name on the command line, the Python module whose presence makes it
    available (None: none), the file type it runs, what installs it, and ``opener`` ("module:function"),
    the function that loads a model into a ``Session``, imported only when a model is opened.

    ``probe``, when given, is a further check of availability that is no Python module (the native
    backend's C compiler on PATH); it must be cheap and must not import numpy.
    """

    name: str
    module: str | None
    suffix: str
    install: str
    opener: str
    probe: Callable[[], bool] | None = None

    def available(self) -> bool:
        """Whether this backend can run here: its module is installed and its probe (if any) agrees."""
        if self.module is not None and importlib.util.find_spec(self.module) is None:
            return False
        return self.probe is None or self.probe()

    def open(self, path: Path, threads: int) -> Session:
        module, function = self.opener.split(":")
        opened: Session = getattr(importlib.import_module(module), function)(path, threads)
        return opened
