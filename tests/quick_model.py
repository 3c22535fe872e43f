"""A small stand-in digit classifier for tests when no bundled model is installed.

It trains a compact CNN on MNIST with camera-style augmentation (rotation,
zoom, shift, stroke thickness), converts it to an int8 TFLite model and wraps
it in an adapter with the ``predict(images) -> scores`` protocol the camera
path uses. TensorFlow is imported only inside :func:`train_quick_model`.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


def _thickness_jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thicken a third and thin a sixth of the digits so strokes vary like pens do."""
    out = x.copy()
    kernel = np.ones((2, 2), np.uint8)
    pick = rng.random(len(x))
    for i in np.flatnonzero(pick < 0.33):
        out[i] = cv2.dilate(x[i], kernel)
    for i in np.flatnonzero(pick > 0.83):
        out[i] = cv2.erode(x[i], kernel)
    return out


def train_quick_model(out_path: Path, x: np.ndarray, y: np.ndarray, epochs: int = 2, seed: int = 0) -> Path:
    """Train, quantize to int8 and write a TFLite model; returns its path."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    from tensorflow import keras

    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    x = _thickness_jitter(x, rng)
    aug = keras.Sequential([
        keras.layers.RandomRotation(0.06, fill_mode="constant", seed=seed),
        keras.layers.RandomZoom((-0.15, 0.15), fill_mode="constant", seed=seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
    ])
    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(28, 28, 1)),
        keras.layers.Conv2D(24, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(48, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    xf = (x.astype(np.float32) / 255.0)[..., None]
    ds = (tf.data.Dataset.from_tensor_slices((xf, y.astype(np.int32)))
          .shuffle(20000, seed=seed).batch(128)
          .map(lambda a, b: (aug(a, training=True), b), num_parallel_calls=1)
          .prefetch(2))
    model.fit(ds, epochs=epochs, verbose=2)

    def representative():
        for i in range(0, 500, 10):
            yield [xf[i:i + 10]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(conv.convert())
    return out_path


class TfliteClassifier:
    """``predict(uint8 (N,28,28)) -> float (N,10)`` over an int8 TFLite model (ai-edge-litert)."""

    backend = "litert"

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(model_path), num_threads=threads)
        self._inp = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = 0

    def predict(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        if n == 0:
            return np.zeros((0, 10), np.float32)
        if n != self._batch:
            self._interp.resize_tensor_input(self._inp["index"], [n, 28, 28, 1])
            self._interp.allocate_tensors()
            self._batch = n
        scale, zero = self._inp["quantization"]
        x = np.round(images.astype(np.float32) / 255.0 / scale + zero)
        self._interp.set_tensor(self._inp["index"], np.clip(x, -128, 127).astype(np.int8)[..., None])
        self._interp.invoke()
        q = self._interp.get_tensor(self._out["index"]).astype(np.float32)
        oscale, ozero = self._out["quantization"]
        return (q - ozero) * oscale
