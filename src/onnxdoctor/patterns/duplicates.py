"""Duplicates: nodes that compute what an earlier node computes, same op, attributes and inputs (GRF407,
dedupe-nodes); the content key that identifies an initializer's bytes (GRF404, dedupe-initializers)."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from .._onnx import AttributeProto, TensorProto

from ..dtype_limits import ITEMSIZE
from ..model import GRAPH_ATTR_OPS, Graph, LazyBytes, Model
from ..model.graph import _external_ref

# Ops whose result is not a function of their inputs and attributes.
NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                              "Bernoulli", "Dropout"})
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
            parts = []
            for a in nodes[k].attribute:
                if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                    parts = None
                    break
                parts.append(a.SerializeToString(deterministic=True))
            key = attr_keys[k] = None if parts is None else tuple(sorted(parts))
        return key

    for i in g.topo_order:
        op = ops[i]
        if not std[i] or op in NONDETERMINISTIC or op in GRAPH_ATTR_OPS:
            continue
        inputs = []
        for name in ins_[i]:
            name = alias.get(name, name)
            key = const_keys.get(name)
            if key is None:
                key = const_keys[name] = _input_key(g, name)
            inputs.append(key)
        outs = outs_[i]
        cheap = (op, tuple(inputs), tuple(bool(o) for o in outs))
        bucket = seen.get(cheap)
        if bucket is None:
            seen[cheap] = i  # attributes read only when a second node has the same op and inputs
            continue
        mine = attrs(i)
        if mine is None:
            continue
        if isinstance(bucket, int):
            bucket = seen[cheap] = {attrs(bucket): bucket}
        first = bucket.get(mine)
        if first is None:
            bucket[mine] = i
            continue
        if any(o in outputs for o in outs if o):
            continue  # the graph output needs its name
        mapping = {o: p for o, p in zip(outs, outs_[first]) if o}
        alias.update(mapping)
        found.append(Duplicate(i, first, mapping))
    return found


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
    return ("inline", hashlib.blake2b(data, digest_size=20).digest())
