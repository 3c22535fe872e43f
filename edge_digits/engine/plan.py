"""Static memory plan: one offset in one scratch buffer for every intermediate activation.

Tensors whose lifetimes (producing layer to last reading layer, inclusive)
overlap must not share bytes, with one exception: a kernel that walks its
output pixels in raster order only reads input at or after the current
pixel's receptive field, so its output may start ``lead`` bytes below its
input and overlap the input's already-consumed part (in-place computation,
as TinyEngine does). A plain convolution may also run its output rows last
to first, and then its output may start ``rev`` bytes *above* its input and
overlap the part not yet read from the top. Buffers are placed greedily at
the lowest aligned offset that clears every conflicting buffer; a few
placement orders are tried and then improved by moving one buffer at a time
in the order (a bounded local search), keeping the smallest peak. The graph
input and output live in the
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
    output must start below the input when the layer runs in raster order; ``revs`` to the bytes by
    which it must start above the input when it runs its rows last to first, as the layers in
    ``reversed_layers`` (by layer index) do; ``disjoint_bound`` is the smallest peak possible if live
    buffers never shared bytes.
    """

    placements: dict[int, Placement]
    scratch_bytes: int
    disjoint_bound: int
    copies: tuple[int, ...]
    leads: dict[tuple[int, int], int]
    revs: dict[tuple[int, int], int]
    reversed_layers: tuple[int, ...]


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


def reverse_lead(layer: Layer) -> int | None:
    """Bytes by which a plain convolution's output must start above its input when its rows run last to first.

    Rows are written from the last to the first (pixels of a row still left to right, as the kernel
    takes them), so the lowest byte written while row ``oy`` is computed is that row's first byte, and
    every read still to come lies below the end of row ``oy``'s receptive fields. None for other kernels.

    >>> from edge_digits.engine.graph import Layer
    >>> conv = Layer(0, "CONV_2D", "ed_conv2d", [0], 1, dict(in_h=4, in_w=4, in_c=1, out_h=4, out_w=4,
    ...              out_c=2, k_h=3, k_w=3, stride_h=1, stride_w=1, pad_h=1, pad_w=1))
    >>> reverse_lead(conv)  # row 0 reads input rows 0-1 (8 bytes) and starts the output
    8
    """
    if layer.kernel != "ed_conv2d":
        return None
    p = layer.params
    last_col = min(p["in_w"] - 1, (p["out_w"] - 1) * p["stride_w"] - p["pad_w"] + p["k_w"] - 1)
    rev = None
    for oy in range(p["out_h"]):
        last_row = min(p["in_h"] - 1, oy * p["stride_h"] - p["pad_h"] + p["k_h"] - 1)
        need = (last_row * p["in_w"] + last_col + 1) * p["in_c"] - oy * p["out_w"] * p["out_c"]
        rev = need if rev is None else max(rev, need)
    return rev


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
          order: list[int], revs: dict[tuple[int, int], int] | None = None) -> dict[int, int]:
    """Offsets, in the given placement order, so that conflicting buffers never clash.

    An in-place pair (output, input) may overlap where the output starts at least ``leads`` bytes
    below the input (raster order) or, where ``revs`` has the pair, at least that many above it.

    >>> place({0: 8, 1: 8, 2: 4}, {0: (0, 1), 1: (1, 2), 2: (2, 3)}, {}, [0, 1, 2])
    {0: 0, 1: 8, 2: 0}
    >>> place({0: 8, 1: 8}, {0: (0, 1), 1: (1, 2)}, {(1, 0): 4}, [1, 0])  # 1 may start 4 below 0
    {0: 4, 1: 0}
    >>> place({0: 12, 1: 8, 2: 4}, {0: (0, 1), 1: (1, 2), 2: (0, 2)}, {(1, 0): 8}, [2, 0, 1], {(1, 0): 4})
    {0: 4, 1: 8, 2: 0}
    """
    revs = revs or {}
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
                end = off + min(revs.get((b, o), sizes[o]), sizes[o])
            elif (o, b) in leads:
                start = off - min(revs.get((o, b), sizes[b]), sizes[b])
                end = off + min(leads[(o, b)], sizes[o])
            if start < end:
                forbidden.append((start, end))
        candidates = sorted({0} | {_align(max(0, end)) for _, end in forbidden})
        offsets[b] = next(c for c in candidates if not any(s < c < e for s, e in forbidden))
    return {b: offsets[b] for b in sorted(offsets)}


def _peak(offsets: dict[int, int], sizes: dict[int, int]) -> int:
    return max((offsets[b] + sizes[b] for b in offsets), default=0)


def improve_order(sizes: dict[int, int], lifetimes: dict[int, tuple[int, int]], leads: dict[tuple[int, int], int],
                  revs: dict[tuple[int, int], int], order: list[int], budget: int) -> tuple[int, dict[int, int]]:
    """The smallest peak, and its offsets, found by moving one buffer to another place in the order,
    repeated while it helps and at most ``budget`` placements are tried (greedy placement is
    order-sensitive)."""
    offsets = place(sizes, lifetimes, leads, order, revs)
    best = _peak(offsets, sizes)
    tried, improved = 0, True
    while improved and tried < budget:
        improved = False
        for i in range(len(order)):
            for j in range(len(order)):
                if i == j or tried >= budget:
                    continue
                moved = order[:i] + order[i + 1:]
                moved.insert(j, order[i])
                tried += 1
                placed = place(sizes, lifetimes, leads, moved, revs)
                peak = _peak(placed, sizes)
                if peak < best:
                    best, order, offsets, improved = peak, moved, placed, True
    return best, offsets


def plan_memory(graph: Graph, search: int = 2000, reverse: bool = True) -> MemoryPlan:
    """Assign every activation tensor and conv patch of the graph a region and offset.

    ``search`` bounds the placements the local search tries from each starting order (0: none);
    ``reverse`` lets plain convolutions run their rows last to first where that overlaps more.
    """
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
    revs: dict[tuple[int, int], int] = {}
    in_place: dict[tuple[int, int], Layer] = {}
    for step, layer in enumerate(graph.layers):
        lead = raster_lead(layer)
        b_in, b_out = root.get(layer.inputs[0], layer.inputs[0]), root.get(layer.output, layer.output)
        if lead is None or b_in not in sizes or b_out not in sizes:
            continue
        if lifetimes[b_in][1] == step and lifetimes[b_out][0] == step:
            leads[(b_out, b_in)] = lead
            in_place[(b_out, b_in)] = layer
            rev = reverse_lead(layer) if reverse else None
            if rev is not None:
                revs[(b_out, b_in)] = rev
    orders = [
        sorted(sizes, key=lambda b: (-sizes[b], lifetimes[b][0], b)),
        sorted(sizes, key=lambda b: (-lifetimes[b][1], -lifetimes[b][0], -sizes[b], b)),
        sorted(sizes, key=lambda b: (lifetimes[b][0], -sizes[b], b)),
    ]
    best_peak, best = min((improve_order(sizes, lifetimes, leads, revs, order, search) for order in orders),
                          key=lambda r: r[0])
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
    tensor_leads, tensor_revs, reversed_layers = {}, {}, []
    for (b_out, b_in), layer in in_place.items():
        key = (layer.output, layer.inputs[0])
        tensor_leads[key] = leads[(b_out, b_in)]
        if (b_out, b_in) in revs:
            tensor_revs[key] = revs[(b_out, b_in)]
        shift = best[b_out] - best[b_in]
        if -min(leads[(b_out, b_in)], sizes[b_out]) < shift < sizes[b_in]:
            reversed_layers.append(layer.index)  # overlapping from above: only rows last to first are safe
    return MemoryPlan(placements, best_peak, bound, tuple(copies), tensor_leads, tensor_revs,
                      tuple(sorted(reversed_layers)))


def best_plan(graph: Graph, max_choices: int = 6, search: int = 8000) -> tuple[Graph, MemoryPlan]:
    """The graph with the conv + max-pool fusions that give the smallest scratch, and its memory plan.

    Every subset of the fusable pairs is planned (all or none beyond
    ``max_choices`` pairs); on a tie the fewer fusions win. ``search`` placements of local search
    are shared among the subsets.
    """
    pairs = fusable_conv_maxpool(graph)
    if len(pairs) <= max_choices:
        subsets = [set(c) for n in range(len(pairs) + 1) for c in combinations(pairs, n)]
    else:
        subsets = [set(), set(pairs)]
    best: tuple[Graph, MemoryPlan] | None = None
    for subset in subsets:
        g = fuse_conv_maxpool(graph, subset)
        mp = plan_memory(g, search=max(100, search // len(subsets)))
        if best is None or mp.scratch_bytes < best[1].scratch_bytes:
            best = (g, mp)
    assert best is not None
    return best
