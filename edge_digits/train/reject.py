"""Train the rejection model: a small int8 CNN that tells a handwritten digit from everything else.

It sees the same 28x28 normalised glyph as the digit classifier, so one
rejection model serves every digit model (``standard``, ``micro``,
``seed-cnn`` and any trained later) without changing their outputs or the
microcontroller's op set. Negatives are made here (:mod:`edge_digits.train.negatives`);
thresholds are calibrated on held-out digits and negatives, and the report
gives rejection precision and recall on a test set made from MNIST's test
digits and negatives of another seed. TensorFlow is imported lazily.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

KEEP_NORMAL = 0.99    # share of held-out digits the normal threshold keeps
KEEP_STRICT = 0.97    # and the strict one (frames where no page was found)


@dataclass
class RejectConfig:
    """Sizes and schedule of a rejection training run."""

    positives: int = 50000
    negatives: int = 50000
    validation: int = 5000
    epochs: int = 12
    batch: int = 128
    learning_rate: float = 3e-3
    seed: int = 0


@dataclass
class RejectResult:
    out_dir: Path
    report: dict[str, Any]


def build_reject_model(keras: Any) -> Any:
    """Three stride-2 convolutions and a two-way dense layer (not a digit, a digit): about 4,000 weights,
    only ops that TFLM and the project's C engine run."""
    return keras.Sequential([
        keras.layers.Input((28, 28, 1)),
        keras.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(24, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(24, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(2),
        keras.layers.Softmax(),
    ])


def make_sets(config: RejectConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train, validation and test sets of (glyphs, is_digit); test digits are MNIST's test split."""
    from edge_digits.data import load_mnist
    from edge_digits.train import negatives as neg

    x_train, _, x_test, _ = load_mnist()
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(x_train))
    val_idx, train_idx = order[:config.validation], order[config.validation:]
    train_digits = x_train[train_idx[:config.positives]]

    def labelled(pos: np.ndarray, negs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([pos, negs])
        y = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(negs), np.int64)])
        return x, y

    return {
        "train": labelled(neg.positives(rng, train_digits),
                          np.concatenate(list(neg.batches(config.seed + 1, train_digits, config.negatives)))),
        "validation": labelled(neg.positives(rng, x_train[val_idx]),
                               np.concatenate(list(neg.batches(config.seed + 2, x_train[val_idx],
                                                               config.validation)))),
        "test": labelled(neg.positives(np.random.default_rng(config.seed + 3), x_test),
                         np.concatenate(list(neg.batches(config.seed + 1000, x_test, 10000)))),
    }


def threshold_for(p_digit: np.ndarray, keep: float) -> float:
    """The digit-probability threshold that keeps the share ``keep`` of these digits.

    >>> threshold_for(np.linspace(0, 1, 101), 0.9)
    0.1
    """
    return round(float(np.quantile(p_digit, 1.0 - keep)), 4)


def rejection_scores(p_digit: np.ndarray, is_digit: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision and recall of rejection (the positive class is 'not a digit') at a threshold."""
    rejected = p_digit < threshold
    negative = is_digit == 0
    true_rej = int(np.sum(rejected & negative))
    return {
        "threshold": threshold,
        "rejection_precision": round(true_rej / max(1, int(rejected.sum())), 4),
        "rejection_recall": round(true_rej / max(1, int(negative.sum())), 4),
        "digits_kept": round(float(np.mean(~rejected[~negative])), 4),
    }


def train_reject(out: Path, config: RejectConfig | None = None, verbose: int = 2) -> RejectResult:
    """Make the sets, train, convert to int8, calibrate and write ``reject_int8.tflite`` and a report."""
    config = config if config is not None else RejectConfig()
    from edge_digits.runtime import Classifier
    from edge_digits.train.tflite import tf_and_keras as _tf
    from edge_digits.train.tflite import to_tflite_int8

    started = time.time()
    sets = make_sets(config)
    made = time.time() - started
    tf, keras = _tf()
    tf.keras.utils.set_random_seed(config.seed)
    model = build_reject_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = sets["train"]
    xv, yv = sets["validation"]
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: config.learning_rate * 0.5 * (1 + np.cos(np.pi * epoch / config.epochs)))
    model.fit(x[..., None] / 255.0, y, validation_data=(xv[..., None] / 255.0, yv), epochs=config.epochs,
              batch_size=config.batch, shuffle=True, callbacks=[schedule], verbose=verbose)
    calibration = x[np.random.default_rng(config.seed).choice(len(x), 500, replace=False)]
    tflite = to_tflite_int8(model, calibration)
    out = Path(out)
    path = atomic_write_bytes(out / "reject_int8.tflite", tflite)
    gate = Classifier(path, classes=2)
    p_val = gate.predict_batched(xv)[:, 1]
    normal = threshold_for(p_val[yv == 1], KEEP_NORMAL)
    strict = threshold_for(p_val[yv == 1], KEEP_STRICT)
    xt, yt = sets["test"]
    p_test = gate.predict_batched(xt)[:, 1]
    report = {
        "model": "reject_int8.tflite", "bytes": len(tflite), "parameters": int(model.count_params()),
        "config": config.__dict__, "thresholds": {"normal": normal, "strict": strict},
        "validation": {"digits": int(np.sum(yv == 1)), "negatives": int(np.sum(yv == 0))},
        "test": {"digits": int(np.sum(yt == 1)), "negatives": int(np.sum(yt == 0)),
                 "normal": rejection_scores(p_test, yt, normal), "strict": rejection_scores(p_test, yt, strict)},
        "seconds": {"making_sets": round(made, 1), "total": round(time.time() - started, 1)},
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", report_markdown(report))
    return RejectResult(out, report)


def report_markdown(report: dict[str, Any]) -> str:
    """The rejection report as a short Markdown page."""
    rows = [f"| {k} | {v['threshold']} | {v['rejection_precision']:.2%} | {v['rejection_recall']:.2%} | "
            f"{v['digits_kept']:.2%} |" for k, v in (("normal", report["test"]["normal"]),
                                                       ("strict", report["test"]["strict"]))]
    t = report["test"]
    return "\n".join([
        "# Rejection model", "",
        f"{report['parameters']:,} parameters, {report['bytes']:,} bytes int8. Test set: {t['digits']:,} MNIST "
        f"test digits and {t['negatives']:,} generated negatives (another seed than training).", "",
        "| setting | threshold (a glyph with p(digit) below it is dropped) | rejection precision | "
        "rejection recall | digits kept |",
        "| --- | --- | --- | --- | --- |", *rows, ""])
