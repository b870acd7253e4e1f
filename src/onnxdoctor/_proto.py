"""The proto toolkit every layer uses: the graph bodies of a node and every graph of a model (walked
one way everywhere), what those bodies read, the names a model uses and fresh ones, the node count,
the default-domain opset and a topological order that counts reads from inside bodies.

It imports no part of onnx (attribute kinds are plain numbers, as in `_typeinfo`), so `check`, the
rewrites and the proof all use it without paying for the onnx package."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from ._typeinfo import _GRAPH, _GRAPHS, GRAPH_ATTR_OPS, subgraphs_of


def bodies(node) -> Iterator:
    """The graphs a node carries (If branches, Loop/Scan bodies, graphs of custom ops)."""
    for a in node.attribute:
        if a.type == _GRAPH:
            yield a.g
        elif a.type == _GRAPHS:
            yield from a.graphs


def has_body(node) -> bool:
    """The node carries a graph. Only control-flow ops (and, rarely, custom ops) do: the attribute scan
    is skipped for the other standard ops."""
    if node.op_type not in GRAPH_ATTR_OPS and node.domain in ("", "ai.onnx"):
        return False
    return any(a.type in (_GRAPH, _GRAPHS) for a in node.attribute)


def graphs(graph) -> Iterator:
    """`graph` and every graph nested in it, preorder: the same order on every call, so two copies
    of a model (one inferred, one not) can be walked side by side."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        nested = [b for n in g.node for b in bodies(n)]
        stack.extend(reversed(nested))


def graph_protos(model) -> dict[tuple[str, ...], object]:
    """Every graph of `model` (main and control-flow bodies) by its `Graph.path` in onnxdoctor.model,
    so what is found in a checked (shape-inferred) view is applied to the same graph of a copy."""
    out: dict[tuple[str, ...], object] = {}
    stack: list[tuple[tuple[str, ...], object]] = [((), model.graph)]
    while stack:
        path, g = stack.pop()
        out[path] = g
        stack.extend((path + (label,), sub) for label, sub in subgraphs_of(g.node))
    return out


def body_reads(node) -> set[str]:
    """Every name read anywhere inside a node's bodies (nested ones too), and the bodies' outputs.
    Names are unique across scopes in ONNX (SSA), so this over-approximation of the node's
    outer-scope reads only adds inner names."""
    names: set[str] = set()
    stack = list(bodies(node))
    while stack:
        g = stack.pop()
        names.update(o.name for o in g.output)
        for n in g.node:
            names.update(n.input)
            stack.extend(bodies(n))
    return names


def nested_reads(nodes) -> set[str]:
    """Every name read by the bodies of `nodes` (a graph's nodes; nested bodies included), and the
    bodies' outputs: the values of that graph its control-flow bodies may read."""
    out: set[str] = set()
    for n in nodes:
        if has_body(n):
            out |= body_reads(n)
    out.discard("")
    return out


def node_count(model) -> int:
    """Nodes of the main graph and of every control-flow body in it (If/Loop/Scan, nested)."""
    return sum(len(g.node) for g in graphs(model.graph))


def taken_names(model) -> set[str]:
    """Every node, tensor and value name in every graph and local function: a new name must avoid them all."""
    names: set[str] = set()
    for g in graphs(model.graph):
        names.update(vi.name for vi in (*g.input, *g.output, *g.value_info))
        names.update(t.name for t in g.initializer)
        for n in g.node:
            names.update(n.input)
            names.update(n.output)
            names.add(n.name)
    for f in model.functions:
        for n in f.node:
            names.update(n.output)
            names.add(n.name)
    names.discard("")
    return names


def unique_name(taken: set[str], base: str) -> str:
    """`base`, or `base_1`, `base_2`, ...: the first not in `taken`, which is added to it."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def default_opset(model, missing: int = 0) -> int:
    """The model's `ai.onnx` opset version, `missing` when it imports no default domain."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), missing)


def toposorted(nodes: list) -> list:
    """`nodes` in an order where every node follows the producers of its inputs, reads from inside
    its bodies included; nodes already in order keep it (depth-first from each node in turn)."""
    produced = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    order: list[int] = []
    state: dict[int, int] = {}
    for start in range(len(nodes)):
        stack = [(start, False)]
        while stack:
            i, done = stack.pop()
            if done:
                state[i] = 2
                order.append(i)
                continue
            if state.get(i):
                continue
            state[i] = 1
            stack.append((i, True))
            deps = [produced[x] for x in nodes[i].input if x in produced]
            if has_body(nodes[i]):
                deps += sorted(produced[x] for x in body_reads(nodes[i]) if x in produced)
            for d in reversed(deps):
                if not state.get(d):
                    stack.append((d, False))
    return [nodes[i] for i in order]


# Scopes of control-flow bodies: the names a graph defines, what a body reads from outside, renaming.
def defined_names(graph, into: Counter) -> Counter:
    """Count every name `graph` (and the bodies nested in it) defines: inputs, initializers, node outputs."""
    for cur in graphs(graph):
        into.update(vi.name for vi in cur.input)
        into.update(t.name for t in cur.initializer)
        into.update(t.values.name for t in cur.sparse_initializer)
        for n in cur.node:
            into.update(o for o in n.output if o)
    return into


def outer_reads(body) -> list[str]:
    """Names `body` (or a body nested in it) reads that it does not define: its outer-scope
    references, in first-read order."""
    defined = defined_names(body, Counter())
    seen: dict[str, None] = {}
    for g in graphs(body):
        for n in g.node:
            for i in n.input:
                if i and i not in defined:
                    seen.setdefault(i, None)
        for vi in g.output:
            if vi.name not in defined:
                seen.setdefault(vi.name, None)
    return list(seen)


def rename(graph, mapping: dict[str, str]) -> None:
    """Apply `mapping` to every definition and use of a name in `graph` and the bodies nested in it."""
    if not mapping:
        return
    for cur in graphs(graph):
        for vi in (*cur.input, *cur.output, *cur.value_info):
            if vi.name in mapping:
                vi.name = mapping[vi.name]
        for t in cur.initializer:
            if t.name in mapping:
                t.name = mapping[t.name]
        for n in cur.node:
            for i, name in enumerate(n.input):
                if name in mapping:
                    n.input[i] = mapping[name]
            for i, name in enumerate(n.output):
                if name in mapping:
                    n.output[i] = mapping[name]


def rename_reads(graph, mapping: dict[str, str]) -> None:
    """Point every reader of a name in `mapping` at the mapped name: the nodes of `graph` and, for
    outer-scope references, of the bodies nested in it (whose outputs may be such a reference)."""
    for cur in graphs(graph):
        for n in cur.node:
            for i, name in enumerate(n.input):
                if name in mapping:
                    n.input[i] = mapping[name]
        if cur is not graph:
            for vi in cur.output:
                if vi.name in mapping:
                    vi.name = mapping[vi.name]


# TensorProto.DataLocation.EXTERNAL
_EXTERNAL = 1


def copy_without_initializers(model):
    """A copy of `model` whose main graph has no initializers, made field by field: neither the
    caller's model nor its weights are touched (detaching and re-adding repeated messages would copy
    every weight twice)."""
    out = type(model)()
    copy_fields(model, out, skip="graph")
    copy_fields(model.graph, out.graph, skip="initializer")
    return out


def copy_fields(src, dst, skip: str) -> None:
    """Copies every set field of message `src` into `dst` but `skip` (repeated ones appended)."""
    for fd, value in src.ListFields():
        if fd.name == skip:
            continue
        if fd.is_repeated:
            getattr(dst, fd.name).extend(value)
        elif fd.type == fd.TYPE_MESSAGE:
            getattr(dst, fd.name).CopyFrom(value)
        else:
            setattr(dst, fd.name, value)


# Initializers above this size are replaced by external-data stubs in `weightless` copies.
_WEIGHTLESS_MIN_BYTES = 1 << 16


def weightless(model):
    """A copy whose big initializers are external-data stubs (name, type, dims only): enough for
    shape inference, the checker and every rule, at a fraction of the cost. Returns `model` itself
    when nothing is big. Decided from dims and types, and copied field by field: the weights are
    neither serialized nor copied."""
    graph = model.graph
    big = [i for i, t in enumerate(graph.initializer)
           if t.data_location != _EXTERNAL and nbytes(t) > _WEIGHTLESS_MIN_BYTES]
    if not big or sum(nbytes(graph.initializer[i]) for i in big) <= 8 * _WEIGHTLESS_MIN_BYTES:
        return model
    out = copy_without_initializers(model)
    bigset = set(big)
    for i, t in enumerate(graph.initializer):
        if i in bigset:
            stub = out.graph.initializer.add()
            stub.name, stub.data_type = t.name, t.data_type
            stub.dims.extend(t.dims)
            stub.data_location = _EXTERNAL
            e = stub.external_data.add()
            e.key, e.value = "location", "in-memory-weights"
        else:
            out.graph.initializer.add().CopyFrom(t)
    return out


def nbytes(t) -> int:
    """A tensor's size from its dims and type (strings count 1 byte each): no data read."""
    from .dtype_limits import ITEMSIZE

    n = 1
    for d in t.dims:
        n *= d
    return n * ITEMSIZE.get(t.data_type, 1)
