"""PRC312 quantization-axis-mismatch."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ._qdq import any_qdq


class QuantizationAxisMismatch(Rule):
    """A per-channel Q/DQ whose scale length does not match the dimension of its `axis`.

    ## What it does
    For QuantizeLinear/DequantizeLinear with a 1-D scale of more than one element (per-channel
    quantization) and no `block_size`, compares the scale length with the input's dimension at
    `axis` (default 1), when both are known. Also reports an `axis` outside the input's rank.

    ## Why it breaks TensorRT
    Per-channel scales must line up with the quantized axis: one scale per channel. A mismatch is
    usually a wrong `axis` (e.g. the default 1 on a Gemm weight stored [N, K] with `transB`, which
    needs axis 0). TensorRT's IQuantizeLayer/IDequantizeLayer reject the scale ("scale size must
    match the dimension of the quantization axis") and the parse or build fails; ONNX Runtime
    rejects the model too.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1,8] x) => (float[1,4] y) <int8[4,8] w = {...}, float[4] s = {...}> {
          wf = DequantizeLinear<axis = 1>(w, s)
          y = Gemm<transB = 1>(x, wf)
        }

    ## How to fix
    Set `axis` to the output-channel dimension of the weight (0 for Conv weights and for Gemm
    weights with `transB = 1`; 1 for MatMul weights [K, N]), or re-export the quantized model.

    ## Fix safety
    No automatic fix: which axis was meant cannot be known for sure.

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX operator spec, QuantizeLinear/DequantizeLinear ("per-axis quantization: 1-D tensor of size
    equal to the dimension of `axis`"); NVIDIA TensorRT API, IQuantizeLayer/IDequantizeLayer (scale
    must be a scalar or a 1-D tensor with one coefficient per channel of the quantization axis);
    TensorRT developer guide, "Explicit Quantization" (per-channel quantization of weights).
    """

    code = "PRC312"
    name = "quantization-axis-mismatch"
    severity = Severity.ERROR
    summary = "per-channel scale length differs from the quantized axis dimension"
    release_independent = True

    def check(self, ctx: Context):
        if not any_qdq(ctx):
            return
        for ref in ctx.nodes_of("QuantizeLinear", "DequantizeLinear"):
            node = ref.node
            if len(node.input) < 2:
                continue
            if ref.attr("block_size", 0):
                continue
            g = ref.graph
            st = g.type_of(node.input[1])
            if st is None or st.shape is None or len(st.shape) != 1 or not isinstance(st.shape[0], int) or st.shape[0] <= 1:
                continue
            n_scales = st.shape[0]
            xt = g.type_of(node.input[0])
            if xt is None or xt.shape is None:
                continue
            rank = len(xt.shape)
            axis = ref.attr("axis", 1)
            if not -rank <= axis < rank:
                yield self.finding(
                    ctx,
                    f"{node.op_type} axis {axis} is outside the rank {rank} of {node.input[0]!r}",
                    node=ref,
                    tensor=node.input[0],
                    versions=ctx.kb.versions,
                    hint="set axis to the channel dimension the scales belong to",
                )
                continue
            dim = xt.shape[axis % rank]
            if not isinstance(dim, int) or dim == n_scales:
                continue
            matching = [i for i, d in enumerate(xt.shape) if d == n_scales]
            yield self.finding(
                ctx,
                f"{node.op_type} has {n_scales} per-channel scales but {node.input[0]!r} has {dim} elements on "
                f"axis {axis} (shape {list(xt.shape)})"
                + (f"; axis {matching[0]} would match" if len(matching) == 1 else ""),
                node=ref,
                tensor=node.input[1],
                versions=ctx.kb.versions,
                hint="set axis to the output-channel dimension of the weight",
            )
