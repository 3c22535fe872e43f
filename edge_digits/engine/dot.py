"""The dot-product form of a graph: CONV_2D and FULLY_CONNECTED layers as ``ed_conv2d_dot`` calls.

Hosts with 4-way int8 dot-product instructions (AVX-512 VNNI, Arm SDOT) and
NEON run convolutions fastest with the weights grouped four taps by sixteen
channels (see ``csrc/ed_conv_dot.c``). The rewrite is pure data: the same
integers in another order, zero-padded, and each channel's weight sum for
the input-offset term, so the engine's outputs do not change.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge_digits.engine.graph import Graph, Layer

DOT_LANES = 16
DOT_GROUP = 4
DOT_PIXELS = 8  # ED_DOT_PIXELS in csrc/ed_kernels.h
DOT_KERNEL = "ed_conv2d_dot"


def dot_weights(w: np.ndarray) -> np.ndarray:
    """[out_c][K] int8 weights as [out_c / 16][K / 4][16][4], both padded up with zeros."""
    out_c, k = w.shape
    blocks = -(-out_c // DOT_LANES)
    groups = -(-k // DOT_GROUP)
    padded = np.zeros((blocks * DOT_LANES, groups * DOT_GROUP), dtype=np.int8)
    padded[:out_c, :k] = w
    return padded.reshape(blocks, DOT_LANES, groups, DOT_GROUP).transpose(0, 2, 1, 3).reshape(-1)


def dot_patch_bytes(params: dict[str, int]) -> int:
    """Scratch for the receptive fields of ED_DOT_PIXELS output pixels, each padded to whole groups."""
    k = params["k_h"] * params["k_w"] * params["in_c"]
    return DOT_PIXELS * DOT_GROUP * (-(-k // DOT_GROUP))


def _conv_matrix(layer: Layer) -> np.ndarray:
    """A conv layer's weights as [out_c][k_h * k_w * in_c], whichever layout the lowering chose."""
    assert layer.weights is not None
    p = layer.params
    w = np.asarray(layer.weights, dtype=np.int8)
    if p["weights_transposed"]:
        w = np.moveaxis(w.reshape(p["k_h"], p["k_w"], p["in_c"], p["out_c"]), -1, 0)
    return w.reshape(p["out_c"], -1)


def with_patch_room(graph: Graph, simd: str) -> Graph:
    """Each conv's ``patch_stride``: int16 units of patch scratch, two receptive fields for the DSP path (it
    computes two output pixels at a time), one otherwise (the Helium path's two int8 fields fill one)."""
    layers = []
    for layer in graph.layers:
        if layer.kernel in ("ed_conv2d", "ed_conv2d_maxpool"):
            p = layer.params
            field = p["k_h"] * p["k_w"] * p["in_c"]
            layer = replace(layer, params=dict(p, patch_stride=(2 if simd == "dsp" else 1) * field))
        layers.append(layer)
    return replace(graph, layers=layers)


def untransposed(graph: Graph) -> Graph:
    """The graph with every conv's weights as [out_c][k_h][k_w][in_c] rows, the layout the SIMD paths read."""
    layers = []
    for layer in graph.layers:
        if layer.kernel in ("ed_conv2d", "ed_conv2d_maxpool") and layer.params["weights_transposed"]:
            p = layer.params
            rows = _conv_matrix(layer).reshape(p["out_c"], p["k_h"], p["k_w"], p["in_c"])
            layer = replace(layer, params=dict(p, weights_transposed=0), weights=rows)
        layers.append(layer)
    return replace(graph, layers=layers)


def offset_in_bias(graph: Graph) -> Graph:
    """The graph with each conv's input offset moved into its bias: bias + in_offset * sum(weights of the channel).

    The Helium path multiplies raw int8 inputs (the input zero point at padded taps, so a padded tap still
    adds (zero point + offset) * w = 0), and sum((x + offset) * w) = sum(x * w) + offset * sum(w) exactly in
    int32, so the results are TFLM's. ``bias_has_offset`` tells the kernel which bias it was given.
    """
    layers = []
    for layer in graph.layers:
        if layer.kernel in ("ed_conv2d", "ed_conv2d_maxpool") and not layer.params["weights_transposed"]:
            assert layer.bias is not None
            wsum = _conv_matrix(layer).astype(np.int64).sum(axis=1)
            bias = np.asarray(layer.bias, dtype=np.int64) + layer.params["in_offset"] * wsum
            if np.abs(bias).max(initial=0) >= 2**31:
                raise ValueError(f"layer {layer.index}: the bias with the input offset folded in overflows int32")
            layer = replace(layer, params=dict(layer.params, bias_has_offset=1), bias=bias.astype(np.int32))
        layers.append(layer)
    return replace(graph, layers=layers)


def dot_layer(layer: Layer) -> Layer:
    """The layer as an ``ed_conv2d_dot`` call if it is a CONV_2D or FULLY_CONNECTED, else unchanged.

    A fully connected layer of ``batches`` rows is a 1x1 convolution over a 1 x batches image.
    """
    if layer.kernel == "ed_conv2d":
        params = dict(layer.params, weights_transposed=0)
        matrix = _conv_matrix(layer)
    elif layer.kernel == "ed_fully_connected":
        p = layer.params
        params = dict(in_h=1, in_w=p["batches"], in_c=p["in_depth"], out_h=1, out_w=p["batches"],
                      out_c=p["out_depth"], k_h=1, k_w=1, stride_h=1, stride_w=1, pad_h=0, pad_w=0, depth_mult=1,
                      in_offset=p["in_offset"], out_offset=p["out_offset"], act_min=p["act_min"],
                      act_max=p["act_max"], weights_transposed=0)
        assert layer.weights is not None
        matrix = np.asarray(layer.weights, dtype=np.int8).reshape(p["out_depth"], p["in_depth"])
    else:
        return layer
    wsum = matrix.astype(np.int64).sum(axis=1)
    return replace(layer, kernel=DOT_KERNEL, params=params, weights=dot_weights(matrix), wsum=wsum)


def dot_graph(graph: Graph) -> Graph:
    """The graph with every CONV_2D and FULLY_CONNECTED layer in dot-product form."""
    return replace(graph, layers=[dot_layer(layer) for layer in graph.layers])
