"""The bundled models: present, within their budgets, and as accurate as their cards say."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edge_digits.flatbuffer import summarize_model
from edge_digits.measure.evaluate import evaluate_tflite
from edge_digits.models import ModelNotFound, bundled_model, model_card, resolve_model
from edge_digits.runtime import tflm

# Issue #3's goals: standard >= 99.5% in 64 KB, micro >= 99.0% in 24 KB with a 12 KB arena; seed-cnn
# is the tutorial yardstick (99.2% measured when bundled).
BUDGETS = {"standard": {"bytes": 64 * 1024, "accuracy": 0.995},
           "micro": {"bytes": 24 * 1024, "accuracy": 0.990, "arena": 12 * 1024},
           "seed-cnn": {"bytes": 240 * 1024, "accuracy": 0.990}}
MICRO_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"}


@pytest.mark.parametrize("name", ["standard", "micro", "seed-cnn"])
def test_bundled_model_meets_its_card_on_the_full_test_set(name: str, mnist_cache) -> None:
    path = bundled_model(name)
    card = model_card(name)
    data = path.read_bytes()
    assert card["sha256"] == hashlib.sha256(data).hexdigest(), "the card describes this very file"
    assert card["tflite_bytes"] == len(data) <= BUDGETS[name]["bytes"]
    result = evaluate_tflite(path, cache_dir=mnist_cache)
    assert result.count == 10000
    assert result.accuracy == pytest.approx(card["accuracy_int8"], abs=1e-9)
    assert result.accuracy >= BUDGETS[name]["accuracy"]
    assert abs(card["accuracy_int8_tflm"] - card["accuracy_int8"]) <= 0.001, "TFLM within 0.1 points of LiteRT"
    summary = summarize_model(data)
    assert summary.inputs[0].dtype == summary.outputs[0].dtype == "int8" and not summary.float_tensors


def test_micro_uses_only_microcontroller_ops_and_fits_the_arena() -> None:
    data = bundled_model("micro").read_bytes()
    assert set(summarize_model(data).ops) <= MICRO_OPS
    arena = tflm.measure_arena(data).total_bytes
    assert arena == model_card("micro")["tflm_arena_bytes"] <= BUDGETS["micro"]["arena"]
    assert tflm.allocates(data, arena) and not tflm.allocates(data, int(arena * 0.95))


def test_both_shipped_models_beat_the_tutorial_yardstick() -> None:
    seed = model_card("seed-cnn")
    for name in ("standard", "micro"):
        card = model_card(name)
        assert card["accuracy_int8"] > seed["accuracy_int8"], name
        assert card["tflite_bytes"] * 3 < seed["tflite_bytes"] and card["parameters"] * 4 < seed["parameters"], name


def test_model_lookup() -> None:
    assert resolve_model(None) == bundled_model("standard")
    assert resolve_model("micro") == bundled_model("micro")
    with pytest.raises(ModelNotFound, match="choose from standard, micro"):
        bundled_model("huge")


def test_the_delegate_reported_is_the_one_that_runs() -> None:
    """The delegate comes from the interpreter's execution plan: XNNPACK when it replaced the builtin
    kernels, the builtin kernels when the default delegates are turned off (not a label from the dtype)."""
    pytest.importorskip("ai_edge_litert")
    from edge_digits.runtime import Classifier
    from edge_digits.runtime.interpreter import InterpreterSession

    path = bundled_model("standard")
    assert Classifier(path, backend="litert").delegate == "XNNPACK"
    plain = InterpreterSession("litert", path, 1, default_delegates=False)
    assert plain.delegate == "builtin kernels"
    x = np.zeros((3, 28, 28, 1), np.int8)
    assert plain.run(x).shape == (3, 10)
