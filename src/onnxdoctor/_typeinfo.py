"""Value types as plain tuples, and the order of a model's graphs: shared by the model views and the
shape-inference helper process, so this module imports neither numpy nor onnxdoctor's model.

A value type is (kind, elem_type, shape): kind is tensor | sparse_tensor | sequence | optional | map |
unknown, elem_type the ONNX element type (0 = unknown), shape None when the rank is unknown, else a
tuple of dims, each an int, a symbolic name, or None (unknown).

`pack` (`pack_serialized` from the inferred model's bytes, as the helper calls it) is what the
helper sends back instead of the inferred model: for each graph in `graph_order`,
its value types by name (what model/core.py, _fill_types, reads from the protos), with each distinct type
decoded once. Unpacking it (marshal) costs the checking process a few milliseconds instead of parsing
the inferred model and wrapping 20,000 value_info protos (~0.05 s on the 20,000-node benchmark).
"""

from __future__ import annotations

from collections.abc import Iterator

KINDS = {"tensor_type": "tensor", "sparse_tensor_type": "sparse_tensor", "sequence_type": "sequence",
         "optional_type": "optional", "map_type": "map"}

# Standard ops that carry graph attributes (others may only on custom domains).
GRAPH_ATTR_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})
_GRAPH, _GRAPHS = 5, 10  # AttributeProto.GRAPH, AttributeProto.GRAPHS


def _text(value) -> str:
    # protobuf returns the bytes of a string field that is not valid UTF-8
    return value.decode("utf-8", "backslashreplace") if type(value) is bytes else value


def type_tuple(tp) -> tuple:  # tp: a TypeProto
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        tt = tp.tensor_type
        shape = None
        if tt.HasField("shape"):
            dims: list[int | str | None] = []
            for d in tt.shape.dim:
                w = d.WhichOneof("value")
                # a negative dim in value_info is meaningless: unknown (graph I/O is validated at load)
                dims.append((d.dim_value if d.dim_value >= 0 else None) if w == "dim_value"
                            else _text(d.dim_param) or None if w == "dim_param" else None)
            shape = tuple(dims)
        return ("tensor", tt.elem_type, shape)
    if which == "sparse_tensor_type":
        return ("sparse_tensor", tp.sparse_tensor_type.elem_type, None)
    return (KINDS.get(which, "unknown"), 0, None)


def subgraphs_of(nodes, op_types: list[str] | None = None, standard: list[bool] | None = None) -> Iterator[tuple[str, object]]:
    """(path label, GraphProto) of each graph attribute of `nodes`, in node and attribute order.
    `op_types`/`standard`: the nodes' op types and standard-domain flags, when already read."""
    if op_types is None or standard is None:
        op_types = [n.op_type for n in nodes]
        standard = [n.domain in ("", "ai.onnx") for n in nodes]
    for i, node in enumerate(nodes):
        # Graph attributes exist on control-flow ops and, possibly, custom ops only: skip the
        # attribute walk for the other standard ops.
        if standard[i] and op_types[i] not in GRAPH_ATTR_OPS:
            continue
        for a in node.attribute:
            subs = [a.g] if a.type == _GRAPH else list(a.graphs) if a.type == _GRAPHS else []
            for k, sub in enumerate(subs):
                label = a.name if len(subs) == 1 else f"{a.name}[{k}]"
                yield f"{node.name or f'{node.op_type}#{i}'}/{label}", sub


def graph_order(model, serialized: bytes | None = None) -> list:  # model: a ModelProto
    """The graphs of `model` in the order of Model.graphs: main graph, subgraphs depth-first (in node
    and attribute order), then the local functions. `serialized`: `model`'s bytes, when at hand (see
    may_have_subgraphs)."""
    out = []
    if serialized is not None and not may_have_subgraphs(serialized):
        out.append(model.graph)
    else:
        stack = [model.graph]
        while stack:
            gp = stack.pop()
            out.append(gp)
            stack.extend(reversed([sub for _, sub in subgraphs_of(gp.node)]))
    out.extend(model.functions)
    return out


# How an AttributeProto's `type` field (number 20, a varint) reads GRAPH (5) or GRAPHS (10) in the
# wire format: tag 0xA0 0x01, then the value.
_GRAPH_TYPE_BYTES = (b"\xa0\x01\x05", b"\xa0\x01\x0a")


def may_have_subgraphs(serialized: bytes) -> bool:
    """False when no attribute of the serialized model can be of type GRAPH or GRAPHS (neither
    encoding of such a `type` field occurs anywhere in the bytes): then the model has no subgraph,
    without reading the op type of every node from the protos (~0.015 s on 20,000 nodes). True
    proves nothing (the bytes may occur inside a weight). A file that spells the field another
    way (an over-long varint) gets fewer tables than the checking process has graphs, which it
    refuses: it then infers the types itself."""
    return any(b in serialized for b in _GRAPH_TYPE_BYTES)


def pack_serialized(serialized: bytes) -> list[dict[str, tuple]]:
    """pack() of a serialized model. A model of one graph (no subgraph, no local function: the
    common case) is read through a reduced schema, `_lite_model`: the graph's value_info, inputs and
    outputs, each type kept as its bytes and decoded once per distinct type, without wrapping the
    nodes and a TypeProto per value (on the 20,000-node benchmark ~0.02 s of the helper's CPU)."""
    from ._onnx import ModelProto, TypeProto

    if not may_have_subgraphs(serialized):
        lite = _lite_model().FromString(serialized)
        if not lite.functions:
            decoded: dict[bytes, tuple] = {}
            table: dict[str, tuple] = {}
            g = lite.graph
            for vis in (g.value_info, g.input, g.output):  # later ones win, as in value_types
                for vi in vis:
                    key = vi.type
                    t = decoded.get(key)
                    if t is None:
                        t = decoded[key] = _plain_tensor_type(key) or type_tuple(TypeProto.FromString(key))
                    table[vi.name] = t
            return [table]
    return pack(ModelProto.FromString(serialized), serialized)


def _plain_tensor_type(b: bytes) -> tuple | None:
    """type_tuple of a serialized TypeProto written the plain way ONNX writes a tensor type: field
    tensor_type (1) alone, holding elem_type (1, one byte) and then shape (2), whose dims each hold
    one dim_value (1, not negative) or one dim_param (2, valid UTF-8), every length under 128.
    None for anything else (another kind, a denotation, a field twice, a long or negative varint):
    the caller parses it. ~2 µs instead of ~4 µs for the protobuf parse and type_tuple."""
    n = len(b)
    if n < 2 or b[0] != 0x0A or b[1] >= 0x80 or b[1] + 2 != n:
        return None
    pos, elem, shape = 2, 0, None
    if pos < n and b[pos] == 0x08:
        if pos + 1 >= n or b[pos + 1] >= 0x80:
            return None
        elem = b[pos + 1]
        pos += 2
    if pos < n:
        if b[pos] != 0x12 or pos + 1 >= n or b[pos + 1] >= 0x80 or pos + 2 + b[pos + 1] != n:
            return None
        pos += 2
        dims: list[int | str | None] = []
        while pos < n:
            if b[pos] != 0x0A or pos + 1 >= n or b[pos + 1] >= 0x80:
                return None
            start, end = pos + 2, pos + 2 + b[pos + 1]
            if end > n:
                return None
            if start == end:  # a dim with neither field
                dims.append(None)
            elif b[start] == 0x08:  # dim_value: a varint up to the dim's end
                value, shift, p = 0, 0, start + 1
                while True:
                    if p >= end or shift > 56:
                        return None
                    c = b[p]
                    value |= (c & 0x7F) << shift
                    p += 1
                    shift += 7
                    if c < 0x80:
                        break
                if p != end:
                    return None
                dims.append(value)
            elif b[start] == 0x12 and start + 1 < end and b[start + 1] < 0x80 and start + 2 + b[start + 1] == end:
                try:
                    dims.append(b[start + 2:end].decode("utf-8") or None)
                except UnicodeDecodeError:
                    return None
            else:
                return None
            pos = end
        shape = tuple(dims)
    return ("tensor", elem, shape)


_LITE = None


def _lite_model():
    """A message class that reads a serialized ModelProto as far as `pack_serialized` needs: the
    graph's (field 7) inputs (11), outputs (12) and value_info (13) as ValueInfoProto's name (1) and
    type (2, as bytes), and whether there are local functions (25). Other fields are skipped."""
    global _LITE
    if _LITE is None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        F = descriptor_pb2.FieldDescriptorProto
        f = descriptor_pb2.FileDescriptorProto(name="onnxdoctor_lite_types.proto", package="onnxdoctor_lite",
                                               syntax="proto2")
        vi = f.message_type.add(name="ValueInfo")
        vi.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        vi.field.add(name="type", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
        graph = f.message_type.add(name="Graph")
        for name, number in (("input", 11), ("output", 12), ("value_info", 13)):
            graph.field.add(name=name, number=number, type=F.TYPE_MESSAGE, type_name=".onnxdoctor_lite.ValueInfo",
                            label=F.LABEL_REPEATED)
        model = f.message_type.add(name="Model")
        model.field.add(name="graph", number=7, type=F.TYPE_MESSAGE, type_name=".onnxdoctor_lite.Graph",
                        label=F.LABEL_OPTIONAL)
        model.field.add(name="functions", number=25, type=F.TYPE_BYTES, label=F.LABEL_REPEATED)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(f)
        _LITE = message_factory.GetMessageClass(pool.FindMessageTypeByName("onnxdoctor_lite.Model"))
    return _LITE


def value_types(gp, is_function: bool) -> dict:
    """name -> TypeProto of a graph's (value_info, inputs, outputs; later ones win) or a function's
    typed value_info."""
    if is_function:
        return {vi.name: vi.type for vi in gp.value_info if vi.HasField("type")}
    raw: dict = {}
    for vis in (gp.value_info, gp.input, gp.output):
        raw.update((vi.name, vi.type) for vi in vis)
    return raw


def pack(model, serialized: bytes | None = None) -> list[dict[str, tuple]]:  # model: a ModelProto
    """For each graph of graph_order(model): name -> type tuple (as value_types gives them, each
    distinct type decoded once). `serialized`: `model`'s bytes, when at hand."""
    decoded: dict[bytes, tuple] = {}
    tables = []
    order = graph_order(model, serialized)
    first_function = len(order) - len(model.functions)
    for k, gp in enumerate(order):
        table: dict[str, tuple] = {}
        if k >= first_function:
            infos = [vi for vi in gp.value_info if vi.HasField("type")]
        else:
            infos = [*gp.value_info, *gp.input, *gp.output]  # later ones win, as in value_types
        for vi in infos:
            tp = vi.type
            key = tp.SerializeToString()  # thousands of values share a few thousand distinct types
            t = decoded.get(key)
            if t is None:
                t = decoded[key] = type_tuple(tp)
            table[vi.name] = t
        tables.append(table)
    return tables
