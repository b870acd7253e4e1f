"""PRC315 unquantized-residual-input."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._qdq import any_qdq, comes_from_dq, is_std

WEIGHTED = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
_ACTIVATIONS = frozenset({"Relu", "LeakyRelu", "Sigmoid", "Clip", "HardSigmoid", "HardSwish"})


class UnquantizedResidualInput(Rule):
    """A residual Add after a quantized Conv/GEMM whose skip input is not quantized, while its
    output is.

    ## What it does
    Finds `Add(weighted_op_output, residual)` where the weighted op (Conv, ConvTranspose, MatMul,
    Gemm) has quantized inputs, the residual input does not come from a DequantizeLinear, and the
    Add's output (directly or after an activation such as Relu) goes into a QuantizeLinear.

    ## Why it breaks TensorRT
    TensorRT fuses an element-wise addition into the preceding weighted layer (Conv+Add+Relu), and
    the precision of the residual input decides the precision of the fused output. A float residual
    makes the fused layer output float, so the QuantizeLinear after it cannot be fused and runs as
    a separate layer: the skip connection costs an extra pass over memory in every block. NVIDIA's
    placement recommendation is to quantize the residual input in skip connections.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,8,8] x) => (float[1,4,8,8] y) <int8[4,4,1,1] w = {...}, float s = {0.1}, int8 z = {0}> {
          q = QuantizeLinear(x, s, z)
          xq = DequantizeLinear(q, s, z)
          wf = DequantizeLinear(w, s)
          c = Conv(xq, wf)
          a = Add(c, x)
          qo = QuantizeLinear(a, s, z)
          y = DequantizeLinear(qo, s, z)
        }

    ## How to fix
    Put a QuantizeLinear/DequantizeLinear pair on the residual (skip) input of the Add, with the
    same scale as the Add's output quantizer where possible.

    ## Fix safety
    No automatic fix: the residual scale needs calibration.

    ## TensorRT versions
    All releases.

    ## Sources
    NVIDIA TensorRT developer guide, "Explicit Quantization" → "Q/DQ Layer-Placement
    Recommendations" ("Quantize the residual input in skip-connections": "the precision of the
    first input to the element-wise addition layer determines the precision of the output of the
    fusion"; with a floating-point residual "the trailing Q-layer cannot be fused with the
    convolution").
    """

    code = "PRC315"
    name = "unquantized-residual-input"
    severity = Severity.INFO
    summary = "float residual input blocks the Conv+Add+Q fusion"
    release_independent = True

    def check(self, ctx: Context):
        if not any_qdq(ctx):
            return
        for ref in ctx.nodes_of("Add"):
            node = ref.node
            if len(node.input) != 2 or not node.output:
                continue
            g = ref.graph
            if not _feeds_quantize(g, node.output[0]):
                continue
            for k in (0, 1):
                main, skip = node.input[k], node.input[1 - k]
                prod = g.producer(main)
                if prod is None or prod.op_type not in WEIGHTED or not is_std(prod) or len(prod.input) < 2:
                    continue
                if not (comes_from_dq(g, prod.input[0]) and comes_from_dq(g, prod.input[1])):
                    continue
                if comes_from_dq(g, skip) or comes_from_dq(g, main) or ctx.model.constants(g).is_constant(skip):
                    continue
                yield self.finding(
                    ctx,
                    f"residual input {skip!r} of this Add after quantized {prod.op_type} is not quantized: the fused "
                    f"{prod.op_type}+Add outputs float and the following QuantizeLinear cannot be fused",
                    node=ref,
                    tensor=skip,
                    versions=ctx.kb.versions,
                    hint=f"add a QuantizeLinear/DequantizeLinear pair on {skip!r}",
                )
                break


def _feeds_quantize(g, tensor: str) -> bool:
    for c in g.consumers.get(tensor, ()):
        n = g.nodes[c]
        if n.op_type == "QuantizeLinear":
            return True
        if n.op_type in _ACTIVATIONS and n.output:
            if any(g.nodes[c2].op_type == "QuantizeLinear" for c2 in g.consumers.get(n.output[0], ())):
                return True
    return False
