"""Static memory plan: one offset in one scratch buffer for every intermediate activation.

Tensors whose lifetimes (producing layer to last reading layer, inclusive)
overlap must not overlap in memory; others may share bytes. Buffers are placed
greedily, largest first, at the lowest aligned offset that clears every
already-placed buffer alive at the same time; this usually reaches the lower
bound (the largest sum of sizes alive at one layer), which is reported too.
The graph input and output live in the caller's buffers, and RESHAPE outputs
alias their input instead of taking space.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_digits.firmware.graph import Graph

ALIGN = 4


@dataclass(frozen=True)
class Placement:
    """Where a tensor's bytes live: region 'input', 'output' or 'scratch', at a byte offset."""

    region: str
    offset: int
    size: int


@dataclass(frozen=True)
class MemoryPlan:
    """Placements of every activation tensor, the scratch size and the graph's lower bound."""

    placements: dict[int, Placement]
    scratch_bytes: int
    lower_bound: int
    copies: tuple[int, ...]


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def place(sizes: dict[int, int], lifetimes: dict[int, tuple[int, int]]) -> dict[int, int]:
    """Greedy-by-size offsets so that buffers alive at the same step never overlap.

    >>> place({0: 8, 1: 8, 2: 4}, {0: (0, 1), 1: (1, 2), 2: (2, 3)})
    {0: 0, 1: 8, 2: 0}
    """
    order = sorted(sizes, key=lambda b: (-sizes[b], lifetimes[b][0], b))
    offsets: dict[int, int] = {}
    for b in order:
        lo, hi = lifetimes[b]
        busy = sorted((offsets[o], offsets[o] + sizes[o]) for o in offsets
                      if lifetimes[o][0] <= hi and lo <= lifetimes[o][1])
        offset = 0
        for start, end in busy:
            if offset + sizes[b] <= start:
                break
            offset = max(offset, _align(end))
        offsets[b] = offset
    return {b: offsets[b] for b in sorted(offsets)}


def plan_memory(graph: Graph) -> MemoryPlan:
    """Assign every activation tensor of the graph a region and offset (RESHAPE aliases where it can)."""
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
    offsets = place(sizes, lifetimes)
    scratch = max((offsets[b] + sizes[b] for b in offsets), default=0)
    steps = range(len(graph.layers))
    lower = max((sum(sizes[b] for b in sizes if lifetimes[b][0] <= s <= lifetimes[b][1]) for s in steps), default=0)
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
                placements[t] = Placement("scratch", offsets[b], size)
    return MemoryPlan(placements, scratch, lower, tuple(copies))
