"""Accuracy of any float or int8 TFLite model on the 10,000 MNIST test images, with any backend."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.runtime import Classifier


@dataclass(frozen=True)
class EvalResult:
    model: str
    backend: str
    count: int
    accuracy: float
    per_class_accuracy: list[float]
    confusion: list[list[int]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_tflite(model: Path, backend: str = "auto", threads: int = 1, limit: int = 0,
                    cache_dir: Path | None = None) -> EvalResult:
    """Classify the MNIST test set (or its first ``limit`` images) and tally the confusion matrix."""
    from edge_digits.data import load_mnist
    from edge_digits.scoring import confusion, per_class_accuracy

    _, _, x_test, y_test = load_mnist(cache_dir)
    if limit:
        x_test, y_test = x_test[:limit], y_test[:limit]
    classifier = Classifier(model, backend=backend, threads=threads)
    started = time.perf_counter()
    pred = classifier.predict_batched(x_test).argmax(axis=1)
    seconds = time.perf_counter() - started
    m = confusion(y_test, pred)
    return EvalResult(str(model), classifier.backend, int(len(y_test)), float(np.mean(pred == y_test)),
                      per_class_accuracy(m), m.tolist(), round(seconds, 3))
