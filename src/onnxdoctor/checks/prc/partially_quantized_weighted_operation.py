"""PRC314 partially-quantized-weighted-operation."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._qdq import any_qdq, comes_from_dq, source_through_movement

WEIGHTED = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


class PartiallyQuantizedWeightedOperation(Rule):
    """A Conv, ConvTranspose, MatMul or Gemm with only some of its inputs quantized.

    ## What it does
    In a model with Q/DQ nodes, checks the data and weight inputs (inputs 0 and 1) of every weighted
    operation: reports when one comes from a DequantizeLinear and the other does not. Weight-only
    quantization of a MatMul/Gemm (quantized constant weight, float activation: the W4A16/W8A16
    scheme TensorRT supports) is not reported.

    ## Why it breaks TensorRT
    TensorRT runs a convolution or GEMM in INT8/FP8 only when both its activation and its weight
    are quantized: it fuses the input DQs into the layer. With one side in float, the layer runs in
    FP32/FP16 with the quantized side dequantized first, so the Q/DQ nodes cost time and accuracy
    and buy no speed. NVIDIA's first placement recommendation is "quantize all inputs of
    weighted-operations".

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,8,8] x) => (float[1,4,6,6] y) <int8[4,3,3,3] w = {...}, float s = {0.1}> {
          wf = DequantizeLinear(w, s)
          y = Conv(x, wf)
        }

    ## How to fix
    Add a QuantizeLinear/DequantizeLinear pair on the missing input (calibrated activation scale),
    or remove the Q/DQ from the quantized one if the layer should stay in floating point.

    ## Fix safety
    No automatic fix: a new activation scale needs calibration.

    ## TensorRT versions
    All releases.

    ## Sources
    NVIDIA TensorRT developer guide, "Explicit Quantization" → "Q/DQ Layer-Placement
    Recommendations" ("Quantize all inputs of weighted-operations (Convolution, Transposed
    Convolution and GEMM)"); "Working with Quantized Types" (INT4 weight-only quantization).
    """

    code = "PRC314"
    name = "partially-quantized-weighted-operation"
    severity = Severity.INFO
    summary = "weighted operation with only some inputs quantized"
    release_independent = True

    def check(self, ctx: Context):
        if not any_qdq(ctx):
            return
        for ref in ctx.nodes_of(*WEIGHTED):
            node = ref.node
            if len(node.input) < 2:
                continue
            g = ref.graph
            a, b = node.input[0], node.input[1]
            qa, qb = comes_from_dq(g, a), comes_from_dq(g, b)
            if qa == qb:
                continue
            cv = ctx.model.constants(g)
            quantized, other = (a, b) if qa else (b, a)
            if node.op_type in ("MatMul", "Gemm"):
                dq = source_through_movement(g, quantized)
                if dq is not None and dq.input and cv.is_constant(dq.input[0]) and not cv.is_constant(other):
                    continue  # weight-only quantization
            role = "weight" if cv.is_constant(other) else "input"
            yield self.finding(
                ctx,
                f"{node.op_type} reads {quantized!r} through DequantizeLinear but its {role} {other!r} is not "
                "quantized: the layer runs in floating point and the Q/DQ buys no INT8/FP8 kernel",
                node=ref,
                tensor=other,
                versions=ctx.kb.versions,
                hint=f"quantize {other!r} too (Q/DQ pair), or drop the Q/DQ on {quantized!r}",
            )
