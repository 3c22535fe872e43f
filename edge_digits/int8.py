"""The one int8 input quantizer: every backend, the converter, the device check and the engine's test
vectors quantize MNIST pixels here, so their inputs agree bit for bit.

A model's input is pixel/255 in float; its int8 input tensor holds
round(pixel / 255 / scale) + zero_point, clamped to int8 (numpy's round: half to even, in float32, as the
TFLite converter's calibration sees it).
"""

from __future__ import annotations

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def quantize_images(images: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Map uint8 MNIST pixels (any shape) to a model's int8 input: round(pixel / 255 / scale) + zero point.

    >>> quantize_images(np.array([0, 128, 255], dtype=np.uint8), 1 / 255, -128).tolist()
    [-128, 0, 127]
    """
    x = images.astype(np.float32) / np.float32(255.0)
    q = np.round(x / np.float32(scale)) + zero_point
    out: np.ndarray = np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)
    return out
