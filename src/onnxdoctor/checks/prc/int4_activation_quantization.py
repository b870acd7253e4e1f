"""PRC311 int4-activation-quantization."""

from __future__ import annotations

from ..._onnx import TensorProto

from ...findings import Severity
from ...rule import Context, Rule
from ._qdq import any_qdq


class Int4ActivationQuantization(Rule):
    """A QuantizeLinear to INT4 applied to an activation; TensorRT's INT4 is weight-only.

    ## What it does
    Reports QuantizeLinear nodes whose quantized type is INT4 (from `output_dtype`, the zero point's
    type, or the inferred output type) and whose input is not a build-time constant, i.e. runtime
    activations. Quantized types the release cannot represent at all (INT4 before 10.0, FP8/BF16
    before 9.0, FP4 before 10.8, INT16/UINT16/FP8E5M2 never) are reported by TRT111
    (`unsupported-data-type`), and DequantizeLinear inputs of a type outside the operator matrix
    (e.g. INT32 quantized biases from ONNX Runtime's quantizer) by TRT115; this rule covers what a
    type check cannot see.

    ## Why it breaks TensorRT
    TensorRT supports INT4 only for weight-only quantization: INT4 weights are dequantized inside
    the GEMM while activations stay FP16/BF16. There are no INT4 activation kernels, so a Q/DQ pair
    quantizing an activation to INT4 does not build as intended (no implementation, or the pair is
    not fused and runs as slow standalone layers).

    ## Example
        <ir_version: 10, opset_import: ["" : 21]>
        g (float[4,8] x) => (float[4,8] y) <float s = {0.5}, int4 z = {0}> {
          q = QuantizeLinear(x, s, z)
          y = DequantizeLinear(q, s, z)
        }

    ## How to fix
    Quantize activations to INT8 or FP8 (or FP4 on 10.8+) and keep INT4 for weights only
    (W4A16 / W4A8 schemes, e.g. NVIDIA ModelOpt `int4_awq`).

    ## Fix safety
    No automatic fix: re-quantization needs calibration.

    ## TensorRT versions
    Releases with INT4 (10.0 and later); before 10.0 INT4 itself is unsupported (TRT111).

    ## Sources
    NVIDIA TensorRT developer guide, "Working with Quantized Types" (supported types: "INT4 (signed
    4-bit integer, weight-only quantization)"); onnx-tensorrt docs/operators.md 10.x header (INT4 is a
    quantized type, "support is available only through quantization from a floating-point type");
    shared/trt-operators/VERSIONS.md §2.1 (INT4 from 10.0, quantized type only).
    """

    code = "PRC311"
    name = "int4-activation-quantization"
    severity = Severity.WARNING
    summary = "activation quantized to INT4 (TensorRT INT4 is weight-only)"

    def check(self, ctx: Context):
        if "INT4" not in ctx.release.types or not any_qdq(ctx):
            return
        versions = ctx.kb.versions_where(lambda r: "INT4" in r.types)
        for ref in ctx.nodes_of("QuantizeLinear"):
            node = ref.node
            if not node.input:
                continue
            g = ref.graph
            qtype = ref.attr("output_dtype", 0) or 0
            if not qtype and len(node.input) > 2 and node.input[2]:
                qtype = g.elem_type_of(node.input[2])
            if not qtype and node.output:
                qtype = g.elem_type_of(node.output[0])
            if qtype != TensorProto.INT4:
                continue
            x = node.input[0]
            if ctx.model.constants(g).is_constant(x):
                continue
            yield self.finding(
                ctx,
                f"QuantizeLinear quantizes the activation {x!r} to INT4; TensorRT supports INT4 only for "
                "weight-only quantization",
                node=ref,
                tensor=x,
                versions=versions,
                hint="quantize activations to INT8 or FP8 and keep INT4 for weights",
            )
