"""ONNX export (tf2onnx) of the int8 models and the onnxruntime backend, checked against LiteRT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_digits.cli import main
from edge_digits.models import bundled_model
from edge_digits.runtime import Classifier, InferenceError


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist_cache: Path) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "micro"
    result = CliRunner().invoke(main, ["convert", "micro", "--format", "onnx", "--out", str(out), "--verify", "500",
                                       "--cache-dir", str(mnist_cache)])
    assert result.exit_code == 0, result.output
    assert "onnxruntime accuracy" in result.output and "identical int8 outputs" in result.output
    return out


def test_export_is_an_int8_qdq_graph_with_its_quantization_recorded(exported: Path) -> None:
    import onnx

    manifest = json.loads((exported / "manifest.json").read_text())
    model = onnx.load(str(exported / "model.onnx"))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "MaxPool", "MatMul", "Softmax"} <= ops
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT8
    meta = {p.key: float(p.value) for p in model.metadata_props}
    micro = Classifier(bundled_model("micro"))
    assert meta["edge_digits.input_scale"] == pytest.approx(micro.input.scale, rel=1e-6)
    assert meta["edge_digits.output_zero_point"] == micro.output.zero_point == -128
    assert manifest["opset"] == 17 and manifest["onnx_bytes"] == (exported / "model.onnx").stat().st_size
    v = manifest["verification"]
    assert v["count"] == 500 and abs(v["onnx_accuracy"] - v["litert_accuracy"]) <= 0.002
    assert v["identical_share"] > 0.98


def test_onnxruntime_reads_digits_as_litert_does(exported: Path, mnist) -> None:
    x, y = mnist[2][:2000], mnist[3][:2000]
    onnx_clf = Classifier(exported / "model.onnx")
    litert = Classifier(bundled_model("micro"), backend="litert")
    assert onnx_clf.backend == "onnxruntime" and onnx_clf.dynamic_batch
    a, b = onnx_clf.predict_raw(x), litert.predict_raw(x)
    assert a.dtype == np.int8 and a.shape == (2000, 10)
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.999
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 8  # float kernels between Q/DQ round a little apart
    assert np.mean(a.argmax(1) == y) > 0.99
    np.testing.assert_array_equal(onnx_clf.predict_raw(x[:1]), a[:1])


def test_backend_and_file_must_match_and_foreign_onnx_is_refused(exported: Path, tmp_path: Path) -> None:
    import onnx

    with pytest.raises(InferenceError, match="cannot run model.onnx: .onnx files run on the onnxruntime backend"):
        Classifier(exported / "model.onnx", backend="litert")
    with pytest.raises(InferenceError, match="cannot run micro_int8.tflite"):
        Classifier(bundled_model("micro"), backend="onnxruntime")
    bare = onnx.load(str(exported / "model.onnx"))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(InferenceError, match="has no edge_digits quantization metadata"):
        Classifier(tmp_path / "bare.onnx")


def test_eval_and_a_float_model_through_the_cli(exported: Path, mnist_cache: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", str(exported / "model.onnx"), "--limit", "500", "--json",
                                       "--cache-dir", str(mnist_cache)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backend"] == "onnxruntime" and report["count"] == 500 and report["accuracy"] > 0.98

    from edge_digits.deploy.onnx import OnnxError, tflite_to_onnx

    with pytest.raises(OnnxError, match="ONNX export takes an int8 model"):
        tflite_to_onnx(_float_tflite())


def _float_tflite() -> bytes:
    from edge_digits.train.tflite import tf_and_keras as _tf

    tf, keras = _tf()
    model = keras.Sequential([keras.layers.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
