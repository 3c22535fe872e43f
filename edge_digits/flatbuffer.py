"""Reading a ``.tflite`` file without an interpreter: its ops, its inputs and outputs, its tensor types.

The converter checks models with it, the HTTP service describes the model it
serves, and the model card tools list ops; it needs only the ``tflite``
flatbuffer schema package, never TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ModelFileError(ValueError):
    """The bytes are not a TFLite flatbuffer this project can read; the message says what is wrong."""


TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
                7: "int16", 9: "int8", 10: "float64", 17: "int4"}


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and quantization of one model input or output."""

    name: str
    shape: list[int]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class ModelSummary:
    """What the flatbuffer says about itself, read with the ``tflite`` schema package."""

    ops: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    float_tensors: list[str]
    tensor_types: dict[str, str]


def _op_name(code: Any) -> str:
    import tflite

    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == tflite.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode() if custom else '?'}"
    return str(tflite.opcode2name(builtin))


def summarize_model(model: bytes) -> ModelSummary:
    """Op list (in first-use order), inputs, outputs and tensor types of a TFLite flatbuffer."""
    try:
        import tflite
    except ImportError as exc:
        raise ModelFileError("reading flatbuffers needs the tflite schema package: pip install tflite") \
            from exc
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ModelFileError("not a TFLite flatbuffer: the file identifier 'TFL3' is missing at byte 4")
    try:
        root = tflite.Model.GetRootAsModel(model, 0)
        graph = root.Subgraphs(0)
        codes = [_op_name(root.OperatorCodes(i)) for i in range(root.OperatorCodesLength())]
    except Exception as exc:  # the flatbuffer library raises assorted errors on garbage
        raise ModelFileError(f"not a TFLite flatbuffer: {exc}") from exc
    if root.SubgraphsLength() != 1:
        raise ModelFileError(f"the model has {root.SubgraphsLength()} subgraphs; edge-digits handles one")

    ops: list[str] = []
    for i in range(graph.OperatorsLength()):
        name = codes[graph.Operators(i).OpcodeIndex()]
        if name not in ops:
            ops.append(name)

    def spec(index: int) -> TensorSpec:
        tensor = graph.Tensors(index)
        quant = tensor.Quantization()
        scale = float(quant.Scale(0)) if quant is not None and quant.ScaleLength() else 0.0
        zero = int(quant.ZeroPoint(0)) if quant is not None and quant.ZeroPointLength() else 0
        return TensorSpec(tensor.Name().decode(), [int(d) for d in tensor.ShapeAsNumpy()],
                          TENSOR_TYPES.get(tensor.Type(), str(tensor.Type())), scale, zero)

    types: dict[str, str] = {}
    floats: list[str] = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        name = tensor.Name().decode()
        kind = TENSOR_TYPES.get(tensor.Type(), str(tensor.Type()))
        types[name] = kind
        if kind in ("float32", "float16", "float64"):
            floats.append(name)
    return ModelSummary(ops, [spec(int(i)) for i in graph.InputsAsNumpy()],
                        [spec(int(i)) for i in graph.OutputsAsNumpy()], floats, types)
