"""Read-only views of one graph that rules and rewrites share: value types, producers and consumers,
node references with parsed attributes, and the values of inline tensors."""

from __future__ import annotations

import functools
import math
import operator
from typing import NamedTuple, Sequence

import numpy as np

from .. import _onnx, _wire, external
from .._onnx import AttributeProto, FunctionProto, GraphProto, NodeProto, TensorProto, TypeProto
from .._typeinfo import GRAPH_ATTR_OPS, KINDS as _KINDS, type_tuple

_OP_TYPE = operator.attrgetter("op_type")
_UNTYPED = object()  # TypeTable.shape's answer for a name the table does not type

# Values of constants bigger than this are never materialized by the analysis.
MAX_VALUE_ELEMENTS = 1 << 16


class TensorType(NamedTuple):
    """What is known of a value's type: ONNX elem type (0 = unknown), shape, and its kind. (An
    immutable record: a NamedTuple costs a tenth of a frozen dataclass to create at start-up.)"""

    elem_type: int = 0
    shape: tuple[int | str | None, ...] | None = None  # None: rank unknown; str: symbolic; None dim: unknown
    kind: str = "tensor"  # tensor | sparse_tensor | sequence | optional | map | unknown

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def type_name(self) -> str:
        return dtype_name(self.elem_type)


_DTYPE_NAMES = {v.number: v.name for v in TensorProto.DataType.DESCRIPTOR.values}


def dtype_name(elem_type: int) -> str:
    return _DTYPE_NAMES.get(elem_type) or f"type#{elem_type}"


def _type_from_proto(tp: TypeProto) -> TensorType:
    kind, elem, shape = type_tuple(tp)
    return TensorType(elem, shape, kind)


class TypeTable:
    """name -> TensorType, parsed on first use (most are never asked for) from the graph's TypeProtos
    (`raw`: value_info, inputs, outputs), or from the helper's packed type tuples (`packed`, see
    _typeinfo.pack), or, for a value they do not type, from its initializer (`inits`, the graph's own
    initializer table)."""

    __slots__ = ("raw", "packed", "inits", "_parsed")

    def __init__(self, inits: dict[str, TensorProto] | None = None) -> None:
        self.raw: dict[str, TypeProto] = {}
        self.packed: dict[str, tuple] = {}
        self.inits: dict[str, TensorProto] = inits if inits is not None else {}
        self._parsed: dict[str, TensorType] = {}

    def reset(self, *, raw: dict[str, TypeProto] | None = None, packed: dict[str, tuple] | None = None) -> None:
        self.raw = raw if raw is not None else {}
        self.packed = packed if packed is not None else {}
        self._parsed = {}

    def get(self, name: str) -> TensorType | None:
        t = self._parsed.get(name)
        if t is None:
            p = self.packed.get(name)
            if p is not None:
                t = TensorType(p[1], p[2], p[0])
            else:
                tp = self.raw.get(name)
                if tp is not None:
                    t = _type_from_proto(tp)
                else:
                    init = self.inits.get(name)
                    if init is None:
                        return None
                    t = TensorType(init.data_type, tuple(init.dims[:]))  # [:]: one C call, not an iteration
            self._parsed[name] = t
        return t

    def shape(self, name: str, untyped=None):
        """get(name).shape, without making a TensorType for a packed or initializer-typed value;
        `untyped` when the table does not type `name`."""
        t = self._parsed.get(name)
        if t is not None:
            return t.shape
        p = self.packed.get(name)
        if p is not None:
            return p[2]
        if name in self.raw:
            return self.get(name).shape  # type: ignore[union-attr]
        init = self.inits.get(name)
        return untyped if init is None else tuple(init.dims[:])  # [:]: one C call, not an iteration

    def __contains__(self, name: str) -> bool:
        return name in self.packed or name in self.raw or name in self.inits

    def names(self) -> list[str]:
        return list(self.packed.keys() | self.raw.keys() | self.inits.keys())

    def kind(self, name: str) -> str | None:
        """Cheap: the value kind without parsing the shape."""
        p = self.packed.get(name)
        if p is not None:
            return p[0]
        tp = self.raw.get(name)
        if tp is None:
            return "tensor" if name in self.inits else None
        return _KINDS.get(tp.WhichOneof("value"), "unknown")

    def elem_type(self, name: str) -> int:
        t = self._parsed.get(name)
        if t is not None:
            return t.elem_type
        p = self.packed.get(name)
        if p is not None:
            return p[1]
        tp = self.raw.get(name)
        if tp is None:
            init = self.inits.get(name)
            return init.data_type if init is not None else 0
        return tp.tensor_type.elem_type if tp.HasField("tensor_type") else 0

    def summary(self, name: str) -> tuple[str, int, int | None]:
        """(kind, elem_type, rank) with one lookup and no shape parsing."""
        t = self._parsed.get(name)
        if t is not None:
            return t.kind, t.elem_type, t.rank
        p = self.packed.get(name)
        if p is not None:
            return p[0], p[1], None if p[2] is None else len(p[2])
        tp = self.raw.get(name)
        if tp is None:
            init = self.inits[name]
            return "tensor", init.data_type, len(init.dims)
        which = tp.WhichOneof("value")
        if which != "tensor_type":
            return _KINDS.get(which, "unknown"), 0, None
        tt = tp.tensor_type
        return "tensor", tt.elem_type, (len(tt.shape.dim) if tt.HasField("shape") else None)

    def rank(self, name: str) -> int | None:
        t = self._parsed.get(name)
        if t is not None:
            return t.rank
        p = self.packed.get(name)
        if p is not None:
            return None if p[2] is None else len(p[2])
        tp = self.raw.get(name)
        if tp is None:
            init = self.inits.get(name)
            return len(init.dims) if init is not None else None
        if not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
            return None
        return len(tp.tensor_type.shape.dim)


class Graph:
    """One graph (main graph, a control-flow body, or a local function body) with lookup tables.
    (A plain class, not a dataclass: making one costs ~1 ms at every start of the command.)"""

    def __init__(self, proto: GraphProto | None, path: tuple[str, ...], nodes: list[NodeProto], inputs: list[str],
                 outputs: list[str], initializers: dict[str, TensorProto], types: TypeTable,
                 outer: Graph | None = None, function: FunctionProto | None = None, depth: int = 0) -> None:
        self.proto = proto
        self.path = path
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.initializers = initializers
        self.types = types
        self.outer = outer
        self.function = function
        self.depth = depth
        # Set by load-time validation when every node reads only values defined before it.
        self.topo_sorted = False
        # Initializers whose raw_data `load(lazy_weights=True)` left in the file (main graph only).
        self.lazy_raw: dict[str, LazyBytes] = {}
        # (node index, attribute name) -> (stored AttributeProto type, kind a rule expected): see NodeRef.attr.
        self.attribute_errors: dict[tuple[int, str], tuple[int, str]] = {}
        # node i's inputs/outputs as Python lists: reading protobuf repeated fields again and again is slow.
        # Slicing a repeated field is about twice as fast as list() on it.
        self.node_inputs: list[list[str]] = [n.input[:] for n in nodes]
        self.node_outputs: list[list[str]] = [n.output[:] for n in nodes]
        producers: dict[str, tuple[int, int]] = {}  # tensor -> (node index, output index)
        for i, os_ in enumerate(self.node_outputs):
            if len(os_) == 1:  # most nodes have one output
                o = os_[0]
                if o:
                    producers[o] = (i, 0)
                continue
            for j, o in enumerate(os_):
                if o:
                    producers[o] = (i, j)
        self.producers = producers
        consumers: dict[str, list[int]] = {}
        for i, names in enumerate(self.node_inputs):
            for inp in names:
                if inp:
                    hit = consumers.get(inp)
                    if hit is None:
                        consumers[inp] = [i]
                    else:
                        hit.append(i)
        for out in outputs:
            consumers.setdefault(out, [])
        self.consumers = consumers

    def __repr__(self) -> str:
        return f"Graph({'/'.join(self.path) or 'main'!r}, {len(self.nodes)} nodes)"

    def producer(self, tensor: str) -> NodeProto | None:
        hit = self.producers.get(tensor)
        return self.nodes[hit[0]] if hit else None

    def raw_data(self, name: str) -> bytes | None:
        """raw_data of this graph's initializer `name`, also when the check left it in the file;
        None when it has none (typed fields, external data)."""
        lazy = self.lazy_raw.get(name)
        if lazy is not None:
            return lazy.read()
        t = self.initializers.get(name)
        return t.raw_data if t is not None and t.HasField("raw_data") else None

    def initializer_value(self, name: str) -> np.ndarray | None:
        """tensor_value of this graph's initializer `name` (read from the file if it was left there)."""
        t = self.initializers[name]
        lazy = self.lazy_raw.get(name)
        if lazy is None:
            return tensor_value(t)
        if math.prod(int(d) for d in t.dims) > MAX_VALUE_ELEMENTS:
            return None
        whole = TensorProto()
        whole.CopyFrom(t)
        whole.raw_data = lazy.read()
        return tensor_value(whole)

    def producer_ref(self, tensor: str) -> NodeRef | None:
        hit = self.producers.get(tensor)
        return self.ref(hit[0]) if hit else None

    def ref(self, i: int) -> NodeRef:
        """The NodeRef of node i: one per node, shared by every rule (with its parsed attributes)."""
        refs = self._refs
        r = refs[i]
        if r is None:
            r = refs[i] = NodeRef(self.nodes[i], self, i, self.op_types[i] if self.standard[i] else None)
        return r

    def refs(self) -> list[NodeRef]:
        """Every node's NodeRef (`ref(i)` for each i), made in one pass where missing."""
        refs = self._refs
        if None in refs:
            nodes, ops, std = self.nodes, self.op_types, self.standard
            refs[:] = [r if r is not None else NodeRef(nodes[i], self, i, ops[i] if std[i] else None)
                       for i, r in enumerate(refs)]
        return refs  # type: ignore[return-value]

    @functools.cached_property
    def _refs(self) -> list[NodeRef | None]:
        return [None] * len(self.nodes)

    def type_of(self, tensor: str) -> TensorType | None:
        g: Graph | None = self
        while g is not None:
            t = g.types.get(tensor)
            if t is not None:
                return t
            if tensor in g.producers or tensor in g.initializers or tensor in g.inputs:
                return None
            g = g.outer
        return None

    def shape_of(self, tensor: str) -> tuple[int | str | None, ...] | None:
        """type_of(tensor).shape (None: untyped or rank unknown), without making a TensorType."""
        g: Graph | None = self
        while g is not None:
            types = g.types
            p = types.packed.get(tensor)  # the helper's tables: the common case, read directly
            if p is not None:
                return p[2]
            shape = types.shape(tensor, _UNTYPED)
            if shape is not _UNTYPED:
                return shape
            if tensor in g.producers or tensor in g.initializers or tensor in g.inputs:
                return None
            g = g.outer
        return None

    def rank_of(self, tensor: str) -> int | None:
        """Rank only (None = unknown), without parsing the shape."""
        g: Graph | None = self
        while g is not None:
            types = g.types
            p = types.packed.get(tensor)  # the helper's tables: the common case, read directly
            if p is not None:
                return None if p[2] is None else len(p[2])
            if tensor in types:
                return types.rank(tensor)
            if tensor in g.producers or tensor in g.initializers or tensor in g.inputs:
                return None
            g = g.outer
        return None

    def elem_type_of(self, tensor: str) -> int:
        """Element type only (0 = unknown): much cheaper than type_of for rules that need nothing else."""
        g: Graph | None = self
        while g is not None:
            types = g.types
            p = types.packed.get(tensor)  # the helper's tables: the common case, read directly
            if p is not None:
                return p[1]
            if tensor in types:
                return types.elem_type(tensor)
            if tensor in g.producers or tensor in g.initializers or tensor in g.inputs:
                return 0
            g = g.outer
        return 0

    @functools.cached_property
    def type_summary(self) -> tuple[frozenset[tuple[str, int]], int]:
        """(set of (kind, elem_type) over every typed value and initializer, highest known rank).
        Lets whole-graph type rules skip their per-tensor walk when nothing can match."""
        kinds: set[tuple[str, int]] = set()
        max_rank = 0
        for kind, elem, shape in set(self.types.packed.values()):
            kinds.add((kind, elem if kind == "tensor" else 0))
            if shape is not None and len(shape) > max_rank:
                max_rank = len(shape)
        seen: set[bytes] = set()
        for tp in self.types.raw.values():
            # Thousands of values share a few thousand distinct types: serializing (C) to skip the
            # repeats is cheaper than reading every one's fields from Python.
            key = tp.SerializeToString()
            if key in seen:
                continue
            seen.add(key)
            which = tp.WhichOneof("value")
            if which == "tensor_type":
                tt = tp.tensor_type
                kinds.add(("tensor", tt.elem_type))
                r = len(tt.shape.dim)
                if r > max_rank:
                    max_rank = r
            else:
                kinds.add((_KINDS.get(which, "unknown"), 0))
        raw, packed = self.types.raw, self.types.packed
        # the initializers typed by themselves: their element types and ranks, read in two comprehensions
        own = [t for name, t in self.initializers.items() if name not in raw and name not in packed]
        if own:
            kinds.update([("tensor", e) for e in {t.data_type for t in own}])
            max_rank = max(max_rank, max([len(t.dims) for t in own]))
        return frozenset(kinds), max_rank

    @functools.cached_property
    def op_types(self) -> list[str]:
        """op_type of node i, read from the protos once. A graph has a few distinct op types and protobuf
        returns a new string per read: one string per op type, not per node (~1.3 MB on 20,000 nodes)."""
        seen: dict[str, str] = {}
        return [seen.setdefault(op, op) for op in map(_OP_TYPE, self.nodes)]

    @functools.cached_property
    def standard(self) -> list[bool]:
        """Whether node i is of the standard ONNX domain ('' or 'ai.onnx')."""
        return [n.domain in ("", "ai.onnx") for n in self.nodes]

    @functools.cached_property
    def op_positions(self) -> dict[str, list[int]]:
        """op_type -> indices of this graph's standard-domain nodes of that type."""
        out: dict[str, list[int]] = {}
        for i, (op, std) in enumerate(zip(self.op_types, self.standard)):
            if std:
                hit = out.get(op)
                if hit is None:
                    out[op] = [i]
                else:
                    hit.append(i)
        return out

    @functools.cached_property
    def all_standard(self) -> bool:
        """Whether every node is of the standard domain."""
        return all(self.standard)

    @functools.cached_property
    def may_nest(self) -> bool:
        """Whether any node can carry a subgraph: a control-flow op, or an op of another domain."""
        return any(op in self.op_positions for op in GRAPH_ATTR_OPS) or not self.all_standard

    def is_used(self, tensor: str) -> bool:
        return bool(self.consumers.get(tensor)) or tensor in self.outputs

    @functools.cached_property
    def topo_order(self) -> Sequence[int]:
        """Node indices, each after the producers of its inputs: node order when load validation
        found the file sorted (the common case, free), else Kahn's order. Nodes on a cycle (which
        load refuses) are left out."""
        n = len(self.nodes)
        if self.topo_sorted:
            return range(n)
        producers, consumers = self.producers, self.consumers
        # a node reading a tensor twice counts it twice, as `consumers` lists it twice
        indeg = [sum(1 for i in names if i in producers) for names in self.node_inputs]
        ready = [k for k in range(n - 1, -1, -1) if indeg[k] == 0]
        order: list[int] = []
        while ready:
            k = ready.pop()
            order.append(k)
            for out in self.node_outputs[k]:
                for c in consumers.get(out, ()) if out else ():
                    indeg[c] -= 1
                    if indeg[c] == 0:
                        ready.append(c)
        return order


class NodeRef:
    """A node and where it lives. `op_type` and `domain` ('' for the standard domain, also when written
    'ai.onnx') are read from the proto once: rules test them for every node, many times."""

    __slots__ = ("node", "graph", "index", "op_type", "domain", "_attrs")

    def __init__(self, node: NodeProto, graph: Graph, index: int, op_type: str | None = None) -> None:
        """`op_type`, when the caller already read it, must be node.op_type of a standard-domain node."""
        self.node = node
        self.graph = graph
        self.index = index
        if op_type is not None:
            self.op_type, self.domain = op_type, ""
        else:
            self.op_type = node.op_type
            d = node.domain
            self.domain = "" if d == "ai.onnx" else d
        self._attrs: dict[str, AttributeProto] | None = None

    def __repr__(self) -> str:
        return f"NodeRef({self.name!r}, {self.op_type}, index={self.index}, path={self.graph.path})"

    @property
    def name(self) -> str:
        return external.text(self.node.name) or f"{self.op_type}#{self.index}"

    @property
    def path(self) -> tuple[str, ...]:
        return self.graph.path

    def _attributes(self) -> dict[str, AttributeProto]:
        attrs = self._attrs
        if attrs is None:
            attrs = self._attrs = {}
            for a in self.node.attribute[:]:  # [:]: one C call, not an iteration of the repeated field
                attrs.setdefault(a.name, a)  # a (malformed) repeated name: the first one counts
        return attrs

    def attr(self, name: str, default=None):
        """The attribute's value, or `default` when absent. When `default` says what kind of value the
        rule expects (an int, a float, a string, a list) and the model stores another kind (an `axis`
        given as a list), the default is returned and the mismatch recorded for MOD506."""
        attrs = self._attrs
        a = (attrs if attrs is not None else self._attributes()).get(name)
        if a is None:
            return default
        value = attribute_value(a)
        # the same type is the same kind (the common case, decided without _same_kind's tests)
        if default is not None and type(value) is not type(default) and not _same_kind(value, default):
            self.graph.attribute_errors.setdefault((self.index, name), (a.type, _KIND_NAMES.get(type(default), type(default).__name__)))
            return default
        return value

    def list_attr(self, name: str) -> list | None:
        """A list attribute's values; None when absent, or when the model stores another kind of value
        (`axes` given as an int: recorded for MOD506 by `attr`, and unknown to the caller)."""
        value = self.attr(name, _NOT_A_LIST)
        return None if value is _NOT_A_LIST else value  # a new list: attribute_value makes one per call

    def has_attr(self, name: str) -> bool:
        return name in self._attributes()

    def input(self, i: int) -> str:
        """Name of input i, or '' when absent."""
        try:  # costs nothing when the input is there, the common case
            return self.graph.node_inputs[self.index][i]
        except IndexError:
            return ""

    def output(self, i: int) -> str:
        try:
            return self.graph.node_outputs[self.index][i]
        except IndexError:
            return ""


_KIND_NAMES = {bool: "INT", int: "INT", float: "FLOAT", str: "STRING", list: "INTS or FLOATS", tuple: "INTS or FLOATS"}


_NOT_A_LIST: list = []  # list_attr's default, told apart by identity (attr returns a new list)


def _same_kind(value, default) -> bool:
    if isinstance(default, bool) or isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    return True


# AttributeProto.AttributeType values, read once: a class attribute of a protobuf message costs a lookup
_A_FLOAT, _A_INT, _A_STRING, _A_TENSOR, _A_GRAPH, _A_FLOATS, _A_INTS, _A_STRINGS, _A_GRAPHS, _A_SPARSE_TENSOR, \
    _A_TYPE_PROTO = (getattr(AttributeProto, k) for k in ("FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS",
                                                          "STRINGS", "GRAPHS", "SPARSE_TENSOR", "TYPE_PROTO"))


def attribute_value(a: AttributeProto):
    """The attribute's value as Python data: int, float, str, list of them, or the proto it holds
    (a list is new at every call). Protobuf gives ints and floats as Python ints and floats already,
    and a slice of a repeated field as a new list, in one C call."""
    t = a.type
    if t == _A_INT:
        return a.i
    if t == _A_INTS:
        return a.ints[:]
    if t == _A_FLOAT:
        return a.f
    if t == _A_STRING:
        return a.s.decode("utf-8", errors="replace")
    if t == _A_FLOATS:
        return a.floats[:]
    if t == _A_STRINGS:
        return [s.decode("utf-8", errors="replace") for s in a.strings[:]]
    if t == _A_TENSOR:
        return a.t
    if t == _A_GRAPH:
        return a.g
    if t == _A_GRAPHS:
        return a.graphs[:]
    if t == _A_SPARSE_TENSOR:
        return a.sparse_tensor
    if t == _A_TYPE_PROTO:
        return a.tp
    return None


def tensor_value(t: TensorProto) -> np.ndarray | None:
    """Value of an inline tensor; None for external data or tensors too big to look at."""
    if t.data_location == TensorProto.EXTERNAL:
        return None
    n = math.prod(int(d) for d in t.dims)
    if n > MAX_VALUE_ELEMENTS:
        return None
    try:
        return _onnx.to_array(t)
    except Exception:  # noqa: BLE001 - odd dtypes: value unknown
        return None


ExternalRef = external.Ref  # (tensor, location, offset, length): validated at load time


class LazyBytes(NamedTuple):
    """An initializer's raw_data that `load(lazy_weights=True)` left in the model file (_wire.split)."""

    file: _wire.FileView  # the model file, open while the model lives
    offset: int
    length: int

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        end = self.length if size is None else min(self.length, start + size)
        return self.file[self.offset + start:self.offset + end]


def _external_ref(t: TensorProto) -> ExternalRef:
    """The tensor's external-data reference. Raises ValueError (external.RefError) when malformed."""
    return external.parse_ref(t)
