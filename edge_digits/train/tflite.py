"""TensorFlow for the training stage, and the one Keras-to-TFLite converter set-up.

Every int8 model this project makes (the trainer, ``convert``, the
rejection trainer, the engine's test models) is converted here, so they are
all full-integer models with int8 input and output, calibrated on images
scaled as the runtime scales them (pixel/255).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np


def tf_and_keras() -> tuple[Any, Any]:
    """Import TensorFlow and tf-keras (the Keras 2 that tfmot wraps), quietly, on first use."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf_keras

    return tf, tf_keras


def load_keras_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """A saved Keras model, quantization-aware layers included (they load only inside tfmot's scope)."""
    tf_and_keras()
    import tensorflow_model_optimization as tfmot
    import tf_keras

    with tfmot.quantization.keras.quantize_scope():
        return tf_keras.models.load_model(str(path), compile=compile)


def calibration_samples(images: np.ndarray) -> np.ndarray:
    """Images as the converter calibrates on them: float32 pixel/255, shape (N, 28, 28, 1).

    uint8 images are scaled; float images are taken as already in [0, 1].
    """
    x = images.astype(np.float32) / np.float32(255.0) if images.dtype == np.uint8 else images.astype(np.float32)
    return x[..., None] if x.ndim == 3 else x


def convert_int8(converter: Any, calibration: np.ndarray) -> bytes:
    """Full-integer conversion with ``converter`` (a ``tf.lite.TFLiteConverter``): int8 weights (per channel)
    and activations, int8 input and output, calibrated one image at a time on ``calibration``."""
    tf, _ = tf_and_keras()
    samples = calibration_samples(calibration)

    def representative() -> Any:
        for sample in samples:
            yield [sample[None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return bytes(converter.convert())


def to_tflite_int8(model: Any, calibration: np.ndarray) -> bytes:
    """A Keras model as a full-int8 flatbuffer (see ``convert_int8``)."""
    tf, _ = tf_and_keras()
    return convert_int8(tf.lite.TFLiteConverter.from_keras_model(model), calibration)


def to_tflite_float(model: Any) -> bytes:
    """A Keras model as a float32 flatbuffer (the float reference beside the int8 model)."""
    tf, _ = tf_and_keras()
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
