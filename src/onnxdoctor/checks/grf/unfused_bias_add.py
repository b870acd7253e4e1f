"""GRF417 unfused-bias-add."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule
from ...patterns.bias_add import bias_candidates, bias_fold


class UnfusedBiasAdd(Rule):
    """An `Add` of a constant per-channel bias right after a Conv, ConvTranspose or 2-D MatMul.

    ## What it does
    Reports an `Add` of a constant and the output of a `Conv` or `ConvTranspose` (whose bias, if any,
    is a constant) when the constant is the same along every axis but the channel axis (a `[1, C, 1,
    1]` or `[C, 1, 1]` tensor, or a scalar), and an `Add` of a constant row (`[N]`, `[1, N]` or a
    scalar) to a `MatMul` of a 2-D input by a constant 2-D weight. The layer's output must have no
    other reader.

    ## Why it breaks TensorRT
    The layer can add the bias itself: Conv and ConvTranspose have a bias input, and `Gemm` is a
    MatMul with a bias. Exporters from frameworks that keep the bias as a separate op (Paddle's
    `conv2d` + `elementwise_add`, a linear layer's MatMul + Add) leave one extra elementwise layer per
    convolution, and a bias `Add` between a Conv and a BatchNormalization also stops the
    normalization from being folded (`unfolded-batch-norm`).

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,2,4,4] x) => (float[1,2,4,4] y) <float[2,2,1,1] w = {1, 2, 3, 4},
            float[1,2,1,1] b = {0.5, -0.5}> {
          c = Conv(x, w)
          y = Add(c, b)
        }

    ## How to fix
    Add the constant to the layer's bias (Conv, ConvTranspose) or replace MatMul + Add by one `Gemm`;
    `onnxdoctor fix` does it (`fold-bias-add`).

    ## Fix safety
    `fold-bias-add` is safe: the layer adds the same values (a Conv adding its bias to a sum may round
    differently by an ulp).

    ## TensorRT versions
    All releases.

    ## Sources
    ONNX `Conv`, `ConvTranspose` (optional bias B of shape [M]), `Gemm` (Y = alpha * A' * B' + beta * C,
    C broadcast to [M, N]) and `Add` (multidirectional broadcasting) specs; onnxslim's Conv + Add and
    MatMul + Add fusions.
    """

    code = "GRF417"
    name = "unfused-bias-add"
    severity = Severity.INFO
    summary = "constant bias Add after a Conv, ConvTranspose or 2-D MatMul that the layer can do"
    release_independent = True

    def check(self, ctx: Context):
        if not (ctx.nodes_of("Conv") or ctx.nodes_of("ConvTranspose") or ctx.nodes_of("MatMul")):
            return
        for g in ctx.model.graphs:  # the Adds in the order of nodes_of("Add")
            for k in bias_candidates(g):
                add = g.ref(k)
                f = bias_fold(ctx.model, add)
                if f is None:
                    continue
                what = "its bias" if f.layer.op_type != "MatMul" else "a Gemm"
                yield self.finding(ctx, f"Add of a constant bias after {f.layer.op_type} {f.layer.name!r}: {what} can do it",
                                   node=add, tensor=add.output(0), versions=ctx.kb.versions, hint="onnxdoctor fix folds it")
