"""Loading a model safely, and the read-only views of it that rules and rewrites share.

`load()` is the only way a model enters onnxdoctor. It parses the protobuf without
reading external weights, validates external-data references, checks the graph is
well formed (no cycles, no dangling inputs, sane dims), and runs ONNX shape inference
once. Every malformed input becomes a `ModelLoadError` with one clear line.
"""

from __future__ import annotations

import functools
import marshal
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
from google.protobuf.message import DecodeError

from . import _onnx, _wire, external
from ._onnx import AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto

from ._typeinfo import GRAPH_ATTR_OPS, KINDS as _KINDS, graph_order, subgraphs_of, type_tuple, value_types
from .errors import ModelLoadError

PROTOBUF_LIMIT = 2**31 - 1
MAX_SUBGRAPH_DEPTH = 64
# Initializers claiming more elements than this are not real weights.
MAX_ELEMENTS = 2**40
# Values of constants bigger than this are never materialized by the analysis.
MAX_VALUE_ELEMENTS = 1 << 16

# Standard ops whose schema (any version) has a tensor or graph attribute (tests/test_load.py checks it).
TENSOR_OR_GRAPH_ATTR_OPS = external.TENSOR_OR_GRAPH_ATTR_OPS


# ----------------------------------------------------------------------------
# Graph views
# ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TensorType:
    """What is known of a value's type: ONNX elem type (0 = unknown), shape, and its kind."""

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
                    t = TensorType(init.data_type, tuple(init.dims))
            self._parsed[name] = t
        return t

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


@dataclass
class Graph:
    """One graph (main graph, a control-flow body, or a local function body) with lookup tables."""

    proto: GraphProto | None
    path: tuple[str, ...]
    nodes: list[NodeProto]
    inputs: list[str]
    outputs: list[str]
    initializers: dict[str, TensorProto]
    types: TypeTable
    outer: Graph | None = None
    function: FunctionProto | None = None
    depth: int = 0
    producers: dict[str, tuple[int, int]] = field(default_factory=dict)  # tensor -> (node index, output index)
    consumers: dict[str, list[int]] = field(default_factory=dict)
    # node i's inputs/outputs as Python lists: reading protobuf repeated fields again and again is slow
    node_inputs: list[list[str]] = field(default_factory=list)
    node_outputs: list[list[str]] = field(default_factory=list)
    # Set by load-time validation when every node reads only values defined before it.
    topo_sorted: bool = False
    # Initializers whose raw_data `load(lazy_weights=True)` left in the file (main graph only).
    lazy_raw: dict[str, LazyBytes] = field(default_factory=dict)
    # (node index, attribute name) -> (stored AttributeProto type, kind a rule expected): see NodeRef.attr.
    attribute_errors: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # slicing a repeated field is about twice as fast as list() on it
        self.node_inputs = ins = [n.input[:] for n in self.nodes]
        self.node_outputs = outs = [n.output[:] for n in self.nodes]
        producers: dict[str, tuple[int, int]] = {}
        for i, os_ in enumerate(outs):
            for j, o in enumerate(os_):
                if o:
                    producers[o] = (i, j)
        self.producers = producers
        consumers: dict[str, list[int]] = {}
        for i, names in enumerate(ins):
            for inp in names:
                if inp:
                    hit = consumers.get(inp)
                    if hit is None:
                        consumers[inp] = [i]
                    else:
                        hit.append(i)
        for out in self.outputs:
            consumers.setdefault(out, [])
        self.consumers = consumers

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

    def rank_of(self, tensor: str) -> int | None:
        """Rank only (None = unknown), without parsing the shape."""
        g: Graph | None = self
        while g is not None:
            if tensor in g.types:
                return g.types.rank(tensor)
            if tensor in g.producers or tensor in g.initializers or tensor in g.inputs:
                return None
            g = g.outer
        return None

    def elem_type_of(self, tensor: str) -> int:
        """Element type only (0 = unknown): much cheaper than type_of for rules that need nothing else."""
        g: Graph | None = self
        while g is not None:
            if tensor in g.types:
                return g.types.elem_type(tensor)
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
        for name, t in self.initializers.items():
            if name not in raw and name not in packed:  # typed by the initializer itself
                kinds.add(("tensor", t.data_type))
                max_rank = max(max_rank, len(t.dims))
        return frozenset(kinds), max_rank

    @functools.cached_property
    def op_types(self) -> list[str]:
        """op_type of node i, read from the protos once."""
        return [n.op_type for n in self.nodes]

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
            for a in self.node.attribute:
                attrs.setdefault(a.name, a)  # a (malformed) repeated name: the first one counts
        return attrs

    def attr(self, name: str, default=None):
        """The attribute's value, or `default` when absent. When `default` says what kind of value the
        rule expects (an int, a float, a string, a list) and the model stores another kind (an `axis`
        given as a list), the default is returned and the mismatch recorded for MOD506."""
        a = self._attributes().get(name)
        if a is None:
            return default
        value = attribute_value(a)
        if default is not None and not _same_kind(value, default):
            self.graph.attribute_errors.setdefault((self.index, name), (a.type, _KIND_NAMES.get(type(default), type(default).__name__)))
            return default
        return value

    def has_attr(self, name: str) -> bool:
        return name in self._attributes()

    def input(self, i: int) -> str:
        """Name of input i, or '' when absent."""
        ins = self.graph.node_inputs[self.index]
        return ins[i] if i < len(ins) else ""

    def output(self, i: int) -> str:
        outs = self.graph.node_outputs[self.index]
        return outs[i] if i < len(outs) else ""


_KIND_NAMES = {bool: "INT", int: "INT", float: "FLOAT", str: "STRING", list: "INTS or FLOATS", tuple: "INTS or FLOATS"}


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


def attribute_value(a: AttributeProto):
    t = a.type
    if t == AttributeProto.INT:
        return int(a.i)
    if t == AttributeProto.FLOAT:
        return float(a.f)
    if t == AttributeProto.STRING:
        return a.s.decode("utf-8", errors="replace")
    if t == AttributeProto.INTS:
        return [int(x) for x in a.ints]
    if t == AttributeProto.FLOATS:
        return [float(x) for x in a.floats]
    if t == AttributeProto.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in a.strings]
    if t == AttributeProto.TENSOR:
        return a.t
    if t == AttributeProto.GRAPH:
        return a.g
    if t == AttributeProto.GRAPHS:
        return list(a.graphs)
    if t == AttributeProto.SPARSE_TENSOR:
        return a.sparse_tensor
    if t == AttributeProto.TYPE_PROTO:
        return a.tp
    return None


# ----------------------------------------------------------------------------
# External data
# ----------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------
class Model:
    """A loaded model: the ModelProto plus lazily built views."""

    def __init__(self, proto: ModelProto, path: str | None = None, *, base_dir: Path | None = None) -> None:
        self.proto = proto
        self.path = path or "<memory>"
        self.base_dir = base_dir.resolve() if base_dir is not None else None
        self.external: list[ExternalRef] = []
        self.external_problems: list[tuple[str, str]] = []  # (tensor, problem) for missing/short data files
        self.external_files: dict[str, external.Resolved] = {}  # location -> its file and size, resolved once
        self.lazy_raw: dict[str, LazyBytes] = {}  # main-graph raw_data left in the file (load(lazy_weights=True))
        self.shape_inference_error: str | None = None
        self.frozen_inputs: tuple[str, ...] = ()  # graph inputs whose dims --shape fixed
        self.inferred: ModelProto = proto
        self.opsets: dict[str, int] = _opsets(proto)
        # Text fields that were not valid UTF-8, as repaired at load time (repair_text).
        self.text_repairs: list[str] = []

    @functools.cached_property
    def external_refs(self) -> dict[str, ExternalRef]:
        """tensor name -> its external-data reference, as validated at load time."""
        return {ref.tensor: ref for ref in self.external}

    @property
    def opset(self) -> int:
        return self.opsets.get("", 0)

    def op_version(self, ref: NodeRef) -> int:
        return self.opsets.get(ref.domain, 0)

    # -- graphs ---------------------------------------------------------------
    @functools.cached_property
    def graphs(self) -> list[Graph]:
        """Every graph: main graph first, then subgraphs depth-first, then local function bodies.
        Structure comes from `proto`; value types from `inferred` (see `attach_types`)."""
        out: list[Graph] = []
        main = _make_graph(self.proto.graph, (), None, 0)
        main.lazy_raw = self.lazy_raw
        stack = [main]
        while stack:
            g = stack.pop()
            out.append(g)
            children = [_make_graph(sub, g.path + (label,), g, g.depth + 1) for label, sub in subgraphs_of(g.nodes, g.op_types, g.standard)]
            stack.extend(reversed(children))
        out.extend(_make_function_graph(f) for f in self.proto.functions)
        _fill_types(out, _graph_protos(self.inferred, out))
        return out

    def attach_types(self, inferred: ModelProto) -> None:
        """Use the value types of `inferred` (the same model after shape inference), also when the
        graph views were built before inference finished."""
        self.inferred = inferred
        if "graphs" in self.__dict__:
            _fill_types(self.graphs, _graph_protos(inferred, self.graphs))

    @property
    def main(self) -> Graph:
        return self.graphs[0]

    def iter_nodes(self) -> Iterator[NodeRef]:
        for g in self.graphs:
            for i in range(len(g.nodes)):
                yield g.ref(i)

    @functools.cached_property
    def local_functions(self) -> dict[tuple[str, str], FunctionProto]:
        return {(f.domain, f.name): f for f in self.proto.functions}

    # -- constants --------------------------------------------------------------
    def constants(self, graph: Graph) -> ConstantView:
        return _constant_view(self, graph)


def _constant_view(model: Model, graph: Graph) -> ConstantView:
    cache = model.__dict__.setdefault("_constant_views", {})
    key = id(graph)
    if key not in cache:
        cache[key] = ConstantView(model, graph)
    return cache[key]


def _graph_protos(proto: ModelProto, views: list[Graph]) -> list[GraphProto | FunctionProto]:
    """The graphs and functions of `proto` in the order of `views`, which were built from a model of
    the same structure (e.g. before shape inference)."""
    out = graph_order(proto)
    if len(out) != len(views):
        raise ValueError(f"the inferred model has {len(out)} graphs and functions, the model {len(views)}")
    return out


def _fill_types(views: list[Graph], protos: list) -> None:
    """(Re)build each view's TypeTable from the matching graph or function proto."""
    for g, gp in zip(views, protos):
        g.types.reset(raw=value_types(gp, g.function is not None))
        g.__dict__.pop("type_summary", None)


def _fill_packed(views: list[Graph], tables: list[dict[str, tuple]]) -> None:
    """(Re)build each view's TypeTable from the helper's packed types (_typeinfo.pack)."""
    if not isinstance(tables, list) or len(tables) != len(views):
        raise ValueError(f"the packed types do not cover the model's {len(views)} graphs and functions")
    for g, table in zip(views, tables):
        g.types.reset(packed=table)
        g.__dict__.pop("type_summary", None)


def _make_graph(proto: GraphProto, path: tuple[str, ...], outer: Graph | None, depth: int) -> Graph:
    if depth > MAX_SUBGRAPH_DEPTH:
        raise _TooDeep()
    dense = inits = {t.name: t for t in proto.initializer}
    if len(proto.sparse_initializer):
        inits = dict(dense)
        for st in proto.sparse_initializer:
            inits.setdefault(st.values.name, st.values)
    return Graph(
        proto=proto,
        path=path,
        nodes=list(proto.node),
        inputs=[vi.name for vi in proto.input],
        outputs=[vi.name for vi in proto.output],
        initializers=inits,
        types=TypeTable(dense),  # a sparse initializer's values tensor does not have its shape
        outer=outer,
        depth=depth,
    )


def _make_function_graph(f: FunctionProto) -> Graph:
    return Graph(
        proto=None,
        path=(f"function:{f.domain + '.' if f.domain else ''}{f.name}",),
        nodes=list(f.node),
        inputs=list(f.input),
        outputs=list(f.output),
        initializers={},
        types=TypeTable(),
        function=f,
    )


class _TooDeep(Exception):
    pass


# ----------------------------------------------------------------------------
# Constant propagation
# ----------------------------------------------------------------------------
# Ops whose output is a build-time constant when all their (present) inputs are (Shape and Size also
# when their input's shape is static). The SHP analyses classify values through the same ops.
FOLDABLE_OPS = frozenset(
    """Identity Cast CastLike Reshape Flatten Squeeze Unsqueeze Concat Gather Slice Transpose Expand Tile
    Add Sub Mul Div Neg Abs Floor Ceil Min Max Mod Equal Less Greater LessOrEqual GreaterOrEqual Not And Or Where
    Range ConstantOfShape ReduceProd ReduceSum ReduceMin ReduceMax Sqrt Pow Clip Split Size Shape""".split()
)
_SHAPE_OPS = frozenset({"Shape", "Size"})
# Ops whose output value does not need their inputs' values.
_VALUE_FREE_OPS = frozenset({"Constant", "Shape", "Size"})
_PENDING = object()


class ConstantView:
    """Answers 'is this tensor a build-time constant?' and, for small constants, 'what is its value?'.

    One forward pass over the graph's nodes in topological order (`Graph.topo_order`: node order when
    the file is sorted) decides every node output's constant-ness from its inputs', so the answer does
    not depend on the order the file lists the nodes in. Values are computed on demand, inputs first."""

    def __init__(self, model: Model, graph: Graph) -> None:
        self.model = model
        self.graph = graph
        self._const: dict[str, bool] = {}
        self._value: dict[str, np.ndarray | None] = {}
        # Indices of the nodes (other than Constant) whose outputs are all constant.
        self.computed_constants: list[int] = []
        self._forward()

    def _forward(self) -> None:
        g = self.graph
        const = self._const
        for name in g.inputs:
            const[name] = name in g.initializers
        for name in g.initializers:
            const[name] = True
        outer = g.outer
        outer_view: ConstantView | None = None
        computed = self.computed_constants
        ops, std_, ins_, outs_ = g.op_types, g.standard, g.node_inputs, g.node_outputs
        nodes = zip(range(len(ops)), ops, std_, ins_, outs_) if g.topo_sorted else \
            ((k, ops[k], std_[k], ins_[k], outs_[k]) for k in g.topo_order)
        for k, op, std, ins, outs in nodes:
            if not std:
                value = False
            elif op == "Constant":
                value = True
            elif op in FOLDABLE_OPS:
                # Shape and Size also fold when their input's shape is static, whatever its value.
                value = True
                if op in _SHAPE_OPS:
                    src = ins[0] if ins else ""
                    st = g.type_of(src) if src else None
                    if st is not None and st.is_static:
                        ins = ()
                    elif not src:
                        value = False
                for i in ins:
                    if not i:
                        continue
                    c = const.get(i)
                    if c is None:  # defined in an enclosing graph (every local producer came before)
                        if outer is None:
                            c = False
                        else:
                            if outer_view is None:
                                outer_view = _constant_view(self.model, outer)
                            c = outer_view.is_constant(i)
                    if not c:
                        value = False
                        break
            else:
                value = False
            for o in outs:
                if o:
                    const[o] = value
            if value and op != "Constant" and any(outs):
                computed.append(k)

    def _owner(self, tensor: str) -> tuple[Graph, ConstantView] | None:
        g: Graph | None = self.graph
        while g is not None:
            if tensor in g.producers or tensor in g.initializers or tensor in g.inputs:
                view = self if g is self.graph else _constant_view(self.model, g)
                return g, view
            g = g.outer
        return None

    def is_constant(self, tensor: str) -> bool:
        hit = self._const.get(tensor)
        if hit is not None:
            return hit
        owner = self._owner(tensor) if tensor else None
        if owner is None or owner[1] is self:  # unknown, or (only in a graph with a cycle) never reached
            return False
        return owner[1].is_constant(tensor)

    def is_weights(self, tensor: str) -> bool:
        """What the parser itself treats as weights: an initializer or a Constant node's output."""
        owner = self._owner(tensor) if tensor else None
        if owner is None:
            return False
        g, _ = owner
        if tensor in g.initializers:
            return True
        node = g.producer(tensor)
        return node is not None and node.op_type == "Constant" and node.domain in ("", "ai.onnx")

    def value(self, tensor: str) -> np.ndarray | None:
        """The value of a small constant, or None when unknown (non-constant, external, big, or not evaluable)."""
        if not tensor or not self.is_constant(tensor):
            return None
        hit = self._value.get(tensor, _PENDING)
        if hit is not _PENDING:
            return hit
        g, view = self._owner(tensor)  # type: ignore[misc]
        if view is not self:
            return view.value(tensor)
        # The local constants it is computed from first, deepest first: no recursion, for constant
        # chains are as long as models are deep.
        values = self._value
        stack = [tensor]
        expanded: set[str] = set()
        while stack:
            t = stack[-1]
            if t in values:
                stack.pop()
                continue
            if t not in expanded:
                expanded.add(t)
                pending = [i for i in self._computed_from(g, t) if i not in values and i not in expanded]
                if pending:
                    stack.extend(pending)
                    continue
            stack.pop()
            try:
                val = self._evaluate(g, t)
            except Exception:  # noqa: BLE001 - evaluation is best effort; unknown is a valid answer
                val = None
            values[t] = val if val is None or val.size <= MAX_VALUE_ELEMENTS else None
        return values[tensor]

    def _computed_from(self, g: Graph, tensor: str) -> list[str]:
        """The constant inputs produced by this graph's nodes whose values `tensor`'s value needs."""
        hit = g.producers.get(tensor)
        if hit is None or tensor in g.initializers:
            return []
        k = hit[0]
        if g.op_types[k] in _VALUE_FREE_OPS:
            return []
        const, producers = self._const, g.producers
        return [i for i in g.node_inputs[k] if i and i in producers and const.get(i)]

    def _evaluate(self, g: Graph, tensor: str) -> np.ndarray | None:
        if tensor in g.initializers:
            return g.initializer_value(tensor)
        ref = g.producer_ref(tensor)
        if ref is None:
            return None
        node, op = ref.node, ref.op_type
        if op == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return tensor_value(a.t)
                if a.name in ("value_int", "value_float"):
                    return np.array(attribute_value(a))
                if a.name in ("value_ints", "value_floats"):
                    return np.array(attribute_value(a))
            return None
        if op == "Shape":
            st = g.type_of(node.input[0])
            if not (st and st.is_static):
                return None
            shape = np.array(st.shape, dtype=np.int64)
            start, end = ref.attr("start", 0), ref.attr("end", None)
            return shape[start:end]
        if op == "Size":
            st = g.type_of(node.input[0])
            return np.array(math.prod(st.shape), dtype=np.int64) if st and st.is_static else None
        values = self._value
        args = [(values[i] if i in values else self.value(i)) if i else None for i in node.input]
        if any(a is None for a, name in zip(args, node.input) if name):
            return None
        if op == "Identity":
            return args[0]
        if op == "Cast":
            to = ref.attr("to")
            return args[0].astype(_onnx.np_dtype(to))
        if op == "Unsqueeze":
            axes = ref.attr("axes") if ref.has_attr("axes") else (args[1].tolist() if len(args) > 1 else [])
            out = args[0]
            rank = out.ndim + len(axes)
            for ax in sorted(a % rank for a in axes):
                out = np.expand_dims(out, ax)
            return out
        if op == "Squeeze":
            axes = ref.attr("axes") if ref.has_attr("axes") else (args[1].tolist() if len(args) > 1 and args[1] is not None else None)
            return np.squeeze(args[0], axis=tuple(axes) if axes else None)
        if op == "Concat":
            return np.concatenate([a for a in args if a is not None], axis=ref.attr("axis", 0))
        if op == "Gather":
            return np.take(args[0], args[1], axis=ref.attr("axis", 0))
        if op == "Reshape":
            target = [int(x) for x in args[1]]
            target = [args[0].shape[i] if d == 0 else d for i, d in enumerate(target)]
            return args[0].reshape(target)
        if op == "Slice" and len(args) >= 3:
            data, starts, ends = args[0], args[1], args[2]
            axes = args[3] if len(args) > 3 and args[3] is not None else range(len(starts))
            steps = args[4] if len(args) > 4 and args[4] is not None else [1] * len(starts)
            index = [slice(None)] * data.ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                index[int(ax)] = slice(int(s), int(e), int(st))
            return data[tuple(index)]
        binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Max": np.maximum, "Min": np.minimum}
        if op in binary and len(args) == 2:
            return binary[op](args[0], args[1])
        if op == "Div" and len(args) == 2:
            if np.issubdtype(args[0].dtype, np.integer):
                return np.floor_divide(args[0], args[1]) if np.all(args[1] != 0) else None
            return np.divide(args[0], args[1])
        if op == "Neg":
            return -args[0]
        if op == "ConstantOfShape":
            shape = [int(x) for x in args[0]]
            if math.prod(shape) > MAX_VALUE_ELEMENTS:
                return None
            fill = ref.attr("value")
            fv = tensor_value(fill) if fill is not None else np.zeros(1, np.float32)
            if fv is None:
                return None
            return np.full(shape, fv.reshape(-1)[0], dtype=fv.dtype)
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


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------
_LFS_PREFIX = b"version https://git-lfs.github.com/spec"


def load(path: str | os.PathLike, *, infer_shapes: bool = True, shapes: dict | None = None,
         use_prefetch: bool = False, lazy_weights: bool = False) -> Model:
    """Read a model file: graph structure only, external weights untouched. Raises ModelLoadError.
    `shapes` ({input: dims}) freezes graph-input dimensions before shape inference. With `use_prefetch`,
    the shape inference started by `prefetch.start(path)` in a helper process is used, if any.
    With `lazy_weights` (for analysis only: `model.proto` then lacks them), the big inline weights of
    a big file stay in the file, which stays open (_wire.split); Graph.raw_data and
    Graph.initializer_value read them when a rule asks."""
    from . import prefetch

    try:
        return _load(Path(path), str(path), infer_shapes, shapes, use_prefetch, lazy_weights)
    finally:
        prefetch.discard(path)  # a result not taken (error, frozen shapes, no inference) is not wanted


def _load(p: Path, shown: str, infer_shapes: bool, shapes: dict | None, use_prefetch: bool,
          lazy_weights: bool = False) -> Model:
    if not p.exists():
        raise ModelLoadError(shown, "no such file")
    if p.is_dir():
        raise ModelLoadError(shown, "is a directory, not a model file")
    try:
        st = p.stat()
        size = st.st_size
        if size == 0:
            raise ModelLoadError(shown, "empty file")
        if size > PROTOBUF_LIMIT:
            raise ModelLoadError(shown, f"file is {size / 2**30:.1f} GiB, over protobuf's 2 GiB limit for one message; save the weights as external data")
        if lazy_weights:
            data, left_out, view = _wire.read_model(p)
        else:
            left_out, view = {}, None
            with open(p, "rb") as fh:
                data = fh.read()
    except OSError as e:
        raise ModelLoadError(shown, f"cannot read: {e.strerror or e}") from None
    if data.startswith(_LFS_PREFIX):
        raise ModelLoadError(shown, "is a Git LFS pointer, not the model itself; run `git lfs pull` to fetch it")
    proto = _parse(shown, data)
    model = Model(proto, shown, base_dir=p.resolve().parent)
    model.lazy_raw.update((name, LazyBytes(view, offset, length)) for name, (offset, length) in left_out.items())
    if use_prefetch and infer_shapes and not shapes:  # frozen shapes change the graph before inference
        from . import prefetch

        del data
        _prepare(model, infer_shapes, shapes, lambda: prefetch.take(p, st))
    else:
        # The file's bytes are what shape inference needs: no second serialization of the graph.
        _prepare(model, infer_shapes, shapes, serialized=None if shapes else data)
    return model


def from_proto(
    proto: ModelProto, *, path: str | None = None, base_dir: Path | None = None, infer_shapes: bool = True,
    shapes: dict | None = None,
) -> Model:
    """Wrap an in-memory ModelProto (Python API), with the same validation as `load`.
    With `shapes`, a copy is frozen: the caller's proto is not modified."""
    if not isinstance(proto, ModelProto):
        raise TypeError(f"expected onnx.ModelProto, got {type(proto).__name__}")
    if shapes:
        copy = ModelProto()
        copy.CopyFrom(proto)
        proto = copy
    model = Model(proto, path, base_dir=base_dir.resolve() if base_dir else None)
    _prepare(model, infer_shapes, shapes)
    return model


def _prepare(model: Model, infer_shapes: bool, shapes: dict | None = None, inferred_elsewhere=None,
             serialized: bytes | None = None) -> None:
    """Freeze input shapes, validate tensors, run shape inference, build the graph views once and
    validate structure. Inference runs on the unvalidated graph: it is linear without data propagation
    and survives cycles. `inferred_elsewhere()` returns a helper process's inference result, if any
    (prefetch.take): then the views are built first and typed when it is collected."""
    _validate_tensors(model)
    if shapes:
        from .shapes import freeze_inputs

        model.frozen_inputs = tuple(freeze_inputs(model.proto, shapes, model.path))
    if inferred_elsewhere is None:
        if infer_shapes:
            run_shape_inference(model, serialized)
        _validate(model)
        if model.text_repairs and infer_shapes:
            run_shape_inference(model)  # the types of before were keyed by the undecodable names
        return
    _validate(model)
    if model.text_repairs:
        run_shape_inference(model)  # the helper inferred the file as it was
        return
    result = inferred_elsewhere()
    if result is None:
        run_shape_inference(model)
        return
    kind, payload = result
    if kind == "packed":
        try:
            _fill_packed(model.graphs, marshal.loads(payload))
        except (ValueError, EOFError, TypeError):
            run_shape_inference(model)
        return
    if kind == "inferred":
        inferred = ModelProto()
        try:
            inferred.ParseFromString(payload)
        except DecodeError:
            run_shape_inference(model)
            return
    else:
        model.shape_inference_error = payload.decode("utf-8", "replace")
        inferred = _lenient(model)
    model.attach_types(inferred)


def _parse(shown: str, data: bytes) -> ModelProto:
    proto = ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as e:
        msg = str(e)
        if "MaxDepth" in msg or "recursion" in msg.lower():
            raise ModelLoadError(shown, "protobuf nesting is too deep (subgraphs nested beyond the parser's limit)") from None
        raise ModelLoadError(shown, "not a valid ONNX protobuf (truncated, corrupt, or not an ONNX model)") from None
    except RecursionError:
        raise ModelLoadError(shown, "protobuf nesting is too deep") from None
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise ModelLoadError(shown, "not an ONNX model (no IR version or no graph)")
    return proto


def _validate_tensors(model: Model) -> None:
    """Every tensor of the model, wherever it hides (external.tensors): sane sizes, and each
    external-data reference validated before anything reads it."""
    lazy = model.lazy_raw
    try:
        for where, t, depth in external.tensors(model.proto, MAX_SUBGRAPH_DEPTH):
            _check_tensor(model, t, where, lazy.get(t.name) if lazy and depth == 0 else None)
    except RecursionError:
        raise ModelLoadError(model.path, f"subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} levels deep") from None


# Kept for tests and plugins that imported them from here.
_may_hold_tensors = external.may_hold_tensors


def _validate(model: Model) -> None:
    shown = model.path
    try:
        graphs = model.graphs
    except _TooDeep:
        raise ModelLoadError(shown, f"subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} levels deep") from None
    if _undecodable_text(model, graphs):
        model.text_repairs = repair_text(model.proto)
        model.__dict__.pop("graphs", None)
        model.__dict__.pop("_constant_views", None)
        model.opsets = _opsets(model.proto)
        graphs = model.graphs
    for g in graphs:
        where = _where(g)
        # A negative dim_value on graph I/O is how some exporters (Paddle) write "dynamic"; ONNX Runtime,
        # the TensorRT parser and onnxdoctor's type table all read it so.
        _check_structure(model, g, where)


def _undecodable_text(model: Model, graphs: list[Graph]) -> bool:
    """Whether a name the analysis keys on is not valid UTF-8 (Python's protobuf then returns the
    field's bytes, not text). Cheap: it looks at what the views collected anyway. Node names, dim
    params and doc strings are decoded where they are read (external.text)."""
    for g in graphs:
        for names in (g.producers, g.consumers, g.initializers, g.inputs, g.outputs, g.op_types):
            if bytes in set(map(type, names)):
                return True
        for i, std in enumerate(g.standard):
            if not std and type(g.nodes[i].domain) is bytes:
                return True
    p = model.proto
    if any(type(k) is bytes for k in model.opsets):
        return True
    return any(type(v) is bytes for e in p.metadata_props for v in (e.key, e.value)) or \
        any(type(v) is bytes for f in p.functions for v in (f.name, f.domain))


def repair_text(message) -> list[str]:
    """Replace, in place, every string field of `message` (recursively) that is not valid UTF-8 by its
    lenient decoding (invalid bytes as \\xNN escapes: distinct names stay distinct). Returns the
    repaired values, decoded."""
    repaired: list[str] = []
    stack = [message]
    while stack:
        msg = stack.pop()
        for fd, value in msg.ListFields():
            if fd.type == fd.TYPE_STRING:
                if fd.is_repeated:
                    for i, v in enumerate(value):
                        if type(v) is bytes:
                            value[i] = v.decode("utf-8", "backslashreplace")
                            repaired.append(value[i])
                elif type(value) is bytes:
                    fixed = value.decode("utf-8", "backslashreplace")
                    setattr(msg, fd.name, fixed)
                    repaired.append(fixed)
            elif fd.type == fd.TYPE_MESSAGE:
                if fd.is_repeated:
                    if fd.message_type.GetOptions().map_entry:
                        continue  # no map fields in onnx.proto
                    stack.extend(value)
                else:
                    stack.append(value)
    return repaired


def _opsets(proto: ModelProto) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in proto.opset_import:
        domain = "" if o.domain in ("", "ai.onnx") else o.domain
        out[domain] = int(o.version)
    return out


def _where(g: Graph) -> str:
    if not g.path:
        return "the main graph"
    if len(g.path) > 3:
        return f"subgraph .../{'/'.join(g.path[-2:])} (nested {len(g.path)} deep)"
    return f"subgraph {'/'.join(g.path)}"


def _check_tensor(model: Model, t: TensorProto, where: str, lazy: LazyBytes | None = None) -> None:
    dims = t.dims[:]
    n = math.prod(dims)
    if n > MAX_ELEMENTS or (dims and min(dims) < 0):
        shown = model.path
        name = external.text(t.name)
        if min(dims) < 0:
            raise ModelLoadError(shown, f"initializer {name!r} in {where} has a negative dimension {list(dims)}")
        raise ModelLoadError(shown, f"initializer {name!r} in {where} claims {n:.3g} elements (dims {list(t.dims)}): absurd size")
    if t.data_location == _EXTERNAL:
        try:
            ref = external.parse_ref(t)
        except external.RefError as e:
            raise ModelLoadError(model.path, str(e)) from None
        _check_external(model, ref, t)
        return
    size = _FIXED_SIZES.get(t.data_type)
    if size is not None and (lazy is not None or t.HasField("raw_data")):
        expected = math.ceil(n * size)
        held = lazy.length if lazy is not None else len(t.raw_data)
        if held != expected:
            raise ModelLoadError(
                model.path, f"initializer {external.text(t.name)!r} in {where} holds {held} bytes but dims {list(t.dims)} need {expected}"
            )


_EXTERNAL = TensorProto.EXTERNAL
_FIXED_SIZES = external.FIXED_SIZES


def _check_external(model: Model, ref: ExternalRef, t: TensorProto) -> None:
    """Resolve the reference's file inside the model's folder (refused: ModelLoadError) and record
    whether it can hold the tensor (a missing or short file is a finding, MOD502)."""
    base = model.base_dir
    model.external.append(ref)
    if base is None:
        return
    # Thousands of tensors usually share one data file: resolve and stat each location once.
    files = model.external_files
    hit = files.get(ref.location)
    if hit is None:
        try:
            hit = files[ref.location] = external.resolve(str(base), ref)
        except external.RefError as e:
            raise ModelLoadError(model.path, str(e)) from None
    if hit.size is None:
        model.external_problems.append((ref.tensor, f"external data file {ref.location!r} not found"))
        return
    problem = external.range_problem(ref, hit.size, external.expected_bytes(t))
    if problem is not None:
        model.external_problems.append((ref.tensor, problem))


def _check_structure(model: Model, g: Graph, where: str) -> None:
    """Every node input must be defined somewhere in scope; the graph must be acyclic."""
    shown = model.path
    known = set(g.inputs) | set(g.initializers)
    outer_names: set[str] = set()
    o = g.outer
    while o is not None:
        outer_names |= set(o.inputs) | set(o.initializers) | set(o.producers)
        o = o.outer
    # subgraph-implicit inputs: a body may reference anything in an enclosing scope
    producers = g.producers
    # One pass: every input must be defined somewhere (in this graph or an enclosing one), and most
    # graphs are already topologically sorted, which the same pass proves. onnx-tensorrt sorts nodes
    # itself, so only a cycle is fatal: Kahn's algorithm runs only for unsorted graphs.
    seen = set(known) | outer_names
    in_order = True
    for i, (ins, outs) in enumerate(zip(g.node_inputs, g.node_outputs)):
        for inp in ins:
            if inp and inp not in seen:
                if inp not in producers:
                    node = g.nodes[i]
                    label = node.name or f"{node.op_type}#{i}"
                    raise ModelLoadError(shown, f"node {label!r} ({node.op_type}) in {where} reads {inp!r}, which no node, input or initializer defines")
                in_order = False
        seen.update(outs)
    for out in g.outputs:
        if out and out not in seen:
            raise ModelLoadError(shown, f"graph output {out!r} of {where} is not produced by any node, input or initializer")
    if in_order:
        g.topo_sorted = True
        return
    order = g.topo_order
    if len(order) != len(g.nodes):
        placed = set(order)
        stuck = next(i for i in range(len(g.nodes)) if i not in placed)
        node = g.nodes[stuck]
        label = node.name or f"{node.op_type}#{stuck}"
        raise ModelLoadError(shown, f"{where} has a cycle through node {label!r} ({node.op_type})")


def run_shape_inference(model: Model, serialized: bytes | None = None) -> None:
    """ONNX shape inference, once in the common case. Strict mode surfaces node-level inconsistencies
    (recorded, reported as a finding); on failure a lenient pass still gives the views what it can.
    `serialized`: the model's bytes as read from its file, when the proto is unchanged since."""
    try:
        inferred = _infer_serialized(serialized) if serialized is not None else _infer(model.proto, strict=True)
    except Exception as e:  # noqa: BLE001 - any failure of the inferencer is a finding, not a crash
        model.shape_inference_error = _inference_message(e)
        inferred = _lenient(model)
    model.attach_types(inferred)


def _inference_message(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def _lenient(model: Model) -> ModelProto:
    try:
        return _infer(model.proto, strict=False)
    except Exception:  # noqa: BLE001
        return model.proto


def _infer_serialized(data: bytes) -> ModelProto:
    """Strict inference straight from a file's bytes (what onnx.shape_inference.infer_shapes does
    after serializing a proto), with the same options as `_infer`."""
    return ModelProto.FromString(_onnx.infer_shapes(data, strict=True))


def _infer(proto: ModelProto, *, strict: bool) -> ModelProto:
    # data_prop stays off: onnx's data propagation allocates per element of 1-D tensors (a 2^24-element
    # input costs 9 s and 3.6 GB), so a hostile or merely large file could hang the check. Constant
    # shape chains are evaluated by ConstantView instead.
    return ModelProto.FromString(_onnx.infer_shapes(proto.SerializeToString(), strict=strict))
