"""Slices read only by Slices they merge with, and Slices that keep every element (GRF418,
merge-slices)."""

from __future__ import annotations

from typing import NamedTuple

from .._proto import nested_reads
from ..dtype_limits import INT64_MAX
from ..model import Graph, Model, NodeRef


class SliceParams(NamedTuple):
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    axes: tuple[int, ...]  # non-negative
    steps: tuple[int, ...]


class SliceMerge(NamedTuple):
    first: NodeRef  # the Slice whose readers are all Slices (None-like when `noop`)
    readers: list[tuple[NodeRef, SliceParams]]  # each reader and its merged parameters (on first's input)
    noop: bool  # `first` keeps every element: its readers read its input


def params(model: Model, g: Graph, ref: NodeRef) -> SliceParams | None:
    """The constant parameters of a Slice (axes made non-negative), or None."""
    ins = g.node_inputs[ref.index]
    if ref.domain or len(ins) < 3 or model.op_version(ref) < 10:
        return None
    cv = model.constants(g)

    def ints(k: int) -> tuple[int, ...] | None:
        if k >= len(ins) or not ins[k]:
            return None
        v = cv.value(ins[k])
        if v is None or v.dtype.kind not in "iu" or v.ndim != 1:
            return None
        return tuple(int(x) for x in v)

    starts, ends = ints(1), ints(2)
    if starts is None or ends is None or len(starts) != len(ends):
        return None
    axes = ints(3) if len(ins) > 3 and ins[3] else tuple(range(len(starts)))
    steps = ints(4) if len(ins) > 4 and ins[4] else (1,) * len(starts)
    if axes is None or steps is None or len(axes) != len(starts) or len(steps) != len(starts) or 0 in steps:
        return None
    if any(a < 0 for a in axes):
        rank = g.rank_of(ins[0])
        if rank is None:
            return None
        axes = tuple(a + rank if a < 0 else a for a in axes)
    if len(set(axes)) != len(axes):
        return None
    return SliceParams(starts, ends, axes, steps)


def _keeps_all(g: Graph, x: str, p: SliceParams) -> bool:
    t = g.type_of(x)
    for s, e, a, st in zip(p.starts, p.ends, p.axes, p.steps):
        if st != 1 or s != 0:
            return False
        dim = t.shape[a] if t is not None and t.shape is not None and a < len(t.shape) else None
        if not (e >= INT64_MAX // 2 or (isinstance(dim, int) and e >= dim)):
            return False
    return True


def merged(first: SliceParams, second: SliceParams) -> SliceParams | None:
    """Parameters of one Slice equal to `second` applied to the result of `first`, or None."""
    out = {a: (s, e, st) for s, e, a, st in zip(first.starts, first.ends, first.axes, first.steps)}
    for s2, e2, a, st2 in zip(second.starts, second.ends, second.axes, second.steps):
        if a not in out:
            out[a] = (s2, e2, st2)
            continue
        s1, e1, st1 = out[a]
        if st1 != 1 or st2 != 1 or min(s1, e1, s2, e2) < 0:
            return None
        out[a] = (min(s1 + s2, INT64_MAX), min(e1, min(s1 + e2, INT64_MAX)), 1)
    axes = tuple(sorted(out))
    return SliceParams(tuple(out[a][0] for a in axes), tuple(out[a][1] for a in axes), axes, tuple(out[a][2] for a in axes))


def slice_merges(model: Model, g: Graph) -> list[SliceMerge]:
    """What GRF418 reports and merge-slices replaces in graph `g` (disjoint)."""
    positions = g.op_positions.get("Slice", ())
    if not positions:
        return []
    nested = nested_reads(g.nodes) if g.may_nest else set()
    outputs = set(g.outputs)
    found: list[SliceMerge] = []
    used: set[int] = set()
    for k in positions:
        if k in used:
            continue
        ref = g.ref(k)
        out = ref.output(0)
        p = params(model, g, ref)
        if p is None or not out or out in outputs or out in nested:
            continue
        readers = g.consumers.get(out, ())
        if _keeps_all(g, ref.input(0), p):
            if readers:
                found.append(SliceMerge(ref, [], True))
                used.add(k)
            continue
        if not readers or any(g.op_types[r] != "Slice" or not g.standard[r] or r in used for r in readers):
            continue
        plan = []
        for r in readers:
            rref = g.ref(r)
            rp = params(model, g, rref) if g.node_inputs[r][0] == out and out not in g.node_inputs[r][1:] else None
            m = merged(p, rp) if rp is not None else None
            if m is None:
                break
            plan.append((rref, m))
        else:
            found.append(SliceMerge(ref, plan, False))
            used.add(k)
            used.update(r for r in readers)
    return found
