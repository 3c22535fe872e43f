"""Training techniques of the model lab: FGSM adversarial training, knowledge distillation, magnitude pruning.

Each one is a recipe section (``adversarial``, ``distillation``, ``pruning``) that the trainer applies to
the float phase and keeps through quantization-aware fine-tuning, so its effect can be measured against
the same recipe without it. TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.train.recipe import Recipe


class TeacherError(ValueError):
    """The distillation teacher cannot be found or loaded; the message says what was given and what works."""


def _tf() -> tuple[Any, Any]:
    from edge_digits.train.tflite import tf_and_keras

    return tf_and_keras()


def uses_wrapper(recipe: Recipe) -> bool:
    """Whether the recipe needs the custom training step (adversarial batches or a distillation loss)."""
    return bool(recipe.adversarial.epsilon or recipe.distillation.teacher)


def teacher_tflite(spec: str) -> bytes:
    """The teacher as TFLite bytes: a bundled model name, a .tflite, a Keras model, or a training run folder.

    A Keras teacher (or a run folder with ``model.keras``) is converted to a float TFLite model, whose
    logits are finer than an int8 model's; a .tflite or bundled model is used as it is.
    """
    from edge_digits.models import BUNDLED, bundled_model

    path = Path(spec)
    if spec in BUNDLED and not path.exists():
        return bundled_model(spec).read_bytes()
    if path.is_dir():
        for name in ("model.keras", "model_int8.tflite"):
            if (path / name).is_file():
                return teacher_tflite(str(path / name))
        raise TeacherError(f"teacher folder {path} has neither model.keras nor model_int8.tflite: give a "
                           "training run folder, a .tflite, a .keras/.h5 model or a bundled name "
                           f"({', '.join(BUNDLED)})")
    if not path.is_file():
        raise TeacherError(f"teacher {spec!r} does not exist: give a bundled name ({', '.join(BUNDLED)}), "
                           "a .tflite, a .keras/.h5 model or a training run folder")
    if path.suffix == ".tflite":
        return path.read_bytes()
    if path.suffix in (".keras", ".h5"):
        from edge_digits.train.tflite import to_tflite_float

        _, keras = _tf()
        try:
            model = keras.models.load_model(str(path), compile=False)
        except (OSError, ValueError) as exc:
            raise TeacherError(f"cannot load the Keras teacher {path}: {exc}") from exc
        return to_tflite_float(model)
    raise TeacherError(f"teacher {path} is neither .tflite, .keras nor .h5")


class TeacherLogits:
    """A TFLite teacher as a function from uint8 images (N, 28, 28) to float logits (N, 10).

    The logits are the dequantized input of the model's final SOFTMAX (kept readable with
    ``experimental_preserve_all_tensors``); a model without a final softmax gives its outputs as they are.
    One interpreter per thread, because tf.data calls this from several threads at once; each finds its
    tensors and their quantization once, not per batch.
    """

    def __init__(self, model: bytes) -> None:
        self._model = model
        self._local = threading.local()
        self.from_softmax = self._state().softmax

    def _state(self) -> threading.local:
        local = self._local
        if getattr(local, "interp", None) is not None:
            return local
        import warnings

        from ai_edge_litert.interpreter import Interpreter

        with warnings.catch_warnings():  # it warns that preserving tensors costs memory: a few KB here
            warnings.simplefilter("ignore", UserWarning)
            interp = Interpreter(model_content=self._model, experimental_preserve_all_tensors=True)
        out_index = interp.get_output_details()[0]["index"]
        last = [op for op in interp._get_ops_details() if out_index in op["outputs"]]
        local.softmax = bool(last) and last[0]["op_name"] == "SOFTMAX"
        local.logits = int(last[0]["inputs"][0]) if local.softmax else out_index
        local.input = interp.get_input_details()[0]
        local.logits_quant = next(d for d in interp.get_tensor_details() if d["index"] == local.logits)["quantization"]
        local.interp, local.batch = interp, 0
        return local

    def __call__(self, images: np.ndarray) -> np.ndarray:
        from edge_digits.int8 import quantize_images

        local = self._state()
        interp, inp = local.interp, local.input
        if local.batch != len(images):
            interp.resize_tensor_input(inp["index"], [len(images), 28, 28, 1])
            interp.allocate_tensors()
            local.batch = len(images)
        if inp["dtype"] == np.int8:
            x = quantize_images(images, *inp["quantization"])[..., None]
        else:
            x = images.astype(np.float32)[..., None] / np.float32(255.0)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        raw = interp.get_tensor(local.logits).reshape(len(images), -1)
        scale, zero = local.logits_quant
        out: np.ndarray = (raw.astype(np.float32) - zero) * np.float32(scale) if raw.dtype == np.int8 else \
            raw.astype(np.float32)
        if not local.softmax:
            out = np.log(np.maximum(out, 1e-6))
        return out.astype(np.float32)


def technique_model(inner: Any, recipe: Recipe, class_weight: dict[int, float] | None) -> Any:
    """A Keras model around ``inner`` whose training step mixes FGSM images into each batch and adds the
    distillation loss, as the recipe asks; predictions, weights and validation are ``inner``'s own."""
    tf, keras = _tf()
    eps, ratio = float(recipe.adversarial.epsilon), float(recipe.adversarial.ratio)
    distill = bool(recipe.distillation.teacher)
    temp, alpha = float(recipe.distillation.temperature), float(recipe.distillation.alpha)
    weights = tf.constant([class_weight.get(i, 1.0) for i in range(10)], tf.float32) if class_weight else None

    model_base: Any = keras.Model

    class LabModel(model_base):  # type: ignore[misc]  # tf-keras is untyped: its classes are Any
        def __init__(self) -> None:
            super().__init__(name=f"{inner.name}_lab")
            self.inner = inner
            self.distill_tracker: Any = keras.metrics.Mean(name="distill_loss") if distill else None

        def call(self, x: Any, training: Any = None) -> Any:
            return self.inner(x, training=training)

        def train_step(self, data: Any) -> dict[str, Any]:
            x, y = data[0], tf.reshape(tf.cast(data[1], tf.int32), [-1])
            if eps:
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    attacked = keras.losses.sparse_categorical_crossentropy(y, self.inner(x, training=False))
                adv = tf.clip_by_value(x + eps * tf.sign(tape.gradient(attacked, x)), 0.0, 1.0)
                # batches are shuffled, so the first `ratio` of each is a random sample of it
                count = tf.cast(tf.round(ratio * tf.cast(tf.shape(x)[0], tf.float32)), tf.int32)
                chosen = tf.reshape(tf.range(tf.shape(x)[0]) < count, [-1, 1, 1, 1])
                x = tf.stop_gradient(tf.where(chosen, adv, x))
            sample_weight = tf.gather(weights, y) if weights is not None else None
            with tf.GradientTape() as tape:
                probs = self(x, training=True)
                loss = self.compiled_loss(y, probs, sample_weight, regularization_losses=self.losses)
                if distill:
                    target = tf.nn.softmax(data[2] / temp)
                    student = tf.nn.log_softmax(tf.math.log(tf.maximum(probs, 1e-7)) / temp)
                    kl = tf.reduce_sum(target * (tf.math.log(tf.maximum(target, 1e-9)) - student), axis=-1)
                    soft = temp * temp * tf.reduce_mean(kl)
                    loss = alpha * loss + (1.0 - alpha) * soft
            variables = self.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            self.compiled_metrics.update_state(y, probs, sample_weight)
            if distill:
                self.distill_tracker.update_state(soft)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data: Any) -> dict[str, Any]:
            x, y = data[0], data[1]
            probs = self(x, training=False)
            self.compiled_loss(y, probs, regularization_losses=self.losses)
            self.compiled_metrics.update_state(y, probs)
            return {m.name: m.result() for m in self.metrics if m is not self.distill_tracker}

    return LabModel()


def prune_model(model: Any, recipe: Recipe, steps_per_epoch: int, epochs: int) -> tuple[Any, list[Any]]:
    """``model`` wrapped for magnitude pruning, and the callbacks that advance its schedule."""
    import tensorflow_model_optimization as tfmot

    p = recipe.pruning
    begin = p.begin_epoch * steps_per_epoch
    end = max(begin + 1, (p.end_epoch or max(p.begin_epoch + 1, epochs - 1)) * steps_per_epoch)
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, p.sparsity, begin_step=begin, end_step=end,
                                                    frequency=p.frequency)
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    return pruned, [tfmot.sparsity.keras.UpdatePruningStep()]


def strip_pruning(model: Any) -> Any:
    """The plain model with its pruned (zero) weights, as export and QAT expect it."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def quantize_model(model: Any, keep_sparsity: bool) -> Any:
    """The QAT model; with ``keep_sparsity`` the pruning-preserving scheme keeps pruned weights at zero."""
    import tensorflow_model_optimization as tfmot

    if not keep_sparsity:
        return tfmot.quantization.keras.quantize_model(model)
    annotated = tfmot.quantization.keras.quantize_annotate_model(model)
    return tfmot.quantization.keras.quantize_apply(
        annotated, tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())


def weight_sparsity(model: bytes) -> float:
    """Fraction of zero int8 weights over the weight tensors of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    indices = {int(op["inputs"][1]) for op in interp._get_ops_details()
               if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}
    weights = [interp.get_tensor(index) for index in indices]
    total = sum(w.size for w in weights)
    return sum(int(np.count_nonzero(w == 0)) for w in weights) / total if total else 0.0


def compressed_bytes(model: bytes) -> int:
    """Bytes of the .tflite compressed with zlib (level 9): what a sparse model saves in a compressed
    download or a flash image with a decompressor; int8 TFLite itself stores weights dense."""
    return len(zlib.compress(model, 9))


def describe(recipe: Recipe) -> dict[str, Any]:
    """The techniques a recipe uses, for the report."""
    out: dict[str, Any] = {}
    if recipe.adversarial.epsilon:
        out["adversarial"] = {"epsilon": recipe.adversarial.epsilon, "ratio": recipe.adversarial.ratio}
    if recipe.distillation.teacher:
        out["distillation"] = {"teacher": recipe.distillation.teacher,
                               "temperature": recipe.distillation.temperature, "alpha": recipe.distillation.alpha}
    if recipe.pruning.sparsity:
        out["pruning"] = {"sparsity": recipe.pruning.sparsity, "begin_epoch": recipe.pruning.begin_epoch,
                          "end_epoch": recipe.pruning.end_epoch}
    if recipe.training.class_weights:
        out["class_weights"] = True
    return out


__all__ = ["TeacherError", "TeacherLogits", "compressed_bytes", "describe", "prune_model", "quantize_model",
           "strip_pruning", "teacher_tflite", "technique_model", "uses_wrapper", "weight_sparsity"]
