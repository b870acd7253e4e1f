"""GRF407 duplicate-node."""

from __future__ import annotations

from typing import NamedTuple

from ..._onnx import AttributeProto, TensorProto

from ...findings import Severity
from ...model import GRAPH_ATTR_OPS, Graph, Model
from ...rule import Context, Rule
from ._util import ITEMSIZE

# Ops whose result is not a function of their inputs and attributes.
NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                              "Bernoulli", "Dropout"})
# Initializers up to this many bytes are compared by value (bigger ones by name: GRF404 merges those).
_VALUE_KEY_BYTES = 4096


class Duplicate(NamedTuple):
    index: int  # the duplicate node
    original: int  # the earlier node it computes the same as
    mapping: dict[str, str]  # its outputs -> the original's outputs


class DuplicateNode(Rule):
    """A node that computes exactly what an earlier node computes: same op, attributes and inputs.

    ## What it does
    Walks each graph in topological order and keys every node of the standard domain by its op type,
    its attributes and its inputs; a node whose key was seen before is a duplicate. Inputs count as
    the same when they are the same value, the outputs of nodes already found to be duplicates of
    each other, or small initializers (up to 4 KiB) with the same type, shape and bytes. Random ops
    and `Dropout` are never duplicates, nor nodes with subgraphs or of other domains. A duplicate
    whose output is a graph output is kept (the output needs its name).

    ## Why it breaks TensorRT
    Each copy becomes its own layer: TorchScript exports recompute the same
    `Shape → Gather → Unsqueeze → Concat` chain for Q, K and V of every attention layer and the same
    mask in every layer, so a BERT-base export carries over a hundred redundant nodes. The builder
    may merge some of them, but the parser imports them all and shape-tensor chains stay on the host.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,4] x) => (float[2,4] y) {
          a = Relu(x)
          b = Relu(x)
          y = Add(a, b)
        }

    `b` is `a` computed a second time.

    ## How to fix
    Let the readers of the duplicate read the original and delete the duplicate; `onnxdoctor fix`
    does it (`dedupe-nodes`, common-subexpression elimination as onnxslim and onnxsim do).

    ## Fix safety
    `dedupe-nodes` is safe: a deterministic op given the same inputs and attributes computes the same
    values.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX operator specs (the Random* ops, Multinomial, Bernoulli and training-mode Dropout are the
    standard ops whose outputs are not a function of their inputs); onnxslim `find_and_remove_replaceable_nodes`.
    """

    code = "GRF407"
    name = "duplicate-node"
    severity = Severity.INFO
    summary = "node that computes the same as an earlier one"
    release_independent = True

    def check(self, ctx: Context):
        for g in ctx.model.graphs:
            if len(g.nodes) < 2 or g.function is not None:
                continue
            for d in duplicates(ctx.model, g):
                node, orig = g.ref(d.index), g.ref(d.original)
                yield self.finding(
                    ctx, f"{node.op_type} computes the same as {orig.name!r} (same op, attributes and inputs)",
                    node=node, tensor=node.output(0) or None, versions=ctx.kb.versions,
                    hint=f"read {orig.output(0)!r} instead",
                )


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
