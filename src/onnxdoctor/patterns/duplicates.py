"""Duplicates: nodes that compute what an earlier node computes, same op, attributes and inputs (GRF407,
dedupe-nodes); the content key that identifies an initializer's bytes (GRF404, dedupe-initializers)."""

from __future__ import annotations

try:  # what hashlib.blake2b is, without hashlib's import of OpenSSL
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b
from typing import NamedTuple

from .._onnx import AttributeProto, TensorProto

from ..dtype_limits import ITEMSIZE
from ..model import GRAPH_ATTR_OPS, Graph, LazyBytes, Model
from ..model.graph import _external_ref

# Ops whose result is not a function of their inputs and attributes.
NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                              "Bernoulli", "Dropout"})
_NOT_KEYED = NONDETERMINISTIC | GRAPH_ATTR_OPS
_GRAPH_TYPES = (AttributeProto.GRAPH, AttributeProto.GRAPHS)
# Initializers up to this many bytes are compared by value (bigger ones by name: GRF404 merges those).
_VALUE_KEY_BYTES = 4096


class Duplicate(NamedTuple):
    index: int  # the duplicate node
    original: int  # the earlier node it computes the same as
    mapping: dict[str, str]  # its outputs -> the original's outputs


def duplicates(model: Model, g: Graph) -> list[Duplicate]:
    """Every duplicate node of `g`, in topological order, with cascades: a node whose inputs are
    duplicates' outputs is compared as if it read the originals'."""
    alias: dict[str, str] = {}
    # (op, inputs, output arity) -> the nodes seen with it; attributes are compared only within a bucket
    seen: dict[tuple, int | dict] = {}
    attr_keys: dict[int, tuple | None] = {}
    const_keys: dict[str, object] = {}
    outputs = set(g.outputs)
    found: list[Duplicate] = []
    ops, std, ins_, outs_ = g.op_types, g.standard, g.node_inputs, g.node_outputs
    nodes = g.nodes

    def attrs(k: int) -> tuple | None:
        key = attr_keys.get(k, ())
        if key == ():
            listed = nodes[k].attribute[:]  # [:]: one C call, not an iteration of the repeated field
            if len(listed) == 1:  # a Constant's value, say: the sorted tuple of one, without the list
                a = listed[0]
                key = None if a.type in _GRAPH_TYPES else (a.SerializeToString(),)
            else:
                parts: list[bytes] | None = []
                for a in listed:
                    if a.type in _GRAPH_TYPES:
                        parts = None
                        break
                    # ONNX's messages have no map fields, the only thing deterministic serialization orders
                    parts.append(a.SerializeToString())  # type: ignore[union-attr]
                key = None if parts is None else tuple(sorted(parts))
            attr_keys[k] = key
        return key

    consumers = g.consumers
    # A node that alone reads some value cannot have a twin: it is set aside unkeyed (most nodes are),
    # and keyed only if a duplicate found later makes that value read by others too.
    extra_readers: dict[str, int] = {}
    set_aside: dict[str, int] = {}  # a value -> the node that alone reads it, set aside

    def visit(i: int) -> dict[str, str] | None:
        """Keys node i; its outputs -> the original's when it is a duplicate."""
        op = ops[i]
        inputs = []
        for name in ins_[i]:
            name = alias.get(name, name)
            key = const_keys.get(name)
            if key is None:
                key = const_keys[name] = _input_key(g, name)
            inputs.append(key)
        outs = outs_[i]
        cheap = (op, tuple(inputs), tuple(map(bool, outs)))
        bucket = seen.get(cheap)
        if bucket is None:
            seen[cheap] = i  # attributes read only when a second node has the same op and inputs
            return None
        mine = attrs(i)
        if mine is None:
            return None
        if isinstance(bucket, int):
            bucket = seen[cheap] = {attrs(bucket): bucket}
        first = bucket.get(mine)
        if first is None:
            bucket[mine] = i
            return None
        if any(o in outputs for o in outs if o):
            return None  # the graph output needs its name
        mapping = {o: p for o, p in zip(outs, outs_[first]) if o}
        alias.update(mapping)
        found.append(Duplicate(i, first, mapping))
        return mapping

    # node -> a value it alone reads, keyed by its name (not an initializer keyed by its content)
    by_content = _keyed_by_content(g)
    sole_reader = {cs[0]: name for name, cs in consumers.items() if len(cs) == 1 and name not in by_content}
    for i in g.topo_order:
        if not std[i] or ops[i] in _NOT_KEYED:
            continue
        name = sole_reader.get(i)
        if name is not None and name not in alias and name not in extra_readers:
            set_aside[name] = i  # its only reader: one node per value
            continue
        pending = [i]
        while pending:
            mapping = visit(pending.pop())
            for o, p in (mapping or {}).items():
                extra_readers[p] = extra_readers.get(p, 0) + len(consumers.get(o, ()))
                # set aside before, keyed now as it would have been then (its inputs' aliases are older)
                k = set_aside.pop(p, None)
                if k is not None:
                    pending.append(k)
    return found


def _keyed_by_content(g: Graph) -> set[str]:
    """The initializers that _input_key(g, name) may key by their content (it keys the others by name),
    decided without reading any tensor's size: local ones, neither graph inputs nor left in the file."""
    lazy, inputs, external = g.lazy_raw, set(g.inputs), TensorProto.EXTERNAL
    return {name for name, t in g.initializers.items()
            if not (name in lazy or name in inputs or t.data_location == external)}


def _input_key(g: Graph, name: str):
    """What identifies an input's value: a small local initializer's content, else its name."""
    t = g.initializers.get(name)
    if t is None or name in g.inputs:  # an initializer that is also a graph input can be overridden
        return name
    if t.data_location == TensorProto.EXTERNAL:
        return name
    n = 1
    for d in t.dims:
        n *= d
    if n * ITEMSIZE.get(t.data_type, 8) > _VALUE_KEY_BYTES:  # decided before any byte is read
        return name
    raw = g.raw_data(name)
    if raw is None:
        copy = type(t)()
        copy.CopyFrom(t)
        copy.ClearField("name")
        copy.ClearField("doc_string")
        raw = copy.SerializeToString(deterministic=True)
    return ("init", t.data_type, tuple(t.dims), raw)


def content_key(t: TensorProto, external: bool, known: dict | None = None, lazy: LazyBytes | None = None):
    """What identifies the tensor's content (GRF404 and dedupe-initializers compare these): a digest of
    the inline bytes, or (location, offset, length) of external data; `lazy`: its raw_data, when the
    check left it in the file. None when the extent of external data is unknown."""
    if external:
        ref = known.get(t.name) if known else None
        if ref is None:
            try:
                ref = _external_ref(t)
            except ValueError:
                return None
        if ref.length is None:
            return None  # "to the end of the file": the region's extent is not known without a stat
        return ("external", ref.location, ref.offset, ref.length)
    if lazy is not None:
        data = lazy.read()
    elif t.HasField("raw_data"):
        data = t.raw_data
    else:
        copy = TensorProto()
        copy.CopyFrom(t)
        copy.ClearField("name")
        copy.ClearField("doc_string")
        if "metadata_props" in copy.DESCRIPTOR.fields_by_name:
            copy.ClearField("metadata_props")
        data = copy.SerializeToString(deterministic=True)
    return ("inline", blake2b(data, digest_size=20).digest())
