"""Read an int8 TFLite flatbuffer into engine layers, rejecting what the engine cannot run.

Parsing uses the ``tflite`` schema package. Every operator is checked (op
type, tensor types, quantization, options) and lowered to one kernel call
with its integer parameters; anything unsupported raises
:class:`UnsupportedModelError` naming the layer index, the op and what to
change, so a model fails at generation time and never at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edge_digits.engine import quant


class UnsupportedModelError(ValueError):
    """The flatbuffer uses an op, type or option the native engine does not implement."""


@dataclass(frozen=True)
class Tensor:
    """One tensor of the graph: shape, int8/int32 type, quantization and constant data (if any)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int
    data: np.ndarray | None

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass
class Layer:
    """One operator lowered to a kernel call: C parameter struct values plus constant arrays."""

    index: int
    op: str
    kernel: str
    inputs: list[int]
    output: int
    params: dict[str, int] = field(default_factory=dict)
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    multiplier: list[int] | None = None
    shift: list[int] | None = None
    macs: int = 0
    pool: dict[str, int] | None = None  # ed_conv2d_maxpool: the fused MAX_POOL_2D's parameters
    wsum: np.ndarray | None = None  # ed_conv2d_dot: each output channel's sum of weights


@dataclass
class Graph:
    """The lowered model: tensors, layers in execution order, and the graph input and output tensor."""

    tensors: list[Tensor]
    layers: list[Layer]
    input: int
    output: int


_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}
# Conv filters shorter than this (k_h * k_w * in_c) get [k_h][k_w][in_c][out_c] weights (see ed_conv.c).
TRANSPOSE_BELOW = 64
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                 "FULLY_CONNECTED", "RESHAPE", "SOFTMAX", "MEAN")


def _builtin_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _read_tensor(model: Any, sg: Any, i: int) -> Tensor:
    t = sg.Tensors(i)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    dtype = _TYPE_NAMES.get(t.Type(), f"type{t.Type()}")
    q = t.Quantization()
    scale: tuple[float, ...] = ()
    zp: tuple[int, ...] = ()
    qdim = 0
    if q is not None and q.ScaleLength():
        scale = tuple(float(s) for s in q.ScaleAsNumpy())
        zp = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else (0,) * len(scale)
        qdim = int(q.QuantizedDimension())
    data = None
    buf = model.Buffers(t.Buffer())
    if buf is not None and buf.DataLength():
        np_type = {"int8": np.int8, "int32": np.int32, "float32": np.float32, "int64": np.int64,
                   "int16": np.int16, "uint8": np.uint8}.get(dtype)
        if np_type is not None:
            data = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=np_type).reshape(shape)
    elif buf is not None and buf.Offset() > 1:
        raise UnsupportedModelError(f"tensor {i} ({t.Name().decode()}): buffer stored outside the flatbuffer; "
                                    "re-convert the model without external buffers")
    return Tensor(i, t.Name().decode(errors="replace"), shape, dtype, scale, zp, qdim, data)


def _fail(layer: int, op: str, msg: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"layer {layer} ({op}): {msg}")


def _check_act_tensor(layer: int, op: str, t: Tensor, role: str) -> None:
    if t.dtype != "int8":
        raise _fail(layer, op, f"{role} tensor {t.index} '{t.name}' is {t.dtype}; the engine runs int8 only "
                    "(convert with full-integer quantization, int8 input and output)")
    if len(t.scale) != 1:
        raise _fail(layer, op, f"{role} tensor {t.index} '{t.name}' needs one per-tensor scale and zero point")
    if t.data is not None:
        raise _fail(layer, op, f"{role} tensor {t.index} '{t.name}' is a constant; the engine expects activations")


def _nhwc(layer: int, op: str, t: Tensor) -> tuple[int, int, int]:
    if len(t.shape) != 4 or t.shape[0] != 1:
        raise _fail(layer, op,
                    f"tensor {t.index} '{t.name}' has shape {list(t.shape)}; expected [1, H, W, C] (batch 1)")
    return t.shape[1], t.shape[2], t.shape[3]


def _padding(layer: int, op: str, padding: str, in_size: int, k: int, stride: int, out_size: int) -> int:
    """Top/left padding as TFLM's ComputePaddingHeightWidth, after checking the output size."""
    expect = (in_size + stride - 1) // stride if padding == "SAME" else (in_size - k + stride) // stride
    if expect != out_size:
        raise _fail(layer, op, f"output size {out_size} does not match {padding} padding (expected {expect})")
    total = max(0, (out_size - 1) * stride + k - in_size)
    return total // 2


def _activation(layer: int, op: str, code: int, out: Tensor) -> tuple[int, int]:
    name = _ACTIVATIONS.get(code, f"activation{code}")
    if name not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise _fail(layer, op, f"fused activation {name} is not supported; use NONE, RELU or RELU6")
    return quant.activation_range(name, out.scale[0], out.zero_point[0])


def _options(op: Any, cls: Any) -> Any:
    table = op.BuiltinOptions()
    opts = cls()
    if table is not None:
        opts.Init(table.Bytes, table.Pos)
        return opts
    return None


def _weights(layer: int, op: str, t: Tensor, channels: int, axis: int) -> np.ndarray:
    """The constant int8 weights of ``t``, after checking their type and per-channel quantization."""
    if t.dtype != "int8" or t.data is None:
        raise _fail(layer, op, f"weights tensor {t.index} '{t.name}' must be constant int8 (got {t.dtype}"
                    f"{'' if t.data is not None else ', not constant'})")
    if len(t.scale) not in (1, channels):
        raise _fail(layer, op, f"weights tensor {t.index} has {len(t.scale)} scales for {channels} channels")
    if len(t.scale) > 1 and t.quantized_dimension != axis:
        raise _fail(layer, op, f"weights tensor {t.index} is quantized along axis {t.quantized_dimension}, "
                    f"expected {axis}")
    if any(z != 0 for z in t.zero_point):
        raise _fail(layer, op, f"weights tensor {t.index} has a nonzero zero point; use symmetric int8 weights")
    return t.data


def _bias(layer: int, op: str, tensors: list[Tensor], idx: int, channels: int) -> np.ndarray:
    """The layer's int32 bias, or zeros when it has none (the kernels always add one)."""
    if idx < 0:
        return np.zeros(channels, dtype=np.int32)
    t = tensors[idx]
    if t.dtype != "int32" or t.data is None or t.size != channels:
        raise _fail(layer, op, f"bias tensor {idx} must be a constant int32 vector of {channels} "
                    f"(got {t.dtype} {list(t.shape)})")
    return t.data.reshape(-1).astype(np.int32)


def _lower_conv(i: int, op_name: str, op: Any, tensors: list[Tensor], ins: list[int], out: Tensor) -> Layer:
    import tflite

    depthwise = op_name == "DEPTHWISE_CONV_2D"
    opts = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
    x, w = tensors[ins[0]], tensors[ins[1]]
    _check_act_tensor(i, op_name, x, "input")
    in_h, in_w, in_c = _nhwc(i, op_name, x)
    out_h, out_w, out_c = _nhwc(i, op_name, out)
    if len(w.shape) != 4:
        raise _fail(i, op_name, f"weights tensor {w.index} has shape {list(w.shape)}; expected 4-D")
    if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
        raise _fail(i, op_name, "dilation is not supported; use dilation_rate=1")
    if depthwise:
        w_data = _weights(i, op_name, w, out_c, 3)
        k_h, k_w = w.shape[1], w.shape[2]
        if w.shape[0] != 1 or w.shape[3] != out_c or out_c % in_c:
            raise _fail(i, op_name, f"weights {list(w.shape)} do not fit input channels {in_c} -> {out_c}")
        depth_mult = out_c // in_c
        transposed = 0
        weights = w_data.reshape(k_h, k_w, out_c)
        macs = out_h * out_w * out_c * k_h * k_w
    else:
        w_data = _weights(i, op_name, w, out_c, 0)
        k_h, k_w = w.shape[1], w.shape[2]
        if w.shape[0] != out_c or w.shape[3] != in_c:
            raise _fail(i, op_name, f"weights {list(w.shape)} do not fit input channels {in_c} -> {out_c} "
                        "(grouped convolution is not supported)")
        depth_mult = 1
        transposed = int(k_h * k_w * in_c < TRANSPOSE_BELOW)
        weights = np.transpose(w_data, (1, 2, 3, 0)) if transposed else w_data
        macs = out_h * out_w * out_c * k_h * k_w * in_c
    padding = _PADDING[opts.Padding()]
    s_h, s_w = opts.StrideH(), opts.StrideW()
    pad_h = _padding(i, op_name, padding, in_h, k_h, s_h, out_h)
    pad_w = _padding(i, op_name, padding, in_w, k_w, s_w, out_w)
    act_min, act_max = _activation(i, op_name, opts.FusedActivationFunction(), out)
    mult, shift = quant.conv_multipliers(x.scale[0], np.array(w.scale, dtype=np.float32), out.scale[0], out_c)
    params = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
                  stride_h=s_h, stride_w=s_w, pad_h=pad_h, pad_w=pad_w, depth_mult=depth_mult,
                  in_offset=-x.zero_point[0], out_offset=out.zero_point[0], act_min=act_min, act_max=act_max,
                  weights_transposed=transposed)
    return Layer(i, op_name, "ed_dwconv2d" if depthwise else "ed_conv2d", [ins[0]], out.index, params,
                 weights=weights, bias=_bias(i, op_name, tensors, ins[2] if len(ins) > 2 else -1, out_c),
                 multiplier=mult, shift=shift, macs=macs)


def _lower_pool(i: int, op_name: str, op: Any, tensors: list[Tensor], ins: list[int], out: Tensor) -> Layer:
    import tflite

    opts = _options(op, tflite.Pool2DOptions)
    x = tensors[ins[0]]
    _check_act_tensor(i, op_name, x, "input")
    in_h, in_w, c = _nhwc(i, op_name, x)
    out_h, out_w, out_c = _nhwc(i, op_name, out)
    if out_c != c:
        raise _fail(i, op_name, "pooling must keep the channel count")
    if x.scale != out.scale or x.zero_point != out.zero_point:
        raise _fail(i, op_name, "input and output quantization differ; the int8 pooling kernels do not rescale")
    padding = _PADDING[opts.Padding()]
    f_h, f_w, s_h, s_w = opts.FilterHeight(), opts.FilterWidth(), opts.StrideH(), opts.StrideW()
    act_min, act_max = _activation(i, op_name, opts.FusedActivationFunction(), out)
    params = dict(in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w, f_h=f_h, f_w=f_w, stride_h=s_h,
                  stride_w=s_w, pad_h=_padding(i, op_name, padding, in_h, f_h, s_h, out_h),
                  pad_w=_padding(i, op_name, padding, in_w, f_w, s_w, out_w), act_min=act_min, act_max=act_max)
    kernel = "ed_maxpool2d" if op_name == "MAX_POOL_2D" else "ed_avgpool2d"
    return Layer(i, op_name, kernel, [ins[0]], out.index, params)


def _lower_fc(i: int, op_name: str, op: Any, tensors: list[Tensor], ins: list[int], out: Tensor) -> Layer:
    import tflite

    opts = _options(op, tflite.FullyConnectedOptions)
    x, w = tensors[ins[0]], tensors[ins[1]]
    _check_act_tensor(i, op_name, x, "input")
    if len(w.shape) != 2:
        raise _fail(i, op_name, f"weights tensor {w.index} has shape {list(w.shape)}; expected [units, depth]")
    units, depth = w.shape
    _weights(i, op_name, w, units, 0)
    if opts is not None and opts.WeightsFormat() != 0:
        raise _fail(i, op_name, "shuffled weights format is not supported; use the default weights format")
    if x.size % depth or out.size != (x.size // depth) * units:
        raise _fail(i, op_name, f"input of {x.size} values does not fit weights {list(w.shape)} and output "
                    f"{list(out.shape)}")
    act_min, act_max = _activation(i, op_name, opts.FusedActivationFunction() if opts else 0, out)
    mult, shift = quant.conv_multipliers(x.scale[0], np.array(w.scale, dtype=np.float32), out.scale[0], units)
    batches = x.size // depth
    params = dict(batches=batches, in_depth=depth, out_depth=units, in_offset=-x.zero_point[0],
                  out_offset=out.zero_point[0], act_min=act_min, act_max=act_max)
    return Layer(i, op_name, "ed_fully_connected", [ins[0]], out.index, params, weights=w.data,
                 bias=_bias(i, op_name, tensors, ins[2] if len(ins) > 2 else -1, units),
                 multiplier=mult, shift=shift, macs=batches * units * depth)


def _lower_reshape(i: int, op_name: str, op: Any, tensors: list[Tensor], ins: list[int], out: Tensor) -> Layer:
    x = tensors[ins[0]]
    _check_act_tensor(i, op_name, x, "input")
    if x.size != out.size or x.scale != out.scale or x.zero_point != out.zero_point:
        raise _fail(i, op_name, "input and output differ in size or quantization")
    return Layer(i, op_name, "reshape", [ins[0]], out.index, dict(size=out.size))


def _lower_softmax(i: int, op_name: str, op: Any, tensors: list[Tensor], ins: list[int], out: Tensor) -> Layer:
    import tflite

    opts = _options(op, tflite.SoftmaxOptions)
    x = tensors[ins[0]]
    _check_act_tensor(i, op_name, x, "input")
    if abs(out.scale[0] - 1 / 256) > 0.001 / 256 or out.zero_point[0] != -128:
        raise _fail(i, op_name, "int8 softmax output must have scale 1/256 and zero point -128")
    depth = x.shape[-1] if x.shape else 1
    mult, left_shift, diff_min = quant.softmax_params(opts.Beta() if opts else 1.0, x.scale[0])
    params = dict(rows=x.size // depth, depth=depth, input_multiplier=mult, input_left_shift=left_shift,
                  diff_min=diff_min)
    return Layer(i, op_name, "ed_softmax", [ins[0]], out.index, params)


def _lower_mean(i: int, op_name: str, op: Any, tensors: list[Tensor], ins: list[int], out: Tensor) -> Layer:
    x, axis = tensors[ins[0]], tensors[ins[1]]
    _check_act_tensor(i, op_name, x, "input")
    in_h, in_w, c = _nhwc(i, op_name, x)
    axes = sorted({int(a) % 4 for a in axis.data.reshape(-1)}) if axis.data is not None else None
    if axes != [1, 2] or out.size != c:
        raise _fail(i, op_name, f"only the mean over height and width (axis [1, 2], global average pooling) is "
                    f"supported; got axis {None if axis.data is None else axis.data.tolist()}")
    if x.scale == out.scale and x.zero_point == out.zero_point:
        raise _fail(i, op_name, "MEAN with identical input and output quantization takes a different TFLM path "
                    "that the engine does not implement; use AveragePooling2D over the whole map instead")
    mult, shift = quant.mean_multiplier(x.scale[0], out.scale[0], in_h * in_w)
    params = dict(pixels=in_h * in_w, c=c, in_offset=-x.zero_point[0], out_offset=out.zero_point[0],
                  multiplier=mult, shift=shift)
    return Layer(i, op_name, "ed_mean_hw", [ins[0]], out.index, params)


_LOWER = {"CONV_2D": _lower_conv, "DEPTHWISE_CONV_2D": _lower_conv, "MAX_POOL_2D": _lower_pool,
          "AVERAGE_POOL_2D": _lower_pool, "FULLY_CONNECTED": _lower_fc, "RESHAPE": _lower_reshape,
          "SOFTMAX": _lower_softmax, "MEAN": _lower_mean}


def read_graph(flatbuffer: bytes) -> Graph:
    """Parse and validate an int8 TFLite model and lower each operator to an engine layer."""
    import tflite

    try:
        model = tflite.Model.GetRootAsModel(flatbuffer, 0)
        n_sub = model.SubgraphsLength()
    except Exception as exc:  # the flatbuffers runtime raises assorted errors on garbage
        raise UnsupportedModelError(f"not a TFLite flatbuffer: {exc}") from exc
    if n_sub != 1:
        raise UnsupportedModelError(f"model has {n_sub} subgraphs; the engine runs single-subgraph models")
    sg = model.Subgraphs(0)
    names = _builtin_names()
    tensors = [_read_tensor(model, sg, i) for i in range(sg.TensorsLength())]
    if sg.InputsLength() != 1 or sg.OutputsLength() != 1:
        raise UnsupportedModelError("the engine needs exactly one input and one output tensor")
    g_in, g_out = int(sg.Inputs(0)), int(sg.Outputs(0))
    for role, idx in (("input", g_in), ("output", g_out)):
        t = tensors[idx]
        if t.dtype != "int8" or len(t.scale) != 1:
            raise UnsupportedModelError(f"model {role} tensor {idx} '{t.name}' is {t.dtype}; convert with "
                                        f"inference_{role}_type=tf.int8 and full-integer quantization")
    layers: list[Layer] = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        op_name = names.get(builtin, f"builtin {builtin}")
        if op_name == "CUSTOM" or op_name not in _LOWER:
            label = f"CUSTOM '{code.CustomCode().decode()}'" if op_name == "CUSTOM" else op_name
            raise _fail(i, label, "op not supported by the native engine; supported ops: " + ", ".join(SUPPORTED_OPS))
        ins = [int(v) for v in op.InputsAsNumpy()]
        outs = [int(v) for v in op.OutputsAsNumpy()]
        if len(outs) != 1:
            raise _fail(i, op_name, "expected exactly one output")
        out = tensors[outs[0]]
        _check_act_tensor(i, op_name, out, "output")
        layers.append(_LOWER[op_name](i, op_name, op, tensors, ins, out))
    _check_order(layers, g_in, g_out)
    return Graph(tensors, layers, g_in, g_out)


def fusable_conv_maxpool(graph: Graph) -> list[int]:
    """Indices of CONV_2D layers whose only reader is the MAX_POOL_2D right after them, and worth fusing.

    Only non-overlapping pooling windows (stride_h >= f_h) shorter than the
    conv output qualify: then every conv row is still computed once, and the
    fused kernel holds fewer rows than the conv output has.
    """
    readers: dict[int, int] = {}
    for layer in graph.layers:
        for t in layer.inputs:
            readers[t] = readers.get(t, 0) + 1
    found = []
    for conv, pool in zip(graph.layers, graph.layers[1:]):
        if (conv.kernel == "ed_conv2d" and pool.kernel == "ed_maxpool2d" and pool.inputs[0] == conv.output
                and readers.get(conv.output) == 1 and conv.output != graph.output
                and pool.params["stride_h"] >= pool.params["f_h"] and pool.params["f_h"] < conv.params["out_h"]):
            found.append(conv.index)
    return found


def fuse_conv_maxpool(graph: Graph, convs: set[int]) -> Graph:
    """The graph with each listed conv merged with its max pool into one ``ed_conv2d_maxpool`` layer."""
    allowed = set(fusable_conv_maxpool(graph)) & convs
    layers: list[Layer] = []
    skip = False
    for conv, nxt in zip(graph.layers, [*graph.layers[1:], None]):
        if skip:
            skip = False
            continue
        if conv.index in allowed and nxt is not None:
            layers.append(replace(conv, op=f"{conv.op}+{nxt.op}", kernel="ed_conv2d_maxpool", output=nxt.output,
                                  pool=dict(nxt.params)))
            skip = True
        else:
            layers.append(conv)
    return replace(graph, layers=layers)


def _check_order(layers: list[Layer], g_in: int, g_out: int) -> None:
    """Every layer input must be the graph input or an earlier layer's output, and the output must be produced."""
    ready = {g_in}
    for layer in layers:
        for t in layer.inputs:
            if t not in ready:
                raise _fail(layer.index, layer.op, f"input tensor {t} is not produced by an earlier layer")
        ready.add(layer.output)
    if g_out not in ready:
        raise UnsupportedModelError(f"model output tensor {g_out} is not produced by any layer")
