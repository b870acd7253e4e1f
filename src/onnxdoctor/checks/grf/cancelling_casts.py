"""GRF406 cancelling-casts."""

from __future__ import annotations

from ..._onnx import TensorProto as T

from ...findings import Severity
from ...model import dtype_name
from ...rule import Context, Rule

# (significand bits incl. the implicit one, exponent bits)
_FLOATS = {T.FLOAT16: (11, 5), T.BFLOAT16: (8, 8), T.FLOAT: (24, 8), T.DOUBLE: (53, 11)}
# (bits, signed)
_INTS = {T.INT8: (8, True), T.INT16: (16, True), T.INT32: (32, True), T.INT64: (64, True),
         T.UINT8: (8, False), T.UINT16: (16, False), T.UINT32: (32, False), T.UINT64: (64, False)}


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


class CancellingCasts(Rule):
    """Two Casts in a row that convert a tensor to a wider type and back, exactly.

    ## What it does
    Reports a `Cast` whose input is another `Cast`'s output and whose target type is the original
    type, when the intermediate type holds every value of the original exactly (FLOAT → DOUBLE →
    FLOAT, FLOAT16 → FLOAT → FLOAT16, INT32 → INT64 → INT32, BOOL → INT32 → BOOL). Round trips through
    a narrower type (FLOAT → FLOAT16 → FLOAT rounds; INT64 → INT32 → INT64 wraps) change values and are
    not reported.

    ## Why it breaks TensorRT
    The round trip costs two cast layers and, through DOUBLE or INT64, a type TensorRT does not have
    natively (DOUBLE is cast down with a warning; INT64 needs 10.x). Exporters produce these around
    ops whose PyTorch implementation upcasts.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x) => (float[4] y) {
          d = Cast<to = 11>(x)
          f = Cast<to = 1>(d)
          y = Relu(f)
        }

    ## How to fix
    Read the original tensor directly; `onnxdoctor fix` does it (`remove-noops`), and removes the
    first Cast too when nothing else reads it.

    ## Fix safety
    `remove-noops` is safe here: the round trip is exact for every value.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX Cast spec (conversion rules); IEEE 754 binary16/32/64 and bfloat16 formats.
    """

    code = "GRF406"
    name = "cancelling-casts"
    severity = Severity.INFO
    summary = "Cast to a wider type and back"
    release_independent = True

    def check(self, ctx: Context):
        for node in ctx.nodes_of("Cast"):
            g = node.graph
            hit = g.producers.get(node.input(0))
            if hit is None:
                continue
            first = g.nodes[hit[0]]
            if first.op_type != "Cast" or first.domain not in ("", "ai.onnx") or not first.input:
                continue
            src = g.elem_type_of(first.input[0])
            via = next((a.i for a in first.attribute if a.name == "to"), 0)
            if not src or src == via or node.attr("to") != src or not lossless(src, via):
                continue
            both = len(g.consumers.get(first.output[0], ())) == 1 and first.output[0] not in g.outputs
            tail = "both Casts can be removed" if both else "the second Cast can be removed (the first has other readers)"
            yield self.finding(
                ctx, f"Cast {dtype_name(src)} → {dtype_name(via)} → {dtype_name(src)} is an exact round trip: {tail}",
                node=node, tensor=node.output(0), versions=ctx.kb.versions, hint="onnxdoctor fix removes it",
            )
