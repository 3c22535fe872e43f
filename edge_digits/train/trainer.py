"""The training stage: a recipe in, an int8 TFLite model and a report a person can read out.

Float training with augmentation in a parallel tf.data pipeline, then
quantization-aware fine-tuning (tensorflow-model-optimization on tf-keras),
then full-integer conversion. TensorFlow is imported inside the functions
that need it, with ``TF_USE_LEGACY_KERAS=1`` so tfmot gets the Keras it wraps.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.fileio import atomic_write_bytes, atomic_write_json
from edge_digits.train.recipe import Recipe
from edge_digits.train.tflite import tf_and_keras as _tf
from edge_digits.train.tflite import to_tflite_float, to_tflite_int8


@dataclass
class TrainResult:
    """What a training run wrote and measured."""

    out_dir: Path
    report: dict[str, Any]
    files: list[str] = field(default_factory=list)


MnistData = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""``(x_train, y_train, x_test, y_test)`` as :func:`edge_digits.data.load_mnist` gives it."""


def build_model(recipe: Recipe) -> Any:
    """The float tf-keras model described by the recipe's layers (input: pixel/255, shape 28x28x1)."""
    _, keras = _tf()
    reg = keras.regularizers.l2(recipe.training.l2) if recipe.training.l2 else None
    layers: list[Any] = [keras.layers.Input((28, 28, 1))]
    for spec in recipe.layers:
        act = None if spec.activation == "none" else spec.activation
        if spec.type in ("conv", "dwconv"):
            if spec.type == "conv":
                layers.append(keras.layers.Conv2D(spec.filters, spec.kernel, strides=spec.stride,
                                                  padding=spec.padding, use_bias=not spec.batchnorm,
                                                  kernel_regularizer=reg))
            else:
                layers.append(keras.layers.DepthwiseConv2D(spec.kernel, strides=spec.stride, padding=spec.padding,
                                                           depth_multiplier=spec.depth_multiplier,
                                                           use_bias=not spec.batchnorm,
                                                           depthwise_regularizer=reg))
            if spec.batchnorm:
                layers.append(keras.layers.BatchNormalization())
            if act == "relu":
                layers.append(keras.layers.ReLU())
            elif act == "relu6":
                layers.append(keras.layers.ReLU(6.0))
        elif spec.type == "maxpool":
            layers.append(keras.layers.MaxPooling2D(spec.size))
        elif spec.type == "avgpool":
            layers.append(keras.layers.AveragePooling2D(spec.size))
        elif spec.type == "gap":
            layers.append(keras.layers.GlobalAveragePooling2D())
        elif spec.type == "flatten":
            layers.append(keras.layers.Flatten())
        elif spec.type == "dropout":
            layers.append(keras.layers.Dropout(spec.rate))
        elif spec.type == "dense":
            layers.append(keras.layers.Dense(spec.units, kernel_regularizer=reg))
            if act == "relu":
                layers.append(keras.layers.ReLU())
            elif act == "relu6":
                layers.append(keras.layers.ReLU(6.0))
    layers.append(keras.layers.Softmax())
    return keras.Sequential(layers, name=recipe.name.replace("-", "_"))


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference, from the layer shapes (convolutions and dense layers)."""
    _, keras = _tf()
    total = 0
    for layer in model.layers:
        out = layer.output_shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * out[3] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * out[3] * kh * kw * layer.input_shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input_shape[-1] * layer.units
    return int(total)


def split_data(x: np.ndarray, y: np.ndarray, validation: int, seed: int,
               subset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle the training set with ``seed`` and hold out the last ``validation`` images."""
    order = np.random.default_rng(seed).permutation(len(x))
    if subset:
        order = order[: subset + validation]
    x, y = x[order], y[order]
    if validation:
        return x[:-validation], y[:-validation], x[-validation:], y[-validation:]
    return x, y, x[:0], y[:0]


def make_dataset(x: np.ndarray, y: np.ndarray, recipe: Recipe, seed: int, training: bool,
                 teacher: Callable[[np.ndarray], np.ndarray] | None = None) -> Any:
    """A tf.data pipeline: shuffle, batch, augment whole batches in parallel with OpenCV, scale to [0, 1].

    With a ``teacher`` (uint8 images to logits), each training batch also carries the teacher's logits
    of the augmented images, for distillation.
    """
    tf, _ = _tf()
    from edge_digits.train.augment import augment_batch

    aug = recipe.augmentation
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(recipe.training.batch_size)
    if training:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, seeds))

        def augment(batch: Any, batch_seed: Any) -> tuple[Any, Any]:
            images, labels = batch
            out = tf.numpy_function(lambda im, s: augment_batch(im, int(s) & 0x7FFFFFFF, aug),
                                    [images, batch_seed], tf.uint8)
            out.set_shape(images.shape)
            return out, labels

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        if teacher is not None:
            def teach(images: Any, labels: Any) -> tuple[Any, Any, Any]:
                logits = tf.numpy_function(teacher, [images], tf.float32)
                logits.set_shape([None, 10])
                return images, labels, logits

            ds = ds.map(teach, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda im, lab, *rest: (tf.cast(im, tf.float32)[..., None] / 255.0, lab, *rest),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _schedule(recipe: Recipe, base_lr: float, epochs: int) -> Callable[[int, float], float]:
    warm = recipe.training.warmup_epochs

    def lr(epoch: int, _current: float = 0.0) -> float:
        if epoch < warm:
            return base_lr * (epoch + 1) / (warm + 1)
        if recipe.training.schedule == "cosine":
            progress = (epoch - warm) / max(1, epochs - warm)
            return 0.5 * base_lr * (1 + math.cos(math.pi * progress)) + 1e-6
        return base_lr

    return lr


def _optimizer(recipe: Recipe, lr: float) -> Any:
    _, keras = _tf()
    if recipe.training.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(lr)


def _compile(model: Any, recipe: Recipe, lr: float) -> None:
    _, keras = _tf()
    smoothing = recipe.training.label_smoothing
    if smoothing:
        loss = lambda y, p: keras.losses.categorical_crossentropy(  # noqa: E731
            keras.backend.one_hot(keras.backend.cast(keras.backend.flatten(y), "int32"), 10), p,
            label_smoothing=smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(_optimizer(recipe, lr), loss, metrics=["accuracy"])


def _class_weights(y: np.ndarray) -> dict[int, float]:
    counts = np.bincount(y, minlength=10).astype(np.float64)
    return {i: float(len(y) / (10 * c)) for i, c in enumerate(counts) if c}


class _State:
    """Progress saved after every epoch so ``--resume`` can continue an interrupted run."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "checkpoints"
        self.path = self.dir / "state.json"

    def load(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self, **state: Any) -> None:
        atomic_write_json(self.path, state)


def _fit(model: Any, recipe: Recipe, phase: str, epochs: int, lr: float, train_ds: Any, val_ds: Any,
         state: _State, history: dict[str, list[float]], resume: dict[str, Any], verbose: int,
         class_weight: dict[int, float] | None, elapsed: Callable[[], float], runner: Any = None,
         extra_callbacks: Sequence[Any] = ()) -> None:
    """Train one phase with checkpoints, the LR schedule, early stopping and a progress bar per epoch.

    ``runner`` is what ``fit`` trains (a model-lab wrapper around ``model``, else ``model`` itself);
    checkpoints always hold ``model``'s weights.
    """
    _, keras = _tf()
    runner = runner if runner is not None else model
    weights = state.dir / f"{phase}-weights.h5"
    start = 0
    if resume.get("phase") == phase and weights.exists():
        model.load_weights(str(weights))
        start = int(resume.get("epoch", 0))
        for key, values in resume.get("history", {}).items():
            history[key] = list(values)
    if start >= epochs:
        return
    state.dir.mkdir(parents=True, exist_ok=True)

    callback_base: Any = keras.callbacks.Callback

    class Checkpoint(callback_base):  # type: ignore[misc]  # tf-keras is untyped: its classes are Any
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            for key, value in (logs or {}).items():
                history.setdefault(f"{phase}_{key}", []).append(float(value))
            tmp = weights.with_name(f".{weights.name}.partial.h5")
            model.save_weights(str(tmp))
            os.replace(tmp, weights)
            state.save(phase=phase, epoch=epoch + 1, history=history, seconds=round(elapsed(), 1))

    callbacks: list[Any] = [*extra_callbacks, Checkpoint()]
    if recipe.training.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss" if val_ds else "loss",
                                                          factor=0.3, patience=2, min_lr=1e-6))
    else:
        callbacks.append(keras.callbacks.LearningRateScheduler(_schedule(recipe, lr, epochs)))
    if recipe.training.early_stopping_patience and val_ds is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy",
                                                       patience=recipe.training.early_stopping_patience,
                                                       restore_best_weights=True))
    runner.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=start, callbacks=callbacks,
               verbose=verbose, class_weight=class_weight if runner is model else None)


def tflite_predictions(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """Predicted classes of a TFLite model on uint8 images, through the runtime's classifier."""
    import tempfile

    from edge_digits.runtime import Classifier

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        predictions: np.ndarray = Classifier(path).predict_batched(images).argmax(axis=1)
        return predictions


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("edge-digits", "tensorflow", "tf-keras", "tensorflow-model-optimization", "numpy",
                "opencv-python-headless", "ai-edge-litert", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def train_logreg(recipe: Recipe, out: Path, seed: int, data: MnistData) -> TrainResult:
    """The logistic-regression baseline with scikit-learn, also exported as a one-layer TFLite model."""
    from sklearn.linear_model import LogisticRegression

    _, keras = _tf()
    x_train, y_train, x_test, y_test = data
    xt, yt, _, _ = split_data(x_train, y_train, 0, seed, recipe.training.subset)
    started = time.time()
    clf = LogisticRegression(max_iter=recipe.training.epochs, C=1.0 / max(recipe.training.l2 * len(xt), 1e-3)
                             if recipe.training.l2 else 1.0, random_state=seed)
    clf.fit(xt.reshape(len(xt), -1) / 255.0, yt)
    seconds = time.time() - started
    model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10),
                              keras.layers.Softmax()], name="logreg")
    model.layers[1].set_weights([clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)])
    float_acc = float(clf.score(x_test.reshape(len(x_test), -1) / 255.0, y_test))
    return _finish(recipe, out, model, None, float_acc, None, seconds, seed, data, {})


def train(recipe: Recipe, out: Path, seed: int = 0, resume: bool = False, verbose: int = 1,
          data: MnistData | None = None, epochs: int | None = None) -> TrainResult:
    """Run a recipe and write models, report.json and plots into ``out``."""
    tf, keras = _tf()
    from edge_digits.data import load_mnist

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    data = data if data is not None else load_mnist()
    if recipe.kind == "logreg":
        return train_logreg(recipe, out, seed, data)
    from edge_digits.train import techniques

    x_train, y_train, x_test, y_test = data
    xt, yt, xv, yv = split_data(x_train, y_train, recipe.training.validation, seed, recipe.training.subset)
    teacher = None
    if recipe.distillation.teacher:  # loaded before anything trains, so a bad teacher fails at once
        teacher = techniques.TeacherLogits(techniques.teacher_tflite(recipe.distillation.teacher))
    train_ds = make_dataset(xt, yt, recipe, seed, training=True, teacher=teacher)
    val_ds = make_dataset(xv, yv, recipe, seed, training=False) if len(xv) else None
    class_weight = _class_weights(yt) if recipe.training.class_weights else None
    state = _State(out)
    saved = state.load() if resume else {}
    history: dict[str, list[float]] = {}
    epochs = epochs or recipe.training.epochs
    pruning = bool(recipe.pruning.sparsity)

    started = time.time()
    before = float(saved.get("seconds", 0.0))  # time spent before an interruption counts too

    def elapsed() -> float:
        return before + time.time() - started

    def runner_for(target: Any, lr: float) -> Any:
        _compile(target, recipe, lr)
        if not techniques.uses_wrapper(recipe):
            return None
        runner = techniques.technique_model(target, recipe, class_weight)
        _compile(runner, recipe, lr)
        return runner

    model = build_model(recipe)
    callbacks: Sequence[Any] = ()
    if pruning:
        steps = math.ceil(len(xt) / recipe.training.batch_size)
        model, callbacks = techniques.prune_model(model, recipe, steps, epochs)
    runner = runner_for(model, recipe.training.learning_rate)
    if saved.get("phase") == "qat" and (state.dir / "float-weights.h5").exists():
        model.load_weights(str(state.dir / "float-weights.h5"))
        history.update({k: list(v) for k, v in saved.get("history", {}).items() if k.startswith("float_")})
    else:
        _fit(model, recipe, "float", epochs, recipe.training.learning_rate, train_ds, val_ds, state, history,
             saved, verbose, class_weight, elapsed, runner, callbacks)
    if pruning:
        model = techniques.strip_pruning(model)
        _compile(model, recipe, recipe.training.learning_rate)
    float_acc = float(model.evaluate(x_test[..., None] / 255.0, y_test, verbose=0, batch_size=512)[1])

    qat_model, qat_acc = None, None
    if recipe.qat.enabled and recipe.qat.epochs:
        qat_model = techniques.quantize_model(model, keep_sparsity=pruning)
        runner = runner_for(qat_model, recipe.qat.learning_rate)
        _fit(qat_model, recipe, "qat", recipe.qat.epochs, recipe.qat.learning_rate, train_ds, val_ds, state,
             history, saved, verbose, class_weight, elapsed, runner)
        qat_acc = float(qat_model.evaluate(x_test[..., None] / 255.0, y_test, verbose=0, batch_size=512)[1])
    seconds = elapsed()
    return _finish(recipe, out, model, qat_model, float_acc, qat_acc, seconds, seed, data, history)


def _save_keras(model: Any, path: Path, **kwargs: Any) -> None:
    """Save a Keras model through a temporary file, so a crash never leaves a half-written model."""
    import warnings

    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
        model.save(str(tmp), **kwargs)
    os.replace(tmp, path)


def _finish(recipe: Recipe, out: Path, model: Any, qat_model: Any, float_acc: float, qat_acc: float | None,
            seconds: float, seed: int, data: MnistData, history: dict[str, list[float]]) -> TrainResult:
    """Export both TFLite models, measure them on the test set, and write the report and plots."""
    from edge_digits import plots
    from edge_digits.scoring import confusion, per_class_accuracy
    from edge_digits.train import techniques

    x_train, _, x_test, y_test = data
    calib = x_train[np.random.default_rng(seed).choice(len(x_train), recipe.qat.calibration, replace=False)]
    int8 = to_tflite_int8(qat_model if qat_model is not None else model, calib)
    flt = to_tflite_float(model)
    atomic_write_bytes(out / "model_int8.tflite", int8)
    atomic_write_bytes(out / "model_float.tflite", flt)
    _save_keras(model, out / "model.keras")
    if qat_model is not None:
        # tfmot's quantize wrappers do not load back from the .keras format (the quantize layer's
        # variables are saved under other names); HDF5 inside quantize_scope() does round-trip.
        _save_keras(qat_model, out / "model_qat.h5", include_optimizer=False)

    pred = tflite_predictions(int8, x_test)
    float_pred = tflite_predictions(flt, x_test)
    m = confusion(y_test, pred)
    report = {
        "recipe": recipe.to_dict(),
        "seed": seed,
        "parameters": int(model.count_params()),
        "macs": count_macs(model),
        "tflite_int8_bytes": len(int8),
        "tflite_float_bytes": len(flt),
        "tflite_int8_zlib_bytes": techniques.compressed_bytes(int8),
        "weight_sparsity_int8": round(techniques.weight_sparsity(int8), 4),
        "techniques": techniques.describe(recipe),
        "accuracy": {
            "float_keras": float_acc,
            "float_tflite": float(np.mean(float_pred == y_test)),
            "qat_keras": qat_acc,
            "int8_tflite": float(np.mean(pred == y_test)),
        },
        "per_class_accuracy_int8": per_class_accuracy(m),
        "confusion_int8": m.tolist(),
        "test_images": int(len(y_test)),
        "training_seconds": round(seconds, 1),
        "history": history,
        "versions": _versions(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }
    atomic_write_json(out / "report.json", report)
    plots.training_curves(history, out / "curves.png")
    plots.confusion_matrix(m, out / "confusion.png", f"{recipe.name} int8: {report['accuracy']['int8_tflite']:.2%}")
    wrong = np.flatnonzero(pred != y_test)
    plots.error_grid(x_test[wrong], y_test[wrong], pred[wrong], out / "errors.png")
    files = ["model_int8.tflite", "model_float.tflite", "model.keras"] + (["model_qat.h5"] if qat_model else []) + [
        "report.json", "curves.png", "confusion.png", "errors.png"]
    return TrainResult(out, report, files)


__all__ = ["TrainResult", "build_model", "count_macs", "train", "to_tflite_int8"]
