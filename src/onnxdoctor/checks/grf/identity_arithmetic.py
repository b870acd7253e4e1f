"""GRF408 identity-arithmetic."""

from __future__ import annotations

from ...findings import Severity
from ...model import Model, NodeRef
from ...rule import Context, Rule

# op -> (the identity element, whether it may be the first operand too)
_IDENTITIES = {"Add": (0, True), "Sub": (0, False), "Mul": (1, True), "Div": (1, False)}


class IdentityArithmetic(Rule):
    """`x + 0`, `x - 0`, `x * 1` or `x / 1` with a constant that does not change the shape of `x`.

    ## What it does
    Reports `Add` and `Mul` with a constant operand whose every element is 0 (resp. 1), and `Sub` and
    `Div` whose second operand is such a constant, when broadcasting the constant leaves `x`'s shape
    unchanged: the constant has no more dims than `x`, and each of its dims (aligned from the right)
    is 1 or equal to `x`'s static dim there. A zero bias that would broadcast `x` to a bigger shape is
    not a no-op and is not reported.

    ## Why it breaks TensorRT
    Each one is an elementwise layer (and a weight) that computes nothing. Models built with
    zero-initialised biases or unit scales (a fresh `nn.Linear`'s bias, LayerNorm weights folded
    elsewhere, quantization leftovers) carry dozens.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,4] x) => (float[2,4] y) <float[4] b = {0, 0, 0, 0}> {
          a = Add(x, b)
          y = Relu(a)
        }

    ## How to fix
    Read `x` directly; `onnxdoctor fix` does it (`remove-noops`).

    ## Fix safety
    `remove-noops` is safe: the values are identical (for `x + 0` the one exception is `-0.0`, which
    becomes `+0.0` and compares equal).

    ## TensorRT versions
    All releases.

    ## Sources
    IEEE 754 (x + (+0) = x except for x = -0; x * 1 and x / 1 exact); ONNX broadcasting rules
    (multidirectional broadcasting); onnxslim's elimination of `Add`/`Mul` identities.
    """

    code = "GRF408"
    name = "identity-arithmetic"
    severity = Severity.INFO
    summary = "x + 0, x - 0, x * 1 or x / 1 that leaves x unchanged"
    release_independent = True

    def check(self, ctx: Context):
        for node in ctx.nodes_of(*_IDENTITIES):
            hit = identity_operand(ctx.model, node)
            if hit is None:
                continue
            x, what = hit
            yield self.finding(ctx, f"{what}: the output equals {x!r}", node=node, tensor=node.output(0),
                               versions=ctx.kb.versions, hint="onnxdoctor fix removes it")


def identity_operand(model: Model, node: NodeRef) -> tuple[str, str] | None:
    """(the operand the node passes through unchanged, a description) when `node` is x+0, x-0, x*1,
    x/1 with a constant that does not broadcast x; else None."""
    op = node.op_type
    spec = _IDENTITIES.get(op)
    g = node.graph
    ins = g.node_inputs[node.index]
    if spec is None or node.domain or len(ins) != 2:
        return None
    neutral, either = spec
    a, b = ins
    cv = model.constants(g)
    ca, cb = cv.is_constant(b), either and cv.is_constant(a)
    if not ca and not cb or not node.output(0):
        return None
    for x, c in ((a, b), (b, a)) if either else ((a, b),):
        if not c or not x or not cv.is_constant(c) or cv.is_constant(x):
            continue
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


def _surely_not(g, name: str, neutral: int) -> bool:
    """True when the first element of initializer or Constant `name` is visibly not `neutral` (-0.0
    counts as not 0: a miss, never a wrong answer)."""
    tp = g.initializers.get(name)
    if tp is None:
        node = g.producer(name)
        if node is None or node.op_type != "Constant" or len(node.attribute) != 1 or node.attribute[0].name != "value":
            return False
        tp = node.attribute[0].t
    want = _NEUTRAL_BYTES.get((tp.data_type, neutral))
    if want is None or not tp.HasField("raw_data") or tp.data_location == 1:
        return False
    raw = tp.raw_data if name not in g.lazy_raw else g.lazy_raw[name].read(0, len(want))
    return raw[:len(want)] != want
