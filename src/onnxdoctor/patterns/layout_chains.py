"""Layout chains (GRF416, collapse-layout-chains): consecutive Reshape/Flatten/Squeeze/Unsqueeze/Transpose
nodes that one node (or none) can replace."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._proto import nested_reads
from ..model import Graph, Model

# Ops that change a tensor's shape but not the order of its elements.


VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


class Chain(NamedTuple):
    nodes: list[int]  # node indices, first to last
    x: str  # the chain's input
    y: str  # the chain's output
    op: str | None  # the one node that replaces it (None: removed, readers of y read x)
    value: list[int] | None  # Reshape: the shape; Transpose: perm; Squeeze/Unsqueeze: axes
    text: str


def layout_chains(model: Model, g: Graph) -> list[Chain]:
    """The chains GRF416 reports and collapse-layout-chains replaces, in graph `g` (disjoint)."""
    if not any(op in VIEW_OPS or op == "Transpose" for op in g.op_positions):
        return []
    nested = nested_reads(g.nodes) if g.may_nest else set()
    outputs = set(g.outputs)
    # node -> its family ("view" or "transpose"); standard-domain nodes only, as op_positions lists them
    family: dict[int, str] = {}
    for op in (*VIEW_OPS, "Transpose"):
        kind = "transpose" if op == "Transpose" else "view"
        for k in g.op_positions.get(op, ()):
            family[k] = kind
    ins_, outs_, consumers, producers = g.node_inputs, g.node_outputs, g.consumers, g.producers
    # node -> the next node of its chain: the one node of its family that reads its only output, as
    # its first input (the output neither a graph output nor read by a subgraph)
    nxt: dict[int, int] = {}
    for i, kind in family.items():
        outs = outs_[i]
        if len(outs) != 1:
            continue
        out = outs[0]
        if not out or out in outputs or out in nested:
            continue
        readers = consumers.get(out, ())
        if len(readers) != 1:
            continue
        r = readers[0]
        if r != i and family.get(r) == kind:  # r == i: a node reading the name it writes (SSA broken)
            ins = ins_[r]
            if ins and ins[0] == out:
                nxt[i] = r
    # a chain starts at a node that is not the next of its first input's producer
    followed = {r for i, r in nxt.items() if producers[outs_[i][0]][0] == i}
    positions = sorted(family)
    if not g.topo_sorted:
        rank = {k: r for r, k in enumerate(g.topo_order)}
        positions.sort(key=lambda k: rank.get(k, -1))
    found: list[Chain] = []
    ops = g.op_types
    for i in positions:
        if i in followed or not (ins := ins_[i]) or not ins[0]:
            continue  # not a chain's head
        k = nxt.get(i)
        if k is None:  # one node, the common case
            op = ops[i]
            if op == "Transpose":
                c = _identity_transpose(g, i, ins[0])
            elif op == "Reshape":
                c = _noop_reshape(g, i, ins[0])
            else:
                continue  # one Squeeze/Unsqueeze/Flatten changes the rank: never collapsible (see _collapse)
            if c is not None:
                found.append(c)
            continue
        chain, in_chain = [i, k], {i, k}
        # a name written twice (SSA broken) can link a chain back to itself: it ends there
        while (k := nxt.get(chain[-1])) is not None and k not in in_chain:
            chain.append(k)
            in_chain.add(k)
        start = 0
        while start < len(chain):
            for end in range(len(chain), start, -1):  # the longest collapsible run from `start`
                c = _collapse(model, g, chain[start:end])
                if c is not None:
                    found.append(c)
                    start = end
                    break
            else:
                start += 1
    return found


def _same_shape(a, b) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(
        x is not None and x == y and x != "" for x, y in zip(a, b))


def _shape(g: Graph, t: str):
    return g.shape_of(t)


def _const_ints(model: Model, g: Graph, t: str) -> list[int] | None:
    v = model.constants(g).value(t) if t else None
    if v is None or v.dtype.kind not in "iu" or v.ndim > 1:
        return None
    return [int(x) for x in v.reshape(-1)]


def _axes(model: Model, g: Graph, i: int) -> list[int] | None:
    ref = g.ref(i)
    if ref.has_attr("axes"):
        return ref.list_attr("axes")  # another kind of value (an int) is unknown here
    ins = g.node_inputs[i]
    if len(ins) > 1 and ins[1]:
        return _const_ints(model, g, ins[1])
    return None


def _perm(g: Graph, i: int) -> list[int] | None:
    # read from the proto (no rule but this one parses a Transpose's attributes): the first `perm`
    # counts, as in NodeRef.attr, which reads one of another kind
    for a in g.nodes[i].attribute:
        if a.name == "perm":
            if a.type == _INTS:
                return list(a.ints)
            perm = g.ref(i).attr("perm")  # a perm of another attribute kind (a float, a string): no chain
            return list(perm) if isinstance(perm, (list, tuple)) and all(isinstance(v, int) for v in perm) else None
    ins = g.node_inputs[i]
    rank = g.rank_of(ins[0] if ins else "")
    return list(range(rank - 1, -1, -1)) if rank is not None else None


_INTS = 7  # AttributeProto.INTS


def _collapse(model: Model, g: Graph, nodes: list[int]) -> Chain | None:
    ins, outs = g.node_inputs[nodes[0]], g.node_outputs[nodes[-1]]
    x, y = ins[0] if ins else "", outs[0] if outs else ""
    if not x or not y:
        return None
    n = len(nodes)
    if g.op_types[nodes[0]] == "Transpose":
        perm: list[int] | None = None
        for i in nodes:
            p = _perm(g, i)
            if p is None or (perm is not None and len(p) != len(perm)):
                return None
            perm = p if perm is None else [perm[k] for k in p]
        assert perm is not None
        if perm == list(range(len(perm))):
            what = "a Transpose with the identity permutation" if n == 1 else f"{n} Transposes that cancel"
            return Chain(nodes, x, y, None, None, f"{what}: the output is the input")
        if n == 1:
            return None
        return Chain(nodes, x, y, "Transpose", perm, f"{n} consecutive Transposes: one with perm={perm} replaces them")
    ops = [g.op_types[i] for i in nodes]
    if n == 1 and (ops[0] != "Reshape" or g.rank_of(x) != g.rank_of(y)):
        return None  # one Squeeze/Unsqueeze/Flatten changes the rank (or does nothing a checker allows)
    xs, ys = _shape(g, x), _shape(g, y)
    names = "→".join(ops)
    if _same_shape(xs, ys):
        return Chain(nodes, x, y, None, None, f"{names} gives its input's own shape: it does nothing")
    if n == 1:
        return None
    rank = g.rank_of(x)
    if set(ops) <= {"Squeeze", "Unsqueeze"} and rank is not None:
        net = _squeeze_unsqueeze(model, g, nodes, rank)
        if net is not None:
            kind, axes = net
            if kind is None:
                return Chain(nodes, x, y, None, None, f"{names} gives back its input: it does nothing")
            return Chain(nodes, x, y, kind, axes, f"{names}: one {kind} with axes={axes} replaces them")
    target = _reshape_target(model, g, nodes, xs, ys)
    if target is None:
        return None
    return Chain(nodes, x, y, "Reshape", target, f"{names}: one Reshape to {target} replaces them")


def _identity_transpose(g: Graph, i: int, x: str) -> Chain | None:
    """_collapse(model, g, [i]) for one Transpose reading `x`: an identity permutation."""
    outs = g.node_outputs[i]
    y = outs[0] if outs else ""
    if not y:
        return None
    perm = _perm(g, i)
    if perm is None or perm != list(range(len(perm))):
        return None
    return Chain([i], x, y, None, None, "a Transpose with the identity permutation: the output is the input")


def _noop_reshape(g: Graph, i: int, x: str) -> Chain | None:
    """_collapse(model, g, [i]) for one Reshape reading `x`: a Reshape to its input's own shape."""
    outs = g.node_outputs[i]
    y = outs[0] if outs else ""
    if not y:
        return None
    if not _same_shape(g.shape_of(x), g.shape_of(y)):
        return None
    return Chain([i], x, y, None, None, "Reshape gives its input's own shape: it does nothing")


def _squeeze_unsqueeze(model: Model, g: Graph, nodes: list[int], rank: int):
    """(None | 'Squeeze' | 'Unsqueeze', axes) equal to the chain, or None."""
    dims: list[object] = list(range(rank))  # the input's axes; "new" for an inserted one
    removed: list[int] = []
    for i in nodes:
        axes = _axes(model, g, i)
        out = None if axes is None else _apply_axes(dims, g.op_types[i] == "Unsqueeze", axes, "new")
        if out is None:
            return None
        removed.extend(d for d in out if d != "new")  # type: ignore[misc]
    kept = [d for d in dims if d != "new"]
    new = [k for k, d in enumerate(dims) if d == "new"]
    if removed and new:
        return None
    if removed:
        return "Squeeze", sorted(removed)
    if kept != list(range(rank)):
        return None
    return (None, None) if not new else ("Unsqueeze", new)


def _apply_axes(items: list, unsqueeze: bool, axes: list[int], inserted) -> list | None:
    """`items` (one per dim, changed in place) after an Unsqueeze (`inserted` at each new axis) or a
    Squeeze (the entries at `axes` removed); returns the removed entries, None for axes out of range
    or repeated (an Unsqueeze's)."""
    if unsqueeze:
        rank = len(items) + len(axes)
        norm = sorted(a + rank if a < 0 else a for a in axes)
        if len(set(norm)) != len(norm) or any(not 0 <= a < rank for a in norm):
            return None
        for a in norm:
            items.insert(a, inserted)
        return []
    norm = sorted({a + len(items) if a < 0 else a for a in axes}, reverse=True)
    if any(not 0 <= a < len(items) for a in norm):
        return None
    return [items.pop(a) for a in norm]


def _reshape_target(model: Model, g: Graph, nodes: list[int], xs, ys) -> list[int] | None:
    """A constant Reshape target for x that gives the chain's output, or None."""
    if ys is not None and all(d is not None for d in ys):
        target = []
        for j, d in enumerate(ys):
            if isinstance(d, int) and d > 0:
                target.append(d)
            elif xs is not None and j < len(xs) and isinstance(d, str) and d and xs[j] == d:
                target.append(0)
            else:
                break
        else:
            return target
    last = g.ref(nodes[-1])
    if last.op_type != "Reshape" or last.attr("allowzero", 0):
        return _reshape_then_squeezes(model, g, nodes)
    shape = _const_ints(model, g, last.input(1))
    if shape is None:
        return None
    mid = _shape(g, last.input(0))
    target = []
    for j, d in enumerate(shape):
        if d != 0:
            target.append(d)
            continue
        m = mid[j] if mid is not None and j < len(mid) else None
        if isinstance(m, int) and m > 0:
            target.append(m)
        elif isinstance(m, str) and m and xs is not None and j < len(xs) and xs[j] == m:
            target.append(0)
        else:
            return None
    return target


def _reshape_then_squeezes(model: Model, g: Graph, nodes: list[int]) -> list[int] | None:
    """The target of a Reshape to a constant shape followed by Squeezes and Unsqueezes of constant
    axes: the shape with their 1s inserted and removed (a TensorFlow export's Reshape then Unsqueeze
    before a Concat). A removed entry must be a literal 1, and a 0 (which copies the input's dim at
    its own position) must not move; a -1 may (the element count does not change)."""
    first = g.ref(nodes[0])
    if first.op_type != "Reshape" or first.attr("allowzero", 0) or \
            any(g.op_types[i] not in ("Squeeze", "Unsqueeze") for i in nodes[1:]):
        return None
    shape = _const_ints(model, g, first.input(1))
    if shape is None:
        return None
    entries: list[tuple[int, int | None]] = [(d, j) for j, d in enumerate(shape)]  # (value, position in `shape`)
    for i in nodes[1:]:
        axes = _axes(model, g, i)
        if not axes:  # unknown, or a Squeeze of every 1-dim (which needs the shapes)
            return None
        out = _apply_axes(entries, g.op_types[i] == "Unsqueeze", axes, (1, None))
        if out is None or any(d != 1 for d, _ in out):
            return None
    if any(d == 0 and j != k for k, (d, j) in enumerate(entries)):
        return None
    return [d for d, _ in entries]


def target_array(c: Chain) -> np.ndarray:
    return np.array(c.value, dtype=np.int64)
