"""Small int8 TFLite models for the engine tests, built with TensorFlow.

Each builder returns flatbuffer bytes of a fully-int8 model (int8 input and
output) that takes the project's (N, 28, 28, 1) input, so every model can be
fed all 10,000 MNIST test images. Weights are seeded random (plus a few quick
training steps for the bundled-model look-alikes) so runs are reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class OpCase:
    """One randomly-shaped model exercising one op, described for test ids."""

    name: str
    build: Callable[[], object]


def _keras():
    import tf_keras

    return tf_keras


def to_int8_tflite(model: object, calibration: np.ndarray) -> bytes:
    """Convert a Keras model to a full-int8 flatbuffer calibrated on float images in [0, 1]."""
    from edge_digits.train.tflite import to_tflite_int8

    return to_tflite_int8(model, calibration)


def _head(k, x, units: int = 10):
    """Flatten, Dense(10) and Softmax: the common classifier end of every test model."""
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(units)(x)
    return k.layers.Softmax()(x)


def micro_like(seed: int = 0):
    """A look-alike of the bundled ``micro`` model: strided conv, depthwise-separable block, pooling, dense."""
    k = _keras()
    k.utils.set_random_seed(seed)
    inp = k.Input((28, 28, 1))
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = k.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = k.layers.Conv2D(16, 1, activation="relu")(x)
    x = k.layers.AveragePooling2D(2)(x)
    x = k.layers.MaxPooling2D(2)(x)
    return k.Model(inp, _head(k, x))


def standard_like(seed: int = 0):
    """A narrow look-alike of the bundled ``standard`` model: Conv/BN/ReLU pairs, max pooling, global pooling, dense.

    Channel counts are a quarter of the real model's so that 10,000 oracle runs stay fast.
    """
    k = _keras()
    k.utils.set_random_seed(seed)
    inp = k.Input((28, 28, 1))
    x = inp
    for filters in (8, 16):
        for _ in range(2):
            x = k.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = k.layers.BatchNormalization()(x)
            x = k.layers.ReLU()(x)
        x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, _head(k, x))


def quick_fit(model, x: np.ndarray, y: np.ndarray, steps: int = 60) -> None:
    """A few SGD steps so activations and softmax scores look like a trained net's."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    n = steps * 64
    model.fit(x[:n], y[:n], batch_size=64, epochs=1, verbose=0)


_ACTS = (None, "relu", "relu6")


def random_op_cases(seed: int = 5) -> list[OpCase]:
    """One randomly-shaped model per supported op: strides 1/2, SAME/VALID, odd sizes and channel counts."""
    rng = np.random.default_rng(seed)
    cases: list[OpCase] = []

    def pre(k, inp, kind: int):
        """A first layer that makes the op's input an odd or even size with several channels."""
        if kind == 0:
            return k.layers.Conv2D(int(rng.integers(2, 6)), 3, strides=2, padding="valid")(inp)   # 13x13
        if kind == 1:
            return k.layers.Conv2D(int(rng.integers(2, 6)), 2, strides=1, padding="valid")(inp)   # 27x27
        return k.layers.Conv2D(int(rng.integers(2, 6)), 5, strides=2, padding="same")(inp)       # 14x14

    for i in range(3):
        cfg = dict(f=int(rng.integers(1, 12)), k=int(rng.choice([1, 2, 3, 5])), s=int(rng.choice([1, 2])),
                   p=str(rng.choice(["same", "valid"])), a=_ACTS[i], pre=i % 3)

        def conv(cfg=cfg):
            k = _keras()
            k.utils.set_random_seed(cfg["f"])
            inp = k.Input((28, 28, 1))
            x = pre(k, inp, cfg["pre"])
            x = k.layers.Conv2D(cfg["f"], cfg["k"], strides=cfg["s"], padding=cfg["p"], activation=cfg["a"])(x)
            return k.Model(inp, _head(k, x))

        cases.append(OpCase(f"conv2d-f{cfg['f']}-k{cfg['k']}-s{cfg['s']}-{cfg['p']}-{cfg['a']}-pre{cfg['pre']}", conv))

    for i in range(3):
        cfg = dict(m=int(rng.choice([1, 2, 3])), k=int(rng.choice([2, 3, 5])), s=int(rng.choice([1, 2])),
                   p=str(rng.choice(["same", "valid"])), a=_ACTS[(i + 1) % 3], pre=(i + 1) % 3)

        def dw(cfg=cfg):
            k = _keras()
            k.utils.set_random_seed(cfg["k"] + cfg["m"])
            inp = k.Input((28, 28, 1))
            x = pre(k, inp, cfg["pre"])
            x = k.layers.DepthwiseConv2D(cfg["k"], strides=cfg["s"], padding=cfg["p"], depth_multiplier=cfg["m"],
                                         activation=cfg["a"])(x)
            return k.Model(inp, _head(k, x))

        cases.append(OpCase(f"dwconv-m{cfg['m']}-k{cfg['k']}-s{cfg['s']}-{cfg['p']}-{cfg['a']}-pre{cfg['pre']}", dw))

    for layer in ("MaxPooling2D", "AveragePooling2D"):
        for i in range(2):
            cfg = dict(k=int(rng.choice([2, 3])), s=int(rng.choice([1, 2, 3])), p=("same", "valid")[i], pre=i)

            def pool(cfg=cfg, layer=layer):
                k = _keras()
                k.utils.set_random_seed(3)
                inp = k.Input((28, 28, 1))
                x = pre(k, inp, cfg["pre"])
                x = getattr(k.layers, layer)(cfg["k"], strides=cfg["s"], padding=cfg["p"])(x)
                return k.Model(inp, _head(k, x))

            cases.append(OpCase(f"{layer.lower()}-k{cfg['k']}-s{cfg['s']}-{cfg['p']}-pre{cfg['pre']}", pool))

    def dense_stack():
        k = _keras()
        k.utils.set_random_seed(11)
        inp = k.Input((28, 28, 1), batch_size=1)
        x = k.layers.Reshape((28 * 28,))(inp)
        x = k.layers.Dense(37, activation="relu")(x)
        x = k.layers.Dense(13, activation="relu6")(x)
        x = k.layers.Reshape((13, 1))(x)
        return k.Model(inp, _head(k, x))

    cases.append(OpCase("fully_connected-reshape-37-13", dense_stack))

    def global_mean():
        k = _keras()
        k.utils.set_random_seed(13)
        inp = k.Input((28, 28, 1))
        x = k.layers.Conv2D(7, 3, strides=3, padding="same", activation="relu")(inp)  # 10x10x7
        x = k.layers.GlobalAveragePooling2D()(x)
        return k.Model(inp, _head(k, x))

    cases.append(OpCase("mean-global-10x10x7", global_mean))

    def conv_then_maxpool():
        k = _keras()
        k.utils.set_random_seed(17)
        inp = k.Input((28, 28, 1))
        x = k.layers.Conv2D(5, 3, strides=2, padding="valid")(inp)                  # 13x13x5
        x = k.layers.Conv2D(7, 3, padding="same", activation="relu")(x)             # 13x13x7, fused with ...
        x = k.layers.MaxPooling2D(2, padding="same")(x)                             # ... a clipped last window
        x = k.layers.Conv2D(6, 2, padding="valid")(x)                               # 6x6x6, fused with ...
        x = k.layers.MaxPooling2D(3, strides=3)(x)                                  # ... 3-row windows
        return k.Model(inp, _head(k, x))

    cases.append(OpCase("conv-maxpool-fused-13x13-same-6x6-k3", conv_then_maxpool))
    return cases


def add_model(seed: int = 2):
    """Two conv branches joined by Add: an ADD op, which the engine does not support."""
    k = _keras()
    k.utils.set_random_seed(seed)
    inp = k.Input((28, 28, 1))
    a = k.layers.Conv2D(4, 3, padding="same")(inp)
    b = k.layers.Conv2D(4, 1, padding="same")(inp)
    x = k.layers.Add()([a, b])
    return k.Model(inp, _head(k, x))
