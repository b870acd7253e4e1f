"""PRC313 unpaired-quantize-dequantize."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._qdq import DATA_MOVEMENT, MAX_HOPS, any_qdq, is_std, source_through_movement


class UnpairedQuantizeDequantize(Rule):
    """A QuantizeLinear not followed by a DequantizeLinear, or a DequantizeLinear fed by neither a
    QuantizeLinear nor a constant.

    ## What it does
    Follows the output of every QuantizeLinear through data-movement ops (Reshape, Transpose,
    Concat, Slice, Gather, ...) and reports a consumer that is not a DequantizeLinear. Reports a
    DequantizeLinear whose input is computed at runtime by something other than a QuantizeLinear
    (again looking through data-movement ops); constants (pre-quantized weights) and graph inputs
    are fine. Graph outputs are accepted (a quantized network output).

    ## Why it breaks TensorRT
    TensorRT's explicit quantization works on Q/DQ *pairs*: it propagates DQ forward and Q backward
    and fuses them into the neighbouring quantizable layers. A quantized tensor consumed by, say, an
    Add or Relu has no INT8/FP8 implementation in a strongly typed network, and a dangling Q or DQ
    cannot be fused, so the build fails or leaves standalone (slow) scale layers, and the numerics
    no longer match the fake-quantized model it was exported from.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[4] x) => (float[4] y) <float s = {0.5}, int8 z = {0}> {
          q = QuantizeLinear(x, s, z)
          c = Cast<to = 1>(q)
          y = Relu(c)
        }

    ## How to fix
    Export fake quantization as QuantizeLinear immediately followed by DequantizeLinear (the form
    PyTorch's and ModelOpt's exporters produce); remove stray Q or DQ nodes left by graph edits.

    ## Fix safety
    No automatic fix.

    ## TensorRT versions
    All releases.

    ## Sources
    NVIDIA TensorRT developer guide, "Explicit Quantization" (QAT exports each fake-quantization as a
    QuantizeLinear/DequantizeLinear pair; Q/DQ propagation and fusion; "When using pre-quantized
    weights, an IDequantizeLayer is required between the weights and the linear operator");
    onnx-tensorrt docs/operators.md (10.x: quantized types only through Q/DQ).
    """

    code = "PRC313"
    name = "unpaired-quantize-dequantize"
    severity = Severity.WARNING
    summary = "Q without a following DQ, or DQ not fed by Q or a constant"
    release_independent = True

    def check(self, ctx: Context):
        if not any_qdq(ctx):
            return
        for ref in ctx.nodes_of("QuantizeLinear", "DequantizeLinear"):
            node = ref.node
            if not node.output:
                continue
            g = ref.graph
            if node.op_type == "QuantizeLinear":
                bad = _first_non_dq_consumer(g, node.output[0])
                if bad is not None:
                    yield self.finding(
                        ctx,
                        f"QuantizeLinear output {node.output[0]!r} is consumed by {bad.op_type} "
                        f"{bad.name or ''!s}".rstrip() + ", not by a DequantizeLinear",
                        node=ref,
                        tensor=node.output[0],
                        versions=ctx.kb.versions,
                        hint="follow every QuantizeLinear directly with a DequantizeLinear",
                    )
            elif node.op_type == "DequantizeLinear" and node.input:
                x = node.input[0]
                if ctx.model.constants(g).is_constant(x):
                    continue
                src = source_through_movement(g, x)
                if src is None or (src.op_type == "QuantizeLinear" and is_std(src)):
                    continue
                if src.op_type.endswith("QuantizeLinear") and src.op_type != "DynamicQuantizeLinear":
                    continue
                yield self.finding(
                    ctx,
                    f"DequantizeLinear input {x!r} comes from {src.op_type} {src.name or ''!s}".rstrip()
                    + ", not from a QuantizeLinear or a constant",
                    node=ref,
                    tensor=x,
                    versions=ctx.kb.versions,
                    hint="feed DequantizeLinear from a QuantizeLinear (activations) or a quantized initializer (weights)",
                )


def _first_non_dq_consumer(g, tensor: str):
    stack = [(tensor, 0)]
    seen = set()
    while stack:
        t, depth = stack.pop()
        if t in seen or depth > MAX_HOPS:
            continue
        seen.add(t)
        for c in g.consumers.get(t, ()):
            n = g.nodes[c]
            if n.op_type == "DequantizeLinear" and is_std(n):
                continue
            if n.op_type in DATA_MOVEMENT and is_std(n) and n.input and n.input[0] == t:
                stack.extend((o, depth + 1) for o in n.output if o)
                continue
            return n
    return None
