"""No-op nodes: what GRF405 (noop-node), GRF406 (cancelling-casts) and GRF408 (identity-arithmetic)
report and remove-noops removes, found by one detector so a finding and its fix agree.

`noop(model, node)` says whether a node passes a value through unchanged (Identity, inference
Dropout, same-type Cast, an exact Cast round trip, x+0 / x-0 / x*1 / x/1) and which value;
`needed(graph, input, output)` says why such a node must stay anyway (it gives a graph output its
name and there is no producer to rename)."""

from __future__ import annotations

from typing import NamedTuple

from .._onnx import TensorProto as T

from ..model import Graph, Model, NodeRef, dtype_name

# (significand bits incl. the implicit one, exponent bits)
_FLOATS = {T.FLOAT16: (11, 5), T.BFLOAT16: (8, 8), T.FLOAT: (24, 8), T.DOUBLE: (53, 11)}
# (bits, signed)
_INTS = {T.INT8: (8, True), T.INT16: (16, True), T.INT32: (32, True), T.INT64: (64, True),
         T.UINT8: (8, False), T.UINT16: (16, False), T.UINT32: (32, False), T.UINT64: (64, False)}

# op -> (the identity element, whether it may be the first operand too)
IDENTITIES = {"Add": (0, True), "Sub": (0, False), "Mul": (1, True), "Div": (1, False)}
PASS_THROUGH = ("Identity", "Dropout", "Cast")


class Noop(NamedTuple):
    index: int  # the node, in its graph
    input: str  # the value its output equals
    output: str
    kind: str  # identity | dropout | cast | cast-round-trip | arithmetic
    what: str  # what it is, for a change line ("Identity", "Cast round trip FLOAT -> DOUBLE -> FLOAT", ...)
    src: int = 0  # cast, cast-round-trip: the element type of `input`
    via: int = 0  # cast-round-trip: the type the first Cast converts to
    first: int = -1  # cast-round-trip: the first Cast's node index


def lossless(src: int, via: int) -> bool:
    """Every value of type `src` survives a Cast to `via` and back unchanged."""
    if src == via:
        return True
    if src == T.BOOL:
        return via in _FLOATS or via in _INTS  # 0/1 and back through `!= 0`
    if src in _FLOATS and via in _FLOATS:
        (m1, e1), (m2, e2) = _FLOATS[src], _FLOATS[via]
        return m2 >= m1 and e2 >= e1
    if src in _INTS and via in _INTS:
        (b1, s1), (b2, s2) = _INTS[src], _INTS[via]
        if s1 == s2:
            return b2 >= b1
        return (not s1) and s2 and b2 > b1
    if src in _INTS and via in _FLOATS:
        bits, signed = _INTS[src]
        return _FLOATS[via][0] >= bits - (1 if signed else 0)
    return False


def inference_dropout(model: Model, node: NodeRef) -> bool:
    """A Dropout in inference mode: no `training_mode` input or a constant false one (`is_test=1`
    before opset 7)."""
    if model.op_version(node) < 7:
        return node.attr("is_test", 0) == 1
    tm = node.input(2)
    if not tm:
        return True
    v = model.constants(node.graph).value(tm)
    return v is not None and v.size == 1 and not bool(v.reshape(-1)[0])


def noop(model: Model, node: NodeRef) -> Noop | None:
    """The no-op `node` is, or None. Standard-domain nodes only."""
    g, i, op = node.graph, node.index, node.op_type
    if not g.standard[i]:
        return None
    if op in IDENTITIES:
        hit = identity_operand(model, node)
        return Noop(i, hit[0], node.output(0), "arithmetic", hit[1]) if hit else None
    if op not in PASS_THROUGH:
        return None
    x, y = node.input(0), node.output(0)
    if not x or not y:
        return None
    if op == "Identity":
        return Noop(i, x, y, "identity", "Identity")
    if op == "Dropout":
        mask = node.output(1)
        if (mask and g.is_used(mask)) or not inference_dropout(model, node):
            return None
        return Noop(i, x, y, "dropout", "inference Dropout")
    to, src = node.attr("to"), g.elem_type_of(x)
    if src and to == src:
        return Noop(i, x, y, "cast", f"Cast to {dtype_name(src)} of a {dtype_name(src)} tensor", src=src)
    hit = g.producers.get(x)
    first = g.nodes[hit[0]] if hit else None
    if first is None or first.op_type != "Cast" or first.domain not in ("", "ai.onnx") or not first.input:
        return None
    orig = g.elem_type_of(first.input[0])
    via = next((a.i for a in first.attribute if a.name == "to"), 0)
    if not orig or orig == via or to != orig or not lossless(orig, via):
        return None
    what = f"Cast round trip {dtype_name(orig)} -> {dtype_name(via)} -> {dtype_name(orig)}"
    return Noop(i, first.input[0], y, "cast-round-trip", what, src=orig, via=via, first=hit[0])


def needed(g: Graph, x: str, y: str) -> str | None:
    """Why a no-op from `x` to `y` must stay, or None. When `y` is a graph output, removing the node
    means renaming the producer of `x` to produce `y`: impossible when `x` is not computed by a node
    of this graph (a graph input, an initializer, an outer-scope value) or is a graph output itself."""
    if y not in g.outputs:
        return None
    if x not in g.producers:
        return "is a graph input, initializer or outer-scope value"
    if x in g.outputs:
        return "is itself a graph output"
    return None


def noops(model: Model, g: Graph) -> list[Noop]:
    """Every no-op node of graph `g`, in node order (needed ones included: see `needed`)."""
    found = []
    for i, op in enumerate(g.op_types):
        if op in IDENTITIES or op in PASS_THROUGH:
            hit = noop(model, g.ref(i))
            if hit is not None:
                found.append(hit)
    return found


def identity_operand(model: Model, node: NodeRef) -> tuple[str, str] | None:
    """(the operand the node passes through unchanged, a description) when `node` is x+0, x-0, x*1,
    x/1 with a constant that does not broadcast x; else None."""
    op = node.op_type
    spec = IDENTITIES.get(op)
    g = node.graph
    ins = g.node_inputs[node.index]
    if spec is None or node.domain or len(ins) != 2 or not node.output(0):
        return None
    neutral, either = spec
    a, b = ins
    cv = model.constants(g)
    is_constant = cv.is_constant
    for x, c in ((a, b), (b, a)) if either else ((a, b),):
        if not c or not x or not is_constant(c) or is_constant(x):
            continue
        # An initializer or Constant whose first value shows it is not neutral is the common case:
        # decided before its value is computed.
        if _surely_not(g, c, neutral):
            continue
        value = cv.value(c)
        if value is None or value.dtype.kind not in "biuf" or not (value == neutral).all():
            continue
        tx = g.type_of(x)
        if tx is None or tx.shape is None or len(value.shape) > len(tx.shape):
            continue
        dims = tx.shape[len(tx.shape) - len(value.shape):]
        if all(d == 1 or (isinstance(xd, int) and d == xd) for d, xd in zip(value.shape, dims)):
            sym = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}[op]
            shape = "x".join(map(str, value.shape)) or "scalar"
            return x, f"{op} {sym} {neutral} ({shape} constant {c!r})"
    return None


# The bytes of 0 and 1 in the types constants come in: a constant whose first element is not one of
# them is decided without numpy (most are not neutral).
_NEUTRAL_BYTES = {
    (1, 0): b"\x00\x00\x00\x00", (1, 1): b"\x00\x00\x80\x3f",  # FLOAT
    (10, 0): b"\x00\x00", (10, 1): b"\x00\x3c",  # FLOAT16
    (11, 0): b"\x00" * 8, (11, 1): b"\x00\x00\x00\x00\x00\x00\xf0\x3f",  # DOUBLE
    (6, 0): b"\x00" * 4, (6, 1): b"\x01\x00\x00\x00",  # INT32
    (7, 0): b"\x00" * 8, (7, 1): b"\x01" + b"\x00" * 7,  # INT64
}


# The typed field that holds a tensor's values when it has no raw_data (FLOAT16 is stored as bits).
_TYPED_FIELDS = {1: "float_data", 11: "double_data", 6: "int32_data", 7: "int64_data"}


def may_be_neutral(g: Graph, name: str, neutral: int) -> bool:
    """False when constant `name` is visibly not all `neutral` (see _surely_not): a cheap first test
    for identity_operand's candidates, before its constant's value is computed."""
    return not _surely_not(g, name, neutral)


def _surely_not(g, name: str, neutral: int) -> bool:
    """True when the first element of initializer or Constant `name` is visibly not `neutral` (-0.0
    counts as not 0: a miss, never a wrong answer), or when its value is in external data, which the
    analysis never reads (ConstantView.value is None there: no answer either way)."""
    tp = g.initializers.get(name)
    if tp is None:
        hit = g.producers.get(name)
        if hit is None or g.op_types[hit[0]] != "Constant":
            return False
        node = g.nodes[hit[0]]
        if len(node.attribute) != 1 or node.attribute[0].name != "value":
            return False
        tp = node.attribute[0].t
    if tp.data_location == 1:
        return True
    want = _NEUTRAL_BYTES.get((tp.data_type, neutral))
    if want is None:
        return False
    if not tp.HasField("raw_data"):
        typed = _TYPED_FIELDS.get(tp.data_type)
        values = getattr(tp, typed) if typed else ()
        return len(values) > 0 and values[0] != neutral  # -0.0 == 0 here: the value is then compared
    raw = tp.raw_data if name not in g.lazy_raw else g.lazy_raw[name].read(0, len(want))
    return raw[:len(want)] != want
