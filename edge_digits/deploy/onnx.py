"""ONNX export of the int8 models (tf2onnx), for ONNX-based stacks; ``runtime.onnx`` runs them.

The int8 .tflite becomes a QDQ ONNX graph (QuantizeLinear / DequantizeLinear around float Conv, MatMul
and pooling) with the same int8 input and output tensors. ONNX has no place for a tensor's quantization,
so the input and output scale and zero point ride along as metadata (``edge_digits.*`` keys), which
``OnnxSession`` reads to quantize images exactly as the TFLite runners do.
"""

from __future__ import annotations

import collections
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_digits.fileio import atomic_write_bytes, atomic_write_json
from edge_digits.runtime.onnx import META as _META
from edge_digits.runtime.onnx import OnnxError
from edge_digits.runtime.onnx import require as _require

OPSET = 17


@dataclass(frozen=True)
class OnnxVerification:
    """onnxruntime against LiteRT on the same MNIST test images."""

    count: int
    onnx_accuracy: float
    litert_accuracy: float
    identical_share: float
    max_abs_diff: int


@dataclass
class OnnxResult:
    out_dir: Path
    files: list[str]
    manifest: dict[str, Any]
    verification: OnnxVerification | None


def tflite_to_onnx(model: bytes) -> bytes:
    """An int8 .tflite as ONNX bytes (opset 17), with the input and output quantization as metadata."""
    import contextlib
    import io
    import warnings

    from edge_digits.flatbuffer import summarize_model

    summary = summarize_model(model)
    if summary.inputs[0].dtype != "int8" or summary.outputs[0].dtype != "int8":
        raise OnnxError(f"ONNX export takes an int8 model (int8 input and output), not "
                        f"{summary.inputs[0].dtype} -> {summary.outputs[0].dtype}: convert it with edge-digits "
                        "train or convert first")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf2onnx = _require("tf2onnx")
    onnx = _require("onnx")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx reads the model with tf.lite.Interpreter, which warns
            proto, _ = tf2onnx.convert.from_tflite(str(path), opset=OPSET)
    values = (summary.inputs[0].scale, summary.inputs[0].zero_point, summary.outputs[0].scale,
              summary.outputs[0].zero_point)
    for key, value in zip(_META, values):
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"edge_digits.{key}", repr(value)
    proto.producer_name = "edge-digits (tf2onnx)"
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


def _verify(model: bytes, onnx_path: Path, count: int, cache_dir: Path | None) -> OnnxVerification:
    from edge_digits.data import load_mnist
    from edge_digits.runtime import Classifier

    _, _, x, y = load_mnist(cache_dir)
    x, y = x[:count], y[:count]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        reference = Classifier(path, backend="litert").predict_raw(x)
    out = Classifier(onnx_path, backend="onnxruntime").predict_raw(x)
    diff = np.abs(out.astype(np.int32) - reference.astype(np.int32))
    return OnnxVerification(count, float(np.mean(out.argmax(1) == y)), float(np.mean(reference.argmax(1) == y)),
                            float(np.mean(np.all(diff == 0, axis=1))), int(diff.max()) if diff.size else 0)


def export_onnx(model_path: Path, out_dir: Path, calibration: int = 500, verify: int = 200,
                cache_dir: Path | None = None) -> OnnxResult:
    """Write ``out_dir/model.onnx`` and a manifest, checked against LiteRT on ``verify`` MNIST test images."""
    from edge_digits.deploy.convert import load_model_bytes

    model, origin = load_model_bytes(Path(model_path), calibration, cache_dir)
    data = tflite_to_onnx(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    proto = _require("onnx").load_from_string(data)
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    quantization = {p.key.removeprefix("edge_digits."): float(p.value) for p in proto.metadata_props
                    if p.key.startswith("edge_digits.")}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:  # verify before the file takes its final name
        staged = Path(tmp) / "model.onnx"
        staged.write_bytes(data)
        verification = _verify(model, staged, verify, cache_dir) if verify else None
    atomic_write_bytes(out_dir / "model.onnx", data)
    manifest: dict[str, Any] = {
        "source_model": str(model_path), "source_kind": origin, "format": "onnx", "opset": OPSET,
        "onnx_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "tflite_sha256": hashlib.sha256(model).hexdigest(), "ops": dict(sorted(ops.items())),
        "quantization": quantization,
        "verification": verification.__dict__ if verification else None,
        "files": ["model.onnx", "manifest.json"],
    }
    atomic_write_json(out_dir / "manifest.json", manifest)
    return OnnxResult(out_dir, manifest["files"], manifest, verification)


__all__ = ["OnnxError", "OnnxResult", "OnnxVerification", "export_onnx", "tflite_to_onnx"]
