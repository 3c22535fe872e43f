"""The converter stage: an int8 ``.tflite`` plus everything a TensorFlow Lite Micro build needs.

Input is a ``.tflite`` or a Keras model / SavedModel (quantized here with a
representative set of MNIST training images). Output is the model, its bytes
as an aligned C array, an op resolver for exactly the ops used, and a manifest
with the arena size TFLM measurably needs. Every check runs before anything is
written, and the files are staged in a temp folder, so a failure leaves the
output folder untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits import __version__, int8
from edge_digits.deploy import tflm_arrays as cgen
from edge_digits.fileio import atomic_write_json
from edge_digits.flatbuffer import ModelFileError, ModelSummary, summarize_model
from edge_digits.runtime import tflm

DEFAULT_ARENA_MARGIN = 0.10


class ConvertError(ValueError):
    """The model cannot be converted for TFLM; the message names the tensor or op and the fix."""


@dataclass(frozen=True)
class Verification:
    """The C array's bytes run through TFLM and through the desktop interpreter on MNIST test images."""

    count: int
    tflm_accuracy: float
    desktop_accuracy: float
    desktop_backend: str
    identical_share: float
    max_abs_diff: int
    first_input: list[int] = field(default_factory=list, repr=False)
    first_output: list[int] = field(default_factory=list, repr=False)
    first_label: int = -1


@dataclass
class ConvertResult:
    """What ``convert_model`` wrote and measured."""

    out_dir: Path
    files: list[str]
    manifest: dict[str, Any]
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)


def _check_contract(name: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> None:
    """The runtime's model contract (28x28x1 in, 10 scores out), as a ConvertError."""
    from edge_digits.runtime import InferenceError, check_contract

    try:
        check_contract(name, input_shape, output_shape, 10)
    except InferenceError as exc:
        raise ConvertError(str(exc)) from exc


def check_for_tflm(summary: ModelSummary) -> None:
    """Raise ConvertError unless the model is fully int8 and every op is one TFLM provides."""
    for io_kind, specs in (("input", summary.inputs), ("output", summary.outputs)):
        for s in specs:
            if s.dtype != "int8":
                raise ConvertError(
                    f"model {io_kind} tensor '{s.name}' is {s.dtype}, not int8: convert with full-integer "
                    f"quantization and inference_{io_kind}_type=tf.int8 (or give the Keras model to "
                    "`edge-digits convert`, which does that)"
                )
    if summary.float_tensors:
        raise ConvertError(
            f"tensor '{summary.float_tensors[0]}' is {summary.tensor_types[summary.float_tensors[0]]} "
            f"({len(summary.float_tensors)} float tensors in all): the model is not fully int8; quantize it "
            "with a representative dataset and TFLITE_BUILTINS_INT8 only"
        )
    missing = [op for op in summary.ops if op not in cgen.TFLM_RESOLVER_METHODS]
    if missing:
        raise ConvertError(
            f"op {missing[0]} is not provided by TensorFlow Lite Micro"
            + (f" (nor {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + ": replace the layer that makes it with one built from TFLM's builtin ops"
        )


def quantize_keras(model_path: Path, calibration: int, cache_dir: Path | None = None) -> bytes:
    """Full-integer int8 conversion of a Keras model or SavedModel, calibrated on MNIST training images."""
    from edge_digits.data import load_mnist
    from edge_digits.train.tflite import convert_int8, load_keras_model, tf_and_keras

    tf, _ = tf_and_keras()

    if calibration < 1:
        raise ConvertError("--calibration must be at least 1 image")
    x_train = load_mnist(cache_dir)[0]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(x_train), size=min(calibration, len(x_train)), replace=False)

    if model_path.is_dir():
        converter = tf.lite.TFLiteConverter.from_saved_model(str(model_path))
    else:
        keras_model = load_keras_model(model_path)
        _check_contract(model_path.name, tuple(d or 1 for d in keras_model.input_shape),
                        tuple(d or 1 for d in keras_model.output_shape))
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)

    try:
        return convert_int8(converter, x_train[picks])
    except Exception as exc:  # the converter raises ConverterError and others with long texts
        raise ConvertError(f"TFLite int8 conversion failed: {str(exc).strip().splitlines()[-1]}") from exc


def load_model_bytes(model_path: Path, calibration: int, cache_dir: Path | None = None) -> tuple[bytes, str]:
    """The int8 flatbuffer for ``model_path`` and how it was obtained."""
    if not model_path.exists():
        raise ConvertError(f"{model_path} does not exist: give a .tflite, .keras, .h5 or SavedModel folder")
    if model_path.suffix == ".tflite":
        return model_path.read_bytes(), "tflite"
    if model_path.is_dir() and not (model_path / "saved_model.pb").exists():
        raise ConvertError(f"{model_path} is a folder without saved_model.pb: not a SavedModel")
    if not model_path.is_dir() and model_path.suffix not in (".keras", ".h5"):
        raise ConvertError(f"{model_path}: unknown model kind {model_path.suffix!r}; use .tflite, .keras or .h5")
    return quantize_keras(model_path, calibration, cache_dir), f"post-training int8 ({calibration} images)"


def desktop_int8_outputs(model: bytes, inputs: np.ndarray) -> tuple[np.ndarray, str]:
    """Raw int8 outputs of the desktop interpreter (LiteRT, else tflite-runtime) for raw int8 inputs."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        backend = "ai-edge-litert"
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter

            backend = "tflite-runtime"
        except ImportError as exc:
            raise ConvertError("no desktop TFLite interpreter: pip install ai-edge-litert") from exc
    interp = Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for sample in inputs:
        interp.set_tensor(inp["index"], sample.reshape(inp["shape"]))
        interp.invoke()
        results.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(results), backend


def verify_model(model: bytes, count: int, cache_dir: Path | None = None) -> Verification:
    """Run ``count`` MNIST test images through TFLM and the desktop interpreter and compare int8 outputs."""
    from edge_digits.data import load_mnist

    _, _, x_test, y_test = load_mnist(cache_dir)
    x, y = x_test[:count], y_test[:count]
    micro = tflm.TflmModel(model)
    inputs = int8.quantize_images(x, micro.input_scale, micro.input_zero_point)
    tflm_out = micro.invoke_raw(inputs)
    desk_out, backend = desktop_int8_outputs(model, inputs)
    same = np.all(tflm_out == desk_out, axis=1)
    diff = np.abs(tflm_out.astype(np.int32) - desk_out.astype(np.int32))
    return Verification(
        count=int(len(x)),
        tflm_accuracy=float(np.mean(tflm_out.argmax(axis=1) == y)),
        desktop_accuracy=float(np.mean(desk_out.argmax(axis=1) == y)),
        desktop_backend=backend,
        identical_share=float(np.mean(same)),
        max_abs_diff=int(diff.max()) if diff.size else 0,
        first_input=inputs[0].reshape(-1).tolist(),
        first_output=tflm_out[0].tolist(),
        first_label=int(y[0]),
    )


def _verification_summary(verification: Verification | None) -> dict[str, Any] | None:
    if verification is None:
        return None
    keep = ("count", "tflm_accuracy", "desktop_accuracy", "desktop_backend", "identical_share", "max_abs_diff")
    return {key: getattr(verification, key) for key in keep}


def _recommended_arena(measured: int, margin: float) -> int:
    return int(-(-int(measured * (1 + margin)) // 16) * 16)


def convert_model(
    model_path: Path,
    out_dir: Path,
    name: str = "model",
    calibration: int = 500,
    verify: int = 200,
    arena_margin: float = DEFAULT_ARENA_MARGIN,
    cache_dir: Path | None = None,
) -> ConvertResult:
    """Convert ``model_path`` into ``out_dir`` (model, C array, op resolver, manifest), verified on TFLM."""
    cgen.c_identifier(name)
    if verify < 0:
        raise ConvertError("--verify must be 0 (off) or a number of test images")
    model, origin = load_model_bytes(Path(model_path), calibration, cache_dir)
    try:
        summary = summarize_model(model)
    except ModelFileError as exc:
        raise ConvertError(str(exc)) from exc
    _check_contract(Path(model_path).name, tuple(summary.inputs[0].shape), tuple(summary.outputs[0].shape))
    check_for_tflm(summary)
    sha = hashlib.sha256(model).hexdigest()
    arena = tflm.measure_arena(model)
    recommended = _recommended_arena(arena.total_bytes, arena_margin)

    sources = {
        "model_data.h": cgen.model_data_header(name, len(model), sha, Path(model_path).name),
        "model_data.cc": cgen.model_data_source(name, model, sha, Path(model_path).name),
        "model_ops.h": cgen.op_resolver_header(name, summary.ops),
    }
    c_bytes = cgen.parse_c_array(sources["model_data.cc"])
    if c_bytes != model:
        raise ConvertError("internal error: the generated C array does not round-trip to the model bytes")
    verification = verify_model(c_bytes, verify, cache_dir) if verify else None
    if verification is not None:
        sources["model_test_input.h"] = cgen.sample_input_header(
            verification.first_input, verification.first_output, verification.first_label, 0)

    manifest: dict[str, Any] = {
        "name": name,
        "source_model": str(model_path),
        "source_kind": origin,
        "flatbuffer_bytes": len(model),
        "sha256": sha,
        "inputs": [asdict(s) for s in summary.inputs],
        "outputs": [asdict(s) for s in summary.outputs],
        "ops": summary.ops,
        "tflm_arena_bytes": arena.total_bytes,
        "tflm_arena_head_bytes": arena.head_bytes,
        "tflm_arena_tail_bytes": arena.tail_bytes,
        "tflm_arena_recommended_bytes": recommended,
        "tflm_arena_margin": arena_margin,
        "tflm_arena_note": (
            "measured by the tflite_micro Python runtime's RecordingMicroAllocator on a 64-bit host; a 32-bit "
            f"microcontroller needs slightly less; the recommended size adds {arena_margin:.0%} and rounds up to 16"
        ),
        "verification": _verification_summary(verification),
        "files": ["model.tflite", *sources, "manifest.json"],
        "edge_digits_version": __version__,
    }
    _write_outputs(Path(out_dir), model, sources, manifest)
    return ConvertResult(Path(out_dir), manifest["files"], manifest, verification)


def _write_outputs(out_dir: Path, model: bytes, sources: dict[str, str], manifest: dict[str, Any]) -> None:
    """Stage every file in a temp folder beside ``out_dir``, then move each into place, the manifest last."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        (staging / "model.tflite").write_bytes(model)
        for filename, text in sources.items():
            (staging / filename).write_text(text)
        atomic_write_json(staging / "manifest.json", manifest)
        out_dir.mkdir(exist_ok=True)
        for filename in ["model.tflite", *sources, "manifest.json"]:
            os.replace(staging / filename, out_dir / filename)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
