"""Static memory plan: one offset in one scratch buffer for every intermediate activation.

Tensors whose lifetimes (producing layer to last reading layer, inclusive)
overlap must not share bytes, with one exception: a kernel that walks its
output pixels in raster order only reads input at or after the current
pixel's receptive field, so its output may start ``lead`` bytes below its
input and overlap the input's already-consumed part (in-place computation,
as TinyEngine does). Buffers are placed greedily at the lowest aligned
offset that clears every conflicting buffer, trying a few placement orders
and keeping the smallest peak. The graph input and output live in the
caller's buffers; RESHAPE outputs alias their input; conv layers also get a
one-layer int16 patch buffer (a conv fused with its max pool also keeps one
pooling window of conv rows there). :func:`best_plan` also chooses which
conv + max-pool pairs to fuse: fusing saves the conv's full output but adds
the window's rows, and the in-place overlap differs, so each choice is
planned and the smallest peak kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from edge_digits.engine.dot import DOT_KERNEL, dot_patch_bytes
from edge_digits.engine.graph import Graph, Layer, fusable_conv_maxpool, fuse_conv_maxpool

ALIGN = 4
RASTER_KERNELS = ("ed_conv2d", "ed_dwconv2d", "ed_maxpool2d", "ed_avgpool2d")


@dataclass(frozen=True)
class Placement:
    """Where a buffer's bytes live: region 'input', 'output' or 'scratch', at a byte offset."""

    region: str
    offset: int
    size: int


@dataclass(frozen=True)
class MemoryPlan:
    """Placements of activation tensors (by tensor index) and conv patches (by ``patch_key``).

    ``leads`` maps (output tensor, input tensor) of in-place layers to the bytes by which the
    output must start below the input; ``disjoint_bound`` is the smallest peak possible if live
    buffers never shared bytes.
    """

    placements: dict[int, Placement]
    scratch_bytes: int
    disjoint_bound: int
    copies: tuple[int, ...]
    leads: dict[tuple[int, int], int]


def patch_key(layer: Layer) -> int:
    """The placement key of a conv layer's patch buffer (negative, so never a tensor index)."""
    return -(layer.index + 1)


def patch_bytes(layer: Layer) -> int:
    """Bytes of int16 patch a conv layer needs, plus the conv rows of one pooling window when fused
    (the dot-product conv: its pixels' int8 receptive fields)."""
    if layer.kernel == DOT_KERNEL:
        return dot_patch_bytes(layer.params)
    if layer.kernel not in ("ed_conv2d", "ed_conv2d_maxpool"):
        return 0
    p = layer.params
    size = 2 * p.get("patch_stride", p["k_h"] * p["k_w"] * p["in_c"])
    if layer.pool is not None:
        size += min(layer.pool["f_h"], p["out_h"]) * p["out_w"] * p["out_c"]
    return size


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def raster_lead(layer: Layer) -> int | None:
    """Bytes by which a raster-order kernel's output must start below its input to run in place.

    Writing all channels of output pixel P touches output bytes below (P + 1) * out_c; every
    read from pixel P onward is at or above the first input byte of the receptive fields still
    to come. The lead is the largest difference, so no write ever lands on input not yet read.
    None for kernels that read their whole input per output (fully connected, softmax).

    >>> from edge_digits.engine.graph import Layer
    >>> dw = Layer(0, "DEPTHWISE_CONV_2D", "ed_dwconv2d", [0], 1, dict(in_h=4, in_w=4, in_c=2, out_h=4,
    ...            out_w=4, out_c=2, k_h=3, k_w=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1))
    >>> raster_lead(dw)  # one input row plus two pixels of 2 channels
    12
    """
    if layer.kernel == "ed_conv2d_maxpool":
        return _fused_lead(layer)
    if layer.kernel not in RASTER_KERNELS:
        return None
    p = layer.params
    in_c = p["in_c"] if "in_c" in p else p["c"]
    out_c = p["out_c"] if "out_c" in p else p["c"]
    first_read = []
    for oy in range(p["out_h"]):
        row = max(0, oy * p["stride_h"] - p["pad_h"])
        for ox in range(p["out_w"]):
            col = max(0, ox * p["stride_w"] - p["pad_w"])
            first_read.append((row * p["in_w"] + col) * in_c)
    lead = None
    still_needed = None
    for pixel in range(len(first_read) - 1, -1, -1):
        still_needed = first_read[pixel] if still_needed is None else min(still_needed, first_read[pixel])
        need = (pixel + 1) * out_c - still_needed
        lead = need if lead is None else max(lead, need)
    return lead


def _fused_lead(layer: Layer) -> int:
    """The lead of a fused conv + max pool: pooled row r is written after its band of input rows is read.

    Writing pooled rows 0..r must stay below the first input byte that the
    band of row r + 1 still reads.
    """
    p, q = layer.params, layer.pool or {}
    out_row, in_row = q["out_w"] * q["c"], p["in_w"] * p["in_c"]
    lead = 0
    for r in range(q["out_h"] - 1):
        conv_row = max(0, (r + 1) * q["stride_h"] - q["pad_h"])
        first = max(0, conv_row * p["stride_h"] - p["pad_h"]) * in_row
        lead = max(lead, (r + 1) * out_row - first)
    return lead


def place(sizes: dict[int, int], lifetimes: dict[int, tuple[int, int]], leads: dict[tuple[int, int], int],
          order: list[int]) -> dict[int, int]:
    """Offsets, in the given placement order, so that conflicting buffers never clash.

    >>> place({0: 8, 1: 8, 2: 4}, {0: (0, 1), 1: (1, 2), 2: (2, 3)}, {}, [0, 1, 2])
    {0: 0, 1: 8, 2: 0}
    >>> place({0: 8, 1: 8}, {0: (0, 1), 1: (1, 2)}, {(1, 0): 4}, [1, 0])  # 1 may start 4 below 0
    {0: 4, 1: 0}
    """
    offsets: dict[int, int] = {}
    for b in order:
        lo, hi = lifetimes[b]
        forbidden = []
        for o, off in offsets.items():
            if not (lifetimes[o][0] <= hi and lo <= lifetimes[o][1]):
                continue
            start, end = off - sizes[b], off + sizes[o]
            if (b, o) in leads:
                start = off - min(leads[(b, o)], sizes[b])
            elif (o, b) in leads:
                end = off + min(leads[(o, b)], sizes[o])
            if start < end:
                forbidden.append((start, end))
        candidates = sorted({0} | {_align(max(0, end)) for _, end in forbidden})
        offsets[b] = next(c for c in candidates if not any(s < c < e for s, e in forbidden))
    return {b: offsets[b] for b in sorted(offsets)}


def plan_memory(graph: Graph) -> MemoryPlan:
    """Assign every activation tensor and conv patch of the graph a region and offset."""
    root: dict[int, int] = {}
    copies: list[int] = []
    for layer in graph.layers:
        if layer.kernel == "reshape":
            src = root.get(layer.inputs[0], layer.inputs[0])
            if layer.output == graph.output:
                copies.append(layer.index)
            else:
                root[layer.output] = src
    sizes: dict[int, int] = {}
    lifetimes: dict[int, tuple[int, int]] = {}
    for step, layer in enumerate(graph.layers):
        for t in [*layer.inputs, layer.output]:
            b = root.get(t, t)
            if b in (graph.input, graph.output):
                continue
            sizes[b] = graph.tensors[b].size
            lo, hi = lifetimes.get(b, (step, step))
            lifetimes[b] = (min(lo, step), max(hi, step))
        if patch_bytes(layer):
            sizes[patch_key(layer)] = patch_bytes(layer)
            lifetimes[patch_key(layer)] = (step, step)
    leads: dict[tuple[int, int], int] = {}
    tensor_leads: dict[tuple[int, int], int] = {}
    for step, layer in enumerate(graph.layers):
        lead = raster_lead(layer)
        b_in, b_out = root.get(layer.inputs[0], layer.inputs[0]), root.get(layer.output, layer.output)
        if lead is None or b_in not in sizes or b_out not in sizes:
            continue
        if lifetimes[b_in][1] == step and lifetimes[b_out][0] == step:
            leads[(b_out, b_in)] = lead
            tensor_leads[(layer.output, layer.inputs[0])] = lead
    orders = [
        sorted(sizes, key=lambda b: (-sizes[b], lifetimes[b][0], b)),
        sorted(sizes, key=lambda b: (-lifetimes[b][1], -lifetimes[b][0], -sizes[b], b)),
        sorted(sizes, key=lambda b: (lifetimes[b][0], -sizes[b], b)),
    ]
    best: dict[int, int] = {}
    best_peak = None
    for order in orders:
        offsets = place(sizes, lifetimes, leads, order)
        peak = max((offsets[b] + sizes[b] for b in offsets), default=0)
        if best_peak is None or peak < best_peak:
            best, best_peak = offsets, peak
    steps = range(len(graph.layers))
    bound = max((sum(sizes[b] for b in sizes if lifetimes[b][0] <= s <= lifetimes[b][1]) for s in steps), default=0)
    placements: dict[int, Placement] = {}
    for layer in graph.layers:
        for t in [*layer.inputs, layer.output]:
            b = root.get(t, t)
            size = graph.tensors[t].size
            if b == graph.input:
                placements[t] = Placement("input", 0, size)
            elif b == graph.output:
                placements[t] = Placement("output", 0, size)
            else:
                placements[t] = Placement("scratch", best[b], size)
        if patch_bytes(layer):
            placements[patch_key(layer)] = Placement("scratch", best[patch_key(layer)], patch_bytes(layer))
    return MemoryPlan(placements, best_peak or 0, bound, tuple(copies), tensor_leads)


def best_plan(graph: Graph, max_choices: int = 6) -> tuple[Graph, MemoryPlan]:
    """The graph with the conv + max-pool fusions that give the smallest scratch, and its memory plan.

    Every subset of the fusable pairs is planned (all or none beyond
    ``max_choices`` pairs); on a tie the fewer fusions win.
    """
    pairs = fusable_conv_maxpool(graph)
    if len(pairs) <= max_choices:
        subsets = [set(c) for n in range(len(pairs) + 1) for c in combinations(pairs, n)]
    else:
        subsets = [set(), set(pairs)]
    best: tuple[Graph, MemoryPlan] | None = None
    for subset in subsets:
        g = fuse_conv_maxpool(graph, subset)
        mp = plan_memory(g)
        if best is None or mp.scratch_bytes < best[1].scratch_bytes:
            best = (g, mp)
    assert best is not None
    return best
